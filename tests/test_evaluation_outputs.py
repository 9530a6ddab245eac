"""What an evaluation leaves in its --output_dir: results.json records the settings every row was computed under, a
rerun into the directory resumes only rows of the same settings, checkpoints and templates (anything else is an
error naming what differs), and each (step, template) has a per-example predictions file that the accuracy is
computed from, with the scores the authors' computation gives, gathered once per example from every process."""

from __future__ import annotations

import json
import random
import re
import shutil
from pathlib import Path

import pytest
import torch
from datasets import DatasetDict, load_from_disk
from transformers import AutoTokenizer

from tests.fixture_data import _eval_examples, _template_split
from tests.helpers import TINY_PERCEIVER, ZEMI, launch, run_module, write_run_dir
from zemi.data.collate import Collator
from zemi.data.mixture import load_eval_templates
from zemi.data.processing import Featurizer, MaxLengths, TextRules
from zemi.errors import ConfigError, MissingInputError
from zemi.models.modeling_t5 import T5WithOwnLMHead
from zemi.run.config import parse_evaluation
from zemi.run.evaluation import main as evaluate_main
from zemi.run.objectives import choice_scores_reencoding
from zemi.run.results_files import StaleResultsError, example_key

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("one_thread")]

LENGTHS = ["--max_length", "48", "--aug_max_length", "24", "--target_max_length", "8"]


def templates(data_root: Path, *tasks: str) -> list[str]:
    return [str(p) for task in tasks for p in sorted((data_root / task).iterdir())]


def command(model: Path, paths: list[str], output_dir: Path, *extra: str) -> list[str]:
    return ["--processed_dataset_paths", *paths, "--model_name_or_path", str(model), "--output_dir", str(output_dir),
            "--per_device_eval_batch_size", "5", "--report_to", "none", *LENGTHS, *extra]


def results(output_dir: Path) -> dict:
    return json.loads((output_dir / "results.json").read_text())


def accuracies(output_dir: Path) -> dict[tuple[int, str], float]:
    return {(row["step"], row["template"]): row["accuracy"] for row in results(output_dir)["results"]}


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory, backbone_dir, data_root) -> dict:
    """One finished evaluation per source, copied by each test that reruns into it: a plain T5 on two tasks (one
    of them with a gold target missing from its choices), and a Zemi run directory on one template."""
    root = tmp_path_factory.mktemp("evaluated")
    t5_paths = templates(data_root, "fruit_taste", "weather_effect")
    evaluate_main(command(backbone_dir, t5_paths, root / "t5"))
    zemi = write_run_dir(root / "zemi_run", backbone_dir, architecture=ZEMI, steps=(1,), perceiver=TINY_PERCEIVER)
    zemi_paths = templates(data_root, "weather_effect")[:1]
    evaluate_main(command(zemi, zemi_paths, root / "zemi"))
    return {"t5": (backbone_dir, t5_paths, root / "t5"), "zemi": (zemi, zemi_paths, root / "zemi"), "root": root}


def rerun_into_copy(evaluated: dict, source: str, tmp_path: Path, *extra: str, model: Path | None = None,
                    paths: list[str] | None = None) -> tuple[str, Path]:
    """Rerun into a copy of a finished evaluation with other flags; the error message, and the copy."""
    original_model, original_paths, finished = evaluated[source]
    copy = tmp_path / "out"
    shutil.copytree(finished, copy)
    before = (copy / "results.json").read_bytes()
    with pytest.raises(StaleResultsError) as error:
        evaluate_main(command(model or original_model, paths or original_paths, copy, *extra))
    assert (copy / "results.json").read_bytes() == before  # nothing written is lost
    return str(error.value), copy


# --- item: no silent numbers -------------------------------------------------------------------------------------


def test_a_plain_t5_rerun_with_a_shorter_max_length_is_refused_not_answered_with_the_first_runs_rows(
        evaluated, tmp_path):
    """The issue's case: the old rows would be reported for the new --max_length, whose fresh numbers differ."""
    model, paths, finished = evaluated["t5"]
    message, copy = rerun_into_copy(evaluated, "t5", tmp_path, "--max_length", "6")
    assert "max_length: 48 there, 6 now" in message
    assert str(copy) in message and "--output_dir" in message
    evaluate_main(command(model, paths, tmp_path / "fresh", "--max_length", "6"))
    assert accuracies(tmp_path / "fresh") != accuracies(finished)  # the stale rows would have been wrong


RERUNS = {  # setting -> (source, flags of the rerun, what the message must name)
    "target_max_length": ("t5", ["--target_max_length", "2"], "target_max_length: 8 there, 2 now"),
    "debug": ("t5", ["--debug"], "debug: False there, True now"),
    "pad_to_max_length": ("t5", ["--pad_to_max_length"], "pad_to_max_length: False there, True now"),
    "concat_aug_num": ("t5", ["--concat_aug_num", "2"], "concat_aug_num: 0 there, 2 now"),
    "aug_max_length": ("zemi", ["--aug_max_length", "12"], "aug_max_length: 24 there, 12 now"),
    "fit_aug_num": ("zemi", ["--fit_aug_num", "7"], "fit_aug_num: -1 there, 7 now"),
    "concat_input_at_augmentation": ("zemi", ["--concat_input_at_augmentation"],
                                     "concat_input_at_augmentation: False there, True now"),
}


@pytest.mark.parametrize("setting", list(RERUNS))
def test_a_rerun_with_another_setting_is_refused_naming_it(setting, evaluated, tmp_path):
    source, flags, expected = RERUNS[setting]
    message, _ = rerun_into_copy(evaluated, source, tmp_path, *flags)
    assert expected in message, message


def test_a_rerun_with_another_tokenizer_name_is_refused_naming_it(evaluated, tmp_path):
    """The same tokenizer saved elsewhere: the name alone differs, and is enough."""
    AutoTokenizer.from_pretrained(evaluated["t5"][0]).save_pretrained(tmp_path / "tokenizer")
    message, _ = rerun_into_copy(evaluated, "t5", tmp_path, "--tokenizer_name", str(tmp_path / "tokenizer"))
    assert f"tokenizer: {str(evaluated['t5'][0])!r} there, {str(tmp_path / 'tokenizer')!r} now" in message, message


def test_a_rerun_in_another_precision_ends_in_an_error_line_and_status_2(evaluated, tmp_path):
    """In its own process: accelerate fixes the precision once per process."""
    model, paths, finished = evaluated["t5"]
    shutil.copytree(finished, tmp_path / "out")
    done = run_module("zemi", ["eval", *command(model, paths, tmp_path / "out", "--mixed_precision", "bf16")])
    assert done.returncode == 2, done.stderr[-3000:]
    assert "error:" in done.stderr and "mixed_precision: 'no' there, 'bf16' now" in done.stderr
    assert (tmp_path / "out" / "results.json").read_bytes() == (finished / "results.json").read_bytes()


def test_a_rerun_with_other_templates_or_another_model_is_refused(evaluated, tmp_path, data_root):
    _, paths, _ = evaluated["t5"]
    message, _ = rerun_into_copy(evaluated, "t5", tmp_path / "fewer", paths=paths[:1])
    assert "processed_dataset_paths: 3 no longer given" in message and paths[1] in message
    message, _ = rerun_into_copy(evaluated, "t5", tmp_path / "other", model=evaluated["zemi"][0])
    assert f"model: {str(evaluated['t5'][0].resolve())!r} there, {str(evaluated['zemi'][0].resolve())!r} now" \
        in message


def test_a_changed_checkpoint_or_template_is_refused_naming_it(tmp_path, backbone_dir, data_root):
    run = write_run_dir(tmp_path / "run", backbone_dir, steps=(1,))
    template = tmp_path / "data" / "weather_effect" / "weather_effect_plain"
    shutil.copytree(data_root / "weather_effect" / "weather_effect_plain", template)
    evaluate_main(command(run, [str(template)], tmp_path / "out"))
    torch.manual_seed(1)  # the step retrained: new weights under the same name
    T5WithOwnLMHead.from_pretrained(backbone_dir).save_pretrained(run / "step_1")
    with pytest.raises(StaleResultsError, match=re.escape(f"checkpoint {run / 'step_1'} (step 1)")):
        evaluate_main(command(run, [str(template)], tmp_path / "out"))

    evaluate_main(command(run, [str(template)], tmp_path / "out2"))
    splits = load_from_disk(str(template))
    rebuilt = DatasetDict({name: split.map(lambda row: {"inputs_pretokenized": row["inputs_pretokenized"] + " ?"})
                           for name, split in splits.items()})
    rebuilt.save_to_disk(str(tmp_path / "rebuilt"))
    shutil.rmtree(template)
    (tmp_path / "rebuilt").rename(template)
    with pytest.raises(StaleResultsError, match=re.escape(f"template {template} [validation]")):
        evaluate_main(command(run, [str(template)], tmp_path / "out2"))


def test_a_copy_of_the_same_data_with_new_file_times_resumes(tmp_path, backbone_dir, data_root):
    """The template copied in again (new file times, as `cp` without -p, rsync without -t or a download give): the
    rerun keeps every row and file; a rewrite with other content is refused (the test above)."""
    run = write_run_dir(tmp_path / "run", backbone_dir, steps=(1,))
    source = data_root / "weather_effect" / "weather_effect_plain"
    template = tmp_path / "data" / "weather_effect" / "weather_effect_plain"
    shutil.copytree(source, template)  # copy2: the fixture's file times
    evaluate_main(command(run, [str(template)], tmp_path / "out"))
    written = {p: p.stat().st_mtime_ns for p in (tmp_path / "out" / "predictions").rglob("*.json")}
    rows = results(tmp_path / "out")["results"]
    shutil.rmtree(template)
    shutil.copytree(source, template, copy_function=shutil.copyfile)
    assert all(a.stat().st_mtime_ns != b.stat().st_mtime_ns for a, b in zip(sorted(source.rglob("*.arrow")),
                                                                          sorted(template.rglob("*.arrow"))))
    evaluate_main(command(run, [str(template)], tmp_path / "out"))
    assert written and {p: p.stat().st_mtime_ns for p in written} == written  # reused, not recomputed
    assert results(tmp_path / "out")["results"] == rows


def test_a_rerun_with_the_same_settings_resumes_and_equals_a_fresh_directory(tmp_path, backbone_dir, data_root):
    """Step 1 evaluated first, then the whole sweep into the same directory: step 1's rows and files are kept as
    they are, step 2's added, and the directory equals one evaluated in one go."""
    run = write_run_dir(tmp_path / "run", backbone_dir, steps=(1, 2))
    paths = templates(data_root, "weather_effect")
    evaluate_main(command(run, paths, tmp_path / "resumed", "--saved_model_step", "1"))
    first = {p: p.stat().st_mtime_ns for p in (tmp_path / "resumed" / "predictions").rglob("*.json")}
    evaluate_main(command(run, paths, tmp_path / "resumed", "--saved_model_step", "-1"))
    evaluate_main(command(run, paths, tmp_path / "fresh", "--saved_model_step", "-1"))
    assert {p: p.stat().st_mtime_ns for p in first} == first  # reused, not recomputed
    assert results(tmp_path / "resumed") == results(tmp_path / "fresh")
    assert len(results(tmp_path / "fresh")["results"]) == 4
    for row in results(tmp_path / "fresh")["results"]:
        assert json.loads((tmp_path / "resumed" / row["predictions"]).read_text()) == \
            json.loads((tmp_path / "fresh" / row["predictions"]).read_text())



def predictions_files(output_dir: Path) -> dict[str, dict]:
    return {str(path.relative_to(output_dir)): json.loads(path.read_text())
            for path in sorted((output_dir / "predictions").rglob("*.json"))}


def test_a_rerun_with_fewer_steps_leaves_what_a_fresh_run_of_those_steps_leaves(tmp_path, backbone_dir, data_root):
    """Steps 1 and 2, then step 2 alone into the same directory: step 1's rows and their predictions files go, as
    they were not checked against this run (its checkpoint may have changed since) and a fresh run has none."""
    run = write_run_dir(tmp_path / "run", backbone_dir, steps=(1, 2))
    paths = templates(data_root, "weather_effect")
    evaluate_main(command(run, paths, tmp_path / "rerun", "--saved_model_step", "-1"))
    evaluate_main(command(run, paths, tmp_path / "rerun", "--saved_model_step", "2"))
    evaluate_main(command(run, paths, tmp_path / "fresh", "--saved_model_step", "2"))
    assert {row["step"] for row in results(tmp_path / "rerun")["results"]} == {2}
    assert results(tmp_path / "rerun") == results(tmp_path / "fresh")
    assert predictions_files(tmp_path / "rerun") == predictions_files(tmp_path / "fresh")
    assert not (tmp_path / "rerun" / "predictions" / "step_1").exists()


def test_a_rerun_after_the_tokenizer_files_changed_is_refused_naming_the_tokenizer(tmp_path, backbone_dir, data_root):
    """The same model directory with one token added to its tokenizer.json: other token ids, other scores."""
    model = tmp_path / "t5"
    shutil.copytree(backbone_dir, model)
    paths = templates(data_root, "weather_effect")[:1]
    evaluate_main(command(model, paths, tmp_path / "out"))
    tokenizer = json.loads((model / "tokenizer.json").read_text())
    new_id = max(entry["id"] for entry in tokenizer["added_tokens"]) + 1
    tokenizer["added_tokens"].append({"id": new_id, "content": "zebra", "single_word": False, "lstrip": False,
                                      "rstrip": False, "normalized": True, "special": False})
    (model / "tokenizer.json").write_text(json.dumps(tokenizer))
    before = (tmp_path / "out" / "results.json").read_bytes()
    with pytest.raises(StaleResultsError, match="tokenizer_fingerprint"):
        evaluate_main(command(model, paths, tmp_path / "out"))
    assert (tmp_path / "out" / "results.json").read_bytes() == before



def hub_cache(root: Path, model: Path, repo: str, commits: list[str]) -> Path:
    """A hub cache as a download leaves it: `models--<org>--<name>/snapshots/<commit>/` per commit (here each a copy
    of `model`) and `refs/main` naming the last."""
    repository = root / f"models--{repo.replace('/', '--')}"
    for commit in commits:
        shutil.copytree(model, repository / "snapshots" / commit)
    (repository / "refs").mkdir(parents=True, exist_ok=True)
    (repository / "refs" / "main").write_text(commits[-1])
    return root


def test_a_hub_model_rerun_resumes_and_another_commit_is_refused_naming_it(tmp_path, backbone_dir, data_root,
                                                                          monkeypatch):
    """A model given by hub id, loaded from the cache offline: a plain rerun resumes; once the cache's main moves to
    another commit (a new download), the rows are refused naming the model."""
    import huggingface_hub.constants

    repo, first, second = "zemi-test/tiny-t5", "a" * 40, "b" * 40
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(hub_cache(tmp_path / "hub", backbone_dir,
                                                                                 repo, [second, first])))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    paths = templates(data_root, "weather_effect")[:1]
    evaluate_main(command(repo, paths, tmp_path / "out"))
    [row] = results(tmp_path / "out")["results"]
    assert row["checkpoint_fingerprint"] == f"{repo}@{first}"
    written = (tmp_path / "out" / row["predictions"]).stat().st_mtime_ns
    evaluate_main(command(repo, paths, tmp_path / "out"))
    assert (tmp_path / "out" / row["predictions"]).stat().st_mtime_ns == written  # resumed, not recomputed

    (tmp_path / "hub" / "models--zemi-test--tiny-t5" / "refs" / "main").write_text(second)
    with pytest.raises(StaleResultsError, match=re.escape(f"checkpoint {repo} (step 0)")):
        evaluate_main(command(repo, paths, tmp_path / "out"))


def test_a_hub_models_fingerprint_is_its_commit_or_an_error_never_the_bare_name(tmp_path, backbone_dir, monkeypatch):
    """Before the fix, a model not yet in the cache was fingerprinted by its bare name and, once the first run had
    downloaded it, by name@commit: the second run refused the first's rows. Offline, a model missing from the cache
    cannot be resolved to a commit, and is an error naming the flag instead of a bare name."""
    import huggingface_hub.constants

    from zemi.run.evaluation import EvalSource

    repo = "zemi-test/tiny-t5"
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "empty"))
    config = parse_evaluation(["--processed_dataset_paths", "x", "--model_name_or_path", repo, "--output_dir", "o",
                               "--tokenizer_name", str(backbone_dir)])
    source = EvalSource.from_config(config)
    with pytest.raises(MissingInputError, match=f"--model_name_or_path {repo}"):
        source.fingerprint(None)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE",
                        str(hub_cache(tmp_path / "hub", backbone_dir, repo, ["c" * 40])))
    assert source.fingerprint(None) == f"{repo}@{'c' * 40}"
    assert source.load(None).config._commit_hash == "c" * 40  # the commit from_pretrained loads


# --- item: every number with its per-example predictions ---------------------------------------------------------


def reference_scores(model_dir: Path, template_dir: str) -> tuple[list[list[float]], list[int]]:
    """Every example's choice scores by the authors' computation (the full model once per choice), and its gold."""
    model = T5WithOwnLMHead.from_pretrained(model_dir).eval()
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    featurizer = Featurizer(tokenizer, TextRules(), MaxLengths(48, 24, 8))
    [template] = load_eval_templates([template_dir])
    rows = template.dataset.map(featurizer.eval_features, batched=True, remove_columns=template.dataset.column_names)
    batch = Collator(tokenizer.pad_token_id)([rows[i] for i in range(len(rows))])
    flat = choice_scores_reencoding(model, batch).tolist()
    scores, start = [], 0
    for count in batch["num_choices"].tolist():
        scores.append(flat[start:start + count])
        start += count
    return scores, batch["target"].tolist()


def test_each_row_has_a_predictions_file_its_accuracy_is_computed_from(evaluated):
    model, paths, finished = evaluated["t5"]
    summary = results(finished)
    assert summary["seed"] is None and summary["settings"]["architecture"] == "T5"
    assert summary["settings"]["documents_read"] == 0
    assert len(summary["results"]) == len(paths) == 4
    for row in summary["results"]:
        assert row["predictions"] == f"predictions/step_0/{row['task']}__{row['template']}.json"
        predictions = json.loads((finished / row["predictions"]).read_text())
        assert set(predictions) == {"task", "template", "template_path", "step", "index", "gold", "gold_in_choices",
                                    "predicted", "scores", "example"}
        assert (predictions["task"], predictions["template"], predictions["step"]) == (row["task"], row["template"], 0)
        assert predictions["template_path"] == str(Path(row["template_path"]).absolute())
        assert predictions["index"] == list(range(row["num_examples"]))
        hits = [p == g for p, g in zip(predictions["predicted"], predictions["gold"])]
        assert row["accuracy"] == sum(hits) / len(hits)
        assert predictions["gold_in_choices"].count(False) == row["gold_not_in_choices"]
        assert predictions["predicted"] == [max(range(len(s)), key=s.__getitem__) for s in predictions["scores"]]
        documents = load_from_disk(row["template_path"])["validation"]["chosen_examples"]
        assert predictions["example"] == [example_key([d["inputs_pretokenized"] for d in row_documents])
                                          for row_documents in documents]
        expected, gold = reference_scores(model, row["template_path"])
        assert predictions["gold"] == gold
        for got, want in zip(predictions["scores"], expected):
            assert got == pytest.approx(want, abs=1e-4)
    assert any(row["gold_not_in_choices"] for row in summary["results"])  # the fixture has one: gold 0, flagged


def test_debug_keeps_each_templates_first_hundred_rows(tmp_path, backbone_dir):
    rows = _eval_examples(random.Random(3), 150, "fruit")
    template = tmp_path / "data" / "fruit" / "fruit_with_options"
    DatasetDict({"validation": _template_split(rows, "with_options", with_choices=True)}).save_to_disk(str(template))
    evaluate_main(command(backbone_dir, [str(template)], tmp_path / "out", "--debug"))
    [row] = results(tmp_path / "out")["results"]
    predictions = json.loads((tmp_path / "out" / row["predictions"]).read_text())
    assert row["num_examples"] == 100 and predictions["index"] == list(range(100))


def test_an_examples_key_is_the_same_in_every_template_that_holds_it(tmp_path, backbone_dir):
    """Templates of one task may hold different subsets of its raw examples (COPA's drop rows), so row i of two
    templates need not be one example; the key (of the example's retrieved documents, shared by its templates)
    pairs them."""
    rows = _eval_examples(random.Random(5), 6, "weather")
    root = tmp_path / "data" / "weather"
    DatasetDict({"validation": _template_split(rows, "plain", with_choices=True)}).save_to_disk(
        str(root / "weather_plain"))
    DatasetDict({"validation": _template_split(rows[:2] + rows[3:], "with_options", with_choices=True)}).save_to_disk(
        str(root / "weather_with_options"))
    evaluate_main(command(backbone_dir, [str(root / "weather_plain"), str(root / "weather_with_options")],
                          tmp_path / "out"))
    keys = {Path(row["template_path"]).name: json.loads((tmp_path / "out" / row["predictions"]).read_text())["example"]
            for row in results(tmp_path / "out")["results"]}
    plain, with_options = keys["weather_plain"], keys["weather_with_options"]
    assert len(set(plain)) == 6
    assert with_options == plain[:2] + plain[3:]
    assert plain[2] not in with_options


def test_two_processes_write_each_example_once_as_one_process_does(evaluated, tmp_path):
    """Five examples per batch and process: the last batch is uneven, so accelerate pads it with duplicates that
    the gather must drop."""
    model, paths, finished = evaluated["t5"]
    done = launch("zemi", ["eval", *command(model, paths, tmp_path / "two")], processes=2)
    assert done.returncode == 0, done.stderr[-3000:]
    assert accuracies(tmp_path / "two") == accuracies(finished)
    for row in results(finished)["results"]:
        one = json.loads((finished / row["predictions"]).read_text())
        two = json.loads((tmp_path / "two" / row["predictions"]).read_text())
        assert two["index"] == one["index"] and two["predicted"] == one["predicted"] and two["gold"] == one["gold"]
        for a, b in zip(two["scores"], one["scores"]):
            assert a == pytest.approx(b, abs=1e-5)


def test_two_templates_of_one_task_and_name_from_two_roots_are_refused(tmp_path, backbone_dir, data_root):
    """They would share one predictions file (and one row name in the report)."""
    copies = [tmp_path / root / "weather_effect" / "weather_effect_plain" for root in ("a", "b")]
    for copy in copies:
        shutil.copytree(data_root / "weather_effect" / "weather_effect_plain", copy)
    with pytest.raises(ConfigError, match=re.escape(f"{copies[0]} and {copies[1]}")):
        evaluate_main(command(backbone_dir, list(map(str, copies)), tmp_path / "out"))
    assert not (tmp_path / "out").exists()
