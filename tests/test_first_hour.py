"""A newcomer's first hour: a plain T5 from a local directory evaluates as No Aug and Concat; known bad inputs end
in `error: <message>` and exit status 2 through the real entry points (a traceback only with ZEMI_DEBUG=1); an
evaluation's accuracies reach TensorBoard; a run's log written to a file reads as lines, not progress-bar redraws."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from datasets import Dataset, DatasetDict, load_from_disk
from transformers import AutoTokenizer

from tests.helpers import (REPO, TINY_PERCEIVER, common_flags, method_flags, run_command_here, run_module,
                           subprocess_env)
from zemi.cli import run_entry
from zemi.data.collate import Collator
from zemi.data.validation import DataError
from zemi.data.processing import Featurizer, MaxLengths, TextRules
from zemi.modeling_t5 import T5WithOwnLMHead
from zemi.run.evaluation import main as evaluate_main
from zemi.run.objectives import rank_choices_reencoding

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("one_thread")]

LENGTHS = ["--max_length", "48", "--aug_max_length", "24", "--target_max_length", "8"]


def templates(data_root: Path, task: str = "weather_effect") -> list[str]:
    return [str(p) for p in sorted((data_root / task).iterdir())]


def expected_accuracies(model_dir: Path, paths: list[str], concat_aug_num: int) -> dict[str, float]:
    """Rank classification written out by hand: the model by its path through from_pretrained, every choice re-encoded."""
    model = T5WithOwnLMHead.from_pretrained(model_dir).eval()
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    featurizer = Featurizer(tokenizer, TextRules(concat_aug_num=concat_aug_num), MaxLengths(48, 24, 8))
    accuracies = {}
    for path in paths:
        data = load_from_disk(path)["validation"]
        rows = data.map(featurizer.eval_features, batched=True, remove_columns=data.column_names)
        batch = Collator(tokenizer.pad_token_id)([rows[i] for i in range(len(rows))])
        predicted = rank_choices_reencoding(model, batch)
        accuracies[Path(path).name] = int((predicted == batch["target"]).sum()) / len(predicted)
    return accuracies


@pytest.mark.parametrize("concat_aug_num", [0, 3], ids=["no_aug", "concat"])
def test_a_local_plain_t5_directory_evaluates_as_no_aug_and_concat(concat_aug_num, backbone_dir, data_root, tmp_path):
    assert not (backbone_dir / "args.json").exists()
    paths = templates(data_root)
    evaluate_main(["--processed_dataset_paths", *paths, "--model_name_or_path", str(backbone_dir), "--output_dir",
                   str(tmp_path), "--concat_aug_num", str(concat_aug_num), "--report_to", "none", *LENGTHS])
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["architecture"] == "T5"
    assert results["method"] == backbone_dir.name + ("_concat3" if concat_aug_num else "")
    got = {Path(row["template_path"]).name: row["accuracy"] for row in results["results"]}
    assert got == expected_accuracies(backbone_dir, paths, concat_aug_num)
    assert all(row["chance"] == pytest.approx(0.5) for row in results["results"])  # two choices per example


# --- bad inputs through the real entry points --------------------------------------------------------------------


@pytest.fixture(scope="module")
def truncated_t5(tmp_path_factory, backbone_dir) -> Path:
    path = tmp_path_factory.mktemp("truncated") / "t5"
    shutil.copytree(backbone_dir, path)
    weights = path / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    return path


@pytest.fixture(scope="module")
def bad_templates(tmp_path_factory, data_root) -> dict[str, Path]:
    """A template directory that is not a save_to_disk DatasetDict, and one whose rows lack answer_choices."""
    root = tmp_path_factory.mktemp("bad_templates")
    not_saved = root / "weather_effect" / "weather_effect_notes"
    not_saved.mkdir(parents=True)
    (not_saved / "notes.txt").write_text("not a dataset")
    good = load_from_disk(templates(data_root)[0])
    missing = root / "weather_effect" / "weather_effect_no_choices"
    DatasetDict({name: Dataset.from_dict({k: v for k, v in split.to_dict().items() if k != "answer_choices"})
                 for name, split in good.items()}).save_to_disk(missing)
    return {"not_saved": not_saved, "missing_column": missing}


def failed_cleanly(done, *expected: str) -> None:
    assert done.returncode == 2, done.stderr[-3000:]
    assert "Traceback" not in done.stderr, done.stderr[-3000:]
    message = [line for line in done.stderr.splitlines() if line.startswith("error: ")]
    assert len(message) == 1, done.stderr[-3000:]
    for part in expected:
        assert part in message[0], message[0]


def evaluate_command(data: list[str], model: Path, out: Path) -> list[str]:
    return ["--processed_dataset_paths", *data, "--model_name_or_path", str(model), "--output_dir", str(out),
            "--report_to", "none", *LENGTHS]


def test_bad_inputs_end_in_an_error_line_and_status_2(backbone_dir, data_root, truncated_t5, bad_templates,
                                                      tmp_path, capfd):
    """The first case in a process of its own (`python -m zemi eval`), the others through the same entry function
    in this process: the message and the status come from `zemi.cli.run_entry` either way."""
    cases = {
        "missing data directory": (evaluate_command([str(tmp_path / "no_such" / "template")], backbone_dir, tmp_path),
                                   [str(tmp_path / "no_such" / "template"), "not a directory"]),
        "truncated safetensors": (evaluate_command(templates(data_root), truncated_t5, tmp_path),
                                  [str(truncated_t5 / "model.safetensors"), "truncated or corrupt"]),
        "not a DatasetDict": (evaluate_command([str(bad_templates["not_saved"])], backbone_dir, tmp_path),
                              [str(bad_templates["not_saved"]), "saved dataset"]),
        "missing column": (evaluate_command([str(bad_templates["missing_column"])], backbone_dir, tmp_path),
                           [str(bad_templates["missing_column"]), "answer_choices"]),
        "no such model": (evaluate_command(templates(data_root), tmp_path / "no_model", tmp_path),
                          ["--model_name_or_path", "no such directory"]),
    }
    for number, (name, (args, expected)) in enumerate(cases.items()):
        done = run_module("zemi", ["eval", *args]) if number == 0 else run_command_here(["eval", *args], capfd)
        failed_cleanly(done, *expected)
    assert not (tmp_path / "results.json").exists()


def test_a_perceiver_dim_that_is_not_the_backbones_d_model_is_an_error_line(backbone_dir, data_root, tmp_path,
                                                                            capfd):
    perceiver = tmp_path / "perceiver.json"
    perceiver.write_text(json.dumps({**TINY_PERCEIVER, "dim": 64}))
    done = run_command_here([
        "train", "--model_architecture", "SharedEncoderDecoder_MultiAug", "--lm_name", str(backbone_dir),
        "--perceiver_config", str(perceiver), "--dataset_root_path", str(data_root), "--dataset_dir_names",
        "animal_colors", "--output_dir", str(tmp_path / "run")], capfd)
    failed_cleanly(done, str(perceiver), "perceiver dim 64 does not match the T5 backbone's d_model 32")
    assert not (tmp_path / "run").exists()


def test_the_data_builds_bad_inputs_are_error_lines(tmp_path, capfd):
    done = run_command_here(["build-data", "--tasks", "no_such_task", "--corpus", str(tmp_path / "corpus.jsonl"),
                             "--output", str(tmp_path / "30aug")], capfd)
    failed_cleanly(done, "unknown task 'no_such_task'")
    done = run_command_here(["build-data", "--tasks", "train", "--corpus", str(tmp_path / "no_corpus.jsonl"),
                             "--output", str(tmp_path / "30aug")], capfd)
    failed_cleanly(done, "no_corpus.jsonl")


def test_zemi_debug_shows_the_traceback(backbone_dir, tmp_path, monkeypatch):
    """With ZEMI_DEBUG the error is not turned into a line: it leaves the entry point as an exception, which the
    interpreter prints with its traceback (status 1)."""
    monkeypatch.setenv("ZEMI_DEBUG", "1")
    with pytest.raises(DataError, match="missing"):
        run_entry(evaluate_main, evaluate_command([str(tmp_path / "missing")], backbone_dir, tmp_path))


# --- tracking ---------------------------------------------------------------------------------------------------


def test_an_evaluation_reports_every_template_and_task_mean_to_tensorboard(backbone_dir, data_root, tmp_path):
    event_accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")
    paths = templates(data_root) + templates(data_root, "fruit_taste")
    evaluate_main(["--processed_dataset_paths", *paths, "--model_name_or_path", str(backbone_dir), "--output_dir",
                   str(tmp_path), "--report_to", "tensorboard", *LENGTHS])
    rows = json.loads((tmp_path / "results.json").read_text())["results"]
    [events] = [path for path in (tmp_path / "tensorboard").rglob("events.out.tfevents.*")
                if path.parent == tmp_path / "tensorboard"]
    accumulator = event_accumulator.EventAccumulator(str(events))
    accumulator.Reload()
    scalars = {tag: accumulator.Scalars(tag) for tag in accumulator.Tags()["scalars"]}
    expected = {f"accuracy/{row['task']}/{row['template']}": row["accuracy"] for row in rows}
    means = {task: sum(r["accuracy"] for r in rows if r["task"] == task) / 2 for task in ("fruit_taste", "weather_effect")}
    expected.update({f"task_mean/{task}": mean for task, mean in means.items()})
    expected["average"] = sum(means.values()) / 2
    assert set(scalars) == set(expected)
    for tag, value in expected.items():
        [event] = scalars[tag]
        assert event.step == 0 and event.value == pytest.approx(value, abs=1e-6), tag


# --- logs --------------------------------------------------------------------------------------------------------


def test_a_runs_log_written_to_a_file_is_plain_lines(backbone_dir, data_root, perceiver_json, tmp_path):
    """Training and evaluating a tiny Zemi with stdout and stderr in a file, as a cluster job's log is: the runs'
    messages are there, once each and in one format, and no progress bar redraws itself (tqdm's carriage returns, a
    line per redraw). With CI set, as on CI machines, transformers also hands its messages to the root logger."""
    _, flags = method_flags("zemi", backbone_dir, perceiver_json)
    run_dir = tmp_path / "zemi_run"
    log = tmp_path / "job.log"
    commands = [
        ["zemi.multi_task_fine_tune_xattn", *flags, *common_flags(data_root, run_dir, epochs=1), "--report_to", "none"],
        ["zemi.eval_original_task_only_xattn", "--processed_dataset_paths", *templates(data_root),
         "--model_name_or_path", str(run_dir), "--output_dir", str(tmp_path / "eval"), "--report_to", "none",
         "--per_device_eval_batch_size", "2"],
    ]
    with open(log, "w") as handle:
        for command in commands:
            done = subprocess.run([sys.executable, "-m", *command], cwd=REPO, env=subprocess_env(CI="true"),
                                  stdout=handle, stderr=subprocess.STDOUT, timeout=600)
            assert done.returncode == 0, log.read_text()[-3000:]
    text = log.read_bytes().decode()  # read_text() would turn carriage returns into newlines
    assert "\r" not in text, text[:3000]
    assert "epoch 1: step 18, validation loss" in text and "accuracy" in text, text[-3000:]
    assert "\x1b" not in text and "[transformers]" not in text, text[:3000]  # no terminal colours, one format
    # the fusion modules a T5 checkpoint lacks: one line, not transformers' table of their tensors
    assert "every T5 weight loaded" in text and "MISSING" not in text, text[:3000]
    # 18 steps and 2 evaluated templates: what was written is the runs' messages, a few lines each
    assert len(text.splitlines()) < 20 and len(text) < 4_000, text[-3000:]
