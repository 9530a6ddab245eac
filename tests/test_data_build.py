"""The 30aug builder: task specs, P3 template naming and prompting, and the real CLI on a fixture task."""

from __future__ import annotations

import random
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from datasets import load_from_disk

from zemi.data import build
from zemi.data.tasks import (
    BUILTIN_TASKS,
    TASK_GROUPS,
    apply_template,
    load_custom_task,
    load_raw_splits,
    load_templates,
    prompt_split,
    resolve_tasks,
    template_dir_name,
)

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[1]
FIXTURE_TASK = REPO / "tests" / "fixtures" / "retrieval" / "wordnet_acts"
CORPUS = REPO / "data" / "demo" / "corpus.jsonl.gz"


def _template(task, name):
    return next(t for t in load_templates(task) if t.name == name)


def test_builtin_tasks_are_the_authors_fifteen():
    assert TASK_GROUPS["train"] == ["cos_e_v1.11", "cosmos_qa", "dream", "qasc", "quartz", "sciq", "social_i_qa",
                                    "wiqa"]
    assert TASK_GROUPS["eval"] == ["openbookqa_main", "piqa", "super_glue_wic", "super_glue_cb", "super_glue_copa",
                                   "rotten_tomatoes", "hellaswag"]
    assert sorted(BUILTIN_TASKS) == sorted(TASK_GROUPS["all"])
    assert BUILTIN_TASKS["super_glue_wic"].query_fields == ("sentence1", "sentence2")
    assert BUILTIN_TASKS["social_i_qa"].query_fields == ("context",)
    for task in BUILTIN_TASKS.values():  # every promptsource 0.2.3 collection exists and has kept templates
        templates = load_templates(task)
        assert templates and all(t.metadata.original_task and t.metadata.choices_in_prompt for t in templates)


# Directory names as the authors' process_p3_C4_retrieval_datasets.py writes them: f"{task}_{name}" with the name's
# '/' removed and its spaces turned into '_' (`clean_template_name`, then `.replace(' ', '_')`); nothing else changes.
# (The authors publish no listing of their downloaded 30aug directories, so these are spelled out from that code.)
@pytest.mark.parametrize(
    "task, template, expected",
    [
        ("super_glue_copa", "…As a result, C1 or C2?", "super_glue_copa_…As_a_result,_C1_or_C2?"),
        ("super_glue_copa", "C1 or C2? premise, so/because…", "super_glue_copa_C1_or_C2?_premise,_sobecause…"),
        ("super_glue_cb", "claim true/false/inconclusive", "super_glue_cb_claim_truefalseinconclusive"),
        ("super_glue_cb", "GPT-3 style", "super_glue_cb_GPT-3_style"),
        ("cos_e_v1.11", "question_description_option_text", "cos_e_v1.11_question_description_option_text"),
        ("rotten_tomatoes", "Sentiment with choices ", "rotten_tomatoes_Sentiment_with_choices_"),
        ("super_glue_wic", "GPT-3-prompt-with-label", "super_glue_wic_GPT-3-prompt-with-label"),
        ("hellaswag", "Predict ending with hint", "hellaswag_Predict_ending_with_hint"),
    ],
)
def test_template_dirs_have_the_authors_names(task, template, expected):
    spec = BUILTIN_TASKS[task]
    assert template in {t.name for t in load_templates(spec)}
    assert template_dir_name(spec, template) == expected


def test_sorted_names_sample_the_authors_templates():
    # What `random.sample(sorted(...), 2)` picks depends on the order of `sorted()`: "…" (U+2026) sorts after
    # every ASCII letter, "," and "?" before them, so P3-style names ("super_glue_copa__As_a_result_C1_or_C2_")
    # order the copa templates differently.
    copa = sorted(template_dir_name(BUILTIN_TASKS["super_glue_copa"], t.name)
                  for t in load_templates(BUILTIN_TASKS["super_glue_copa"]))
    assert copa[0] == "super_glue_copa_C1_or_C2?_premise,_sobecause…"
    assert copa[-1] == "super_glue_copa_…why?_C1_or_C2"
    rng = random.Random(42)  # as the authors' training: seed 42, then one draw per dataset, in mixture order
    picked = {name: rng.sample(sorted(template_dir_name(BUILTIN_TASKS[name], t.name)
                                      for t in load_templates(BUILTIN_TASKS[name])), 2)
              for name in TASK_GROUPS["train"]}
    assert picked == {
        "cos_e_v1.11": ["cos_e_v1.11_question_option_description_text", "cos_e_v1.11_description_question_option_id"],
        "cosmos_qa": ["cosmos_qa_context_description_question_answer_id",
                      "cosmos_qa_description_context_question_answer_text"],
        "dream": ["dream_read_the_following_conversation_and_answer_the_question", "dream_baseline"],
        "qasc": ["qasc_qa_with_separated_facts_1", "qasc_qa_with_separated_facts_4"],
        "quartz": ["quartz_answer_question_below", "quartz_read_passage_below_choose"],
        "sciq": ["sciq_Multiple_Choice", "sciq_Multiple_Choice_Question_First"],
        "social_i_qa": ["social_i_qa_Show_choices_and_generate_answer", "social_i_qa_Show_choices_and_generate_index"],
        "wiqa": ["wiqa_effect_with_label_answer", "wiqa_effect_with_string_answer"],
    }


def test_apply_template_follows_p3():
    cb = BUILTIN_TASKS["super_glue_cb"]
    template = _template(cb, "can we infer")
    example = {"premise": "It rained all day.", "hypothesis": "The ground is wet.", "label": 0, "idx": 3}
    row = apply_template(template, example)
    assert row == {"inputs_pretokenized": 'Suppose It rained all day. Can we infer that "The ground is wet."? '
                                          "Yes, no, or maybe?",
                   "targets_pretokenized": "Yes", "answer_choices": ["Yes", "No", "Maybe"]}
    assert apply_template(template, {**example, "label": -1})["targets_pretokenized"] == "<NO LABEL>"


def test_random_templates_are_reproducible_and_leave_global_random_alone():
    hellaswag = BUILTIN_TASKS["hellaswag"]
    template = _template(hellaswag, "Randomized prompts template")
    examples = [{"ctx": f"A man is cooking dish {i}.", "endings": ["a", "b", "c", "d"], "label": "1",
                 "activity_label": "Cooking", "ctx_a": "", "ctx_b": "", "ind": i, "source_id": "x",
                 "split": "train", "split_type": "indomain"} for i in range(20)]
    random.seed(123)
    expected_next = random.Random(123).random()
    first, _ = prompt_split(hellaswag, template, examples)
    assert random.random() == expected_next
    second, _ = prompt_split(hellaswag, template, examples)
    assert first == second and len({row["inputs_pretokenized"][:30] for row in first}) > 1


def test_compiling_each_template_once_renders_exactly_what_promptsource_renders():
    from promptsource import templates as promptsource_templates

    hellaswag = BUILTIN_TASKS["hellaswag"]  # its randomized template draws words with jinja's `choice`
    examples = [{"ctx": f"A man is cooking dish {i}.", "endings": ["a", "b", "c", "d"], "label": "1",
                 "activity_label": "Cooking", "ctx_a": "", "ctx_b": "", "ind": i, "source_id": "x",
                 "split": "train", "split_type": "indomain"} for i in range(30)]
    templates = load_templates(hellaswag)
    cached = {t.name: prompt_split(hellaswag, t, examples)[0] for t in templates}
    env = promptsource_templates.env
    assert env.from_string.cache_info().hits > 0
    compile_once = env.from_string
    env.from_string = compile_once.__wrapped__  # promptsource's own behaviour: compile on every call
    try:
        uncached = {t.name: prompt_split(hellaswag, t, examples)[0] for t in templates}
    finally:
        env.from_string = compile_once
    assert cached == uncached and len(cached) > 1


def test_custom_task_spec(tmp_path):
    task = load_custom_task(FIXTURE_TASK)
    assert (task.dataset_dir, task.query_fields, task.splits) == ("wordnet_acts", ("question",), ("train", "validation"))
    assert [t.name for t in load_templates(task)] == ["Pick one... (A or B?)", "question with options"]
    raw = load_raw_splits(task)
    assert len(raw["train"]) == 26 and len(raw["validation"]) == 10
    assert resolve_tasks([str(FIXTURE_TASK), "eval", "super_glue_cb"])[0] == task
    assert len(resolve_tasks(["eval", "super_glue_cb"])) == 7
    broken = tmp_path / "broken"
    shutil.copytree(FIXTURE_TASK, broken)
    (broken / "task.yaml").write_text("dataset_dir: broken\n")
    with pytest.raises(ValueError, match="query_fields"):
        load_custom_task(broken)
    with pytest.raises(ValueError, match="unknown task"):
        resolve_tasks(["no_such_task"])


def test_flags_map_onto_the_config():
    config = build.parse_args(["--corpus", "c4", "--corpus_fraction", "0.05", "--output", "out/30aug",
                               "--tasks", "train", "super_glue_cb", "--shard_size", "500000"])
    assert (config.tasks, config.corpus_fraction, config.shard_size) == (["train", "super_glue_cb"], 0.05, 500_000)
    assert (config.index_dir, config.cache_dir, config.scoring) == ("out/30aug.bm25", "out/30aug.cache", "lucene")
    assert build.parse_args(["--corpus", "x", "--output", "y"]).tasks == ["all"]
    with pytest.raises(ValueError, match="not both"):
        build.parse_args(["--corpus", "c4", "--output", "o", "--num_documents", "5", "--corpus_fraction", "0.1"])


def _run(output: Path, *extra: str) -> None:
    build.main(["--tasks", str(FIXTURE_TASK), "--corpus", str(CORPUS), "--num_documents", "3000",
                "--output", str(output), *extra])


@pytest.fixture(scope="module")
def built_run(tmp_path_factory):
    """The real command line in its own process, as a user runs it: its root and its combined output."""
    root = tmp_path_factory.mktemp("data") / "30aug"
    completed = subprocess.run(
        [sys.executable, "-m", "zemi", "build-data", "--tasks", str(FIXTURE_TASK), "--corpus", str(CORPUS),
         "--num_documents", "3000", "--output", str(root)],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=600, check=True)
    return root, completed.stdout


@pytest.fixture(scope="module")
def built_root(built_run):
    return built_run[0]


@pytest.mark.e2e
def test_the_build_log_has_our_progress_and_no_datasets_bars(built_run):
    _, output = built_run
    assert "Saving the dataset" not in output
    for progress in ("storing the corpus", "counting statistics", "indexing shard 1/1", "retrieving wordnet_acts",
                     "writing templates"):
        assert progress in output
    import datasets

    was_disabled = datasets.are_progress_bars_disabled()  # the test session silences them (conftest)
    datasets.enable_progress_bars()
    try:
        with build.quiet_datasets():
            assert datasets.are_progress_bars_disabled()
        assert not datasets.are_progress_bars_disabled()  # silenced only inside the build
    finally:
        if was_disabled:
            datasets.disable_progress_bars()


@pytest.mark.e2e
def test_cli_writes_the_30aug_layout(built_root):
    task_dir = built_root / "wordnet_acts"
    assert sorted(p.name for p in task_dir.iterdir()) == ["wordnet_acts_Pick_one..._(A_or_B?)",
                                                          "wordnet_acts_question_with_options"]
    assert not (built_root / build.PARTIAL_DIR).exists()
    splits = load_from_disk(str(task_dir / "wordnet_acts_question_with_options"))
    assert set(splits) == {"train", "validation"} and len(splits["train"]) == 26
    assert splits["train"].features == build.output_features()
    row = splits["train"][0]
    assert row["inputs_pretokenized"].startswith("Question: What is the violent theft of an occupied car called?")
    assert row["targets_pretokenized"] in row["answer_choices"]
    hits_with_answer = 0
    for row in splits["train"]:
        scores = [doc["score"] for doc in row["chosen_examples"]]
        assert 0 < len(scores) <= 30 and scores == sorted(scores, reverse=True)
        hits_with_answer += row["targets_pretokenized"].split()[0].lower() in \
            row["chosen_examples"][0]["inputs_pretokenized"].lower()
    assert hits_with_answer >= 0.8 * len(splits["train"])  # BM25 finds the gloss that answers the question


@pytest.mark.e2e
def test_training_and_evaluation_readers_accept_the_output(built_root):
    from zemi.data.mixture import load_eval_templates, load_training_mixture

    mixture = load_training_mixture(built_root, ["wordnet_acts"], sample_n=2)
    assert len(mixture.train) == 2 and sum(len(d) for d in mixture.train) == 52
    templates = load_eval_templates(mixture.template_dirs)
    assert [len(t.dataset) for t in templates] == [10, 10]


@pytest.mark.e2e
def test_rerun_skips_finished_templates_and_rebuilds_missing_ones(built_root):
    kept = built_root / "wordnet_acts" / "wordnet_acts_question_with_options"
    removed = built_root / "wordnet_acts" / "wordnet_acts_Pick_one..._(A_or_B?)"
    stamp = (kept / "dataset_dict.json").stat().st_mtime_ns
    shutil.rmtree(removed)
    _run(built_root)
    assert (kept / "dataset_dict.json").stat().st_mtime_ns == stamp
    assert len(load_from_disk(str(removed))["validation"]) == 10
    with pytest.raises(ValueError, match="built with"):
        _run(built_root, "--query_words", "5")  # the cached hits were retrieved with 20-word queries
