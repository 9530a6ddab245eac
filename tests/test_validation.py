"""Load-time validation: bad 30aug rows and bad builder inputs give errors naming the file, split, row and field;
what the original tolerates (no documents, "N/A" documents, huge or odd documents, a gold target missing from the
choices) is counted and reported, and `--strict` turns the last into an error."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import pytest
from datasets import Dataset, DatasetDict, Features, Sequence, Value, load_from_disk
from hypothesis import given, settings
from hypothesis import strategies as st
from transformers import AutoTokenizer

from tests.helpers import logged, write_run_dir
from zemi import eval_original_task_only
from zemi.data import build
from zemi.data.mixture import load_eval_templates, load_training_mixture, scan_eval_templates
from zemi.data.processing import Featurizer, MaxLengths, TextRules, build_texts
from zemi.data.tasks import load_custom_task, load_raw_splits, load_templates
from zemi.data.validation import (EVAL_FIELDS, MAX_DOCUMENT_CHARS, SHORT_DOCUMENT, TRAIN_FIELDS, DataError,
                                  validate_split)
from zemi.run.evaluation import GoldNotInChoicesError

pytestmark = [pytest.mark.unit, pytest.mark.usefixtures("one_thread")]  # tiny models: one thread is fastest

REPO = Path(__file__).resolve().parents[1]
FIXTURE_TASK = REPO / "tests" / "fixtures" / "retrieval" / "wordnet_acts"


def row(inputs="what is it ?", target="yes", documents=("a fact .",), choices=("yes", "no")) -> dict:
    docs = None if documents is None else [{"inputs_pretokenized": d, "score": 9.0 - i}
                                           for i, d in enumerate(documents)]
    return {"inputs_pretokenized": inputs, "targets_pretokenized": target, "chosen_examples": docs,
            "answer_choices": None if choices is None else list(choices)}


def split(rows: list[dict]) -> Dataset:
    features = Features({"inputs_pretokenized": Value("string"), "targets_pretokenized": Value("string"),
                         "answer_choices": [Value("string")],
                         "chosen_examples": [{"inputs_pretokenized": Value("string"), "score": Value("float64")}]})
    return Dataset.from_list(rows, features=features)


def save_template(root: Path, dataset: str, template: str, **splits: list[dict]) -> Path:
    path = root / dataset / f"{dataset}_{template}"
    DatasetDict({name: split(rows) for name, rows in splits.items()}).save_to_disk(str(path))
    return path


# --- errors: rows that cannot be read right ------------------------------------------------------------------------


def test_null_fields_are_errors_naming_path_split_row_and_field(tmp_path):
    good = [row() for _ in range(4)]
    save_template(tmp_path, "ds", "t", train=good[:2] + [row(inputs=None)] + good[2:], validation=good)
    with pytest.raises(DataError, match=r"ds/ds_t \[train\]: row 2: field 'inputs_pretokenized' is null; "
                                        r"expected a string"):
        load_training_mixture(tmp_path, ["ds"], -1)
    save_template(tmp_path, "ev", "t", validation=good + [row(target=None), row(target=None)])
    with pytest.raises(DataError, match=r"ev/ev_t \[validation\]: rows \[4, 5\]: field 'targets_pretokenized' is "
                                        "null"):
        load_eval_templates([tmp_path / "ev" / "ev_t"])
    save_template(tmp_path, "docs", "t", validation=good + [row(documents=("fine", None))])
    with pytest.raises(DataError, match=r"docs/docs_t \[validation\]: row 4: field "
                                        r"'chosen_examples\[\].inputs_pretokenized' is null"):
        load_eval_templates([tmp_path / "docs" / "docs_t"])


def test_text_that_is_not_utf8_in_a_damaged_file_is_an_error_naming_the_row(tmp_path):
    """Arrow files written by datasets always hold valid UTF-8; a damaged or hand-made one may not, and Python
    would fail on it deep inside tokenisation. The bytes of one input are overwritten in place."""
    path = save_template(tmp_path, "ds", "t", validation=[row(), row(inputs="marker QQXQQ here"), row()])
    arrow_file = next((path / "validation").glob("*.arrow"))
    data = arrow_file.read_bytes()
    assert data.count(b"QQXQQ") == 1
    arrow_file.write_bytes(data.replace(b"QQXQQ", b"QQ\xffQQ"))
    with pytest.raises(DataError, match=r"ds/ds_t \[validation\]: row 1: field 'inputs_pretokenized' is not valid "
                                        "UTF-8"):
        load_eval_templates([path])


def test_empty_or_missing_answer_choices_are_errors(tmp_path):
    """The original would crash on an empty list; scoring it would count the example as right (choice 0)."""
    rows = [row(), row(choices=()), row(), row(choices=())]
    save_template(tmp_path, "ds", "empty", validation=rows)
    with pytest.raises(DataError, match=r"ds_empty \[validation\]: rows \[1, 3\]: field 'answer_choices' is empty; "
                                        "rank classification needs at least one choice"):
        load_eval_templates([tmp_path / "ds" / "ds_empty"])
    save_template(tmp_path, "ds", "null", validation=[row(), row(choices=None)])
    with pytest.raises(DataError, match=r"row 1: field 'answer_choices' is null"):
        load_eval_templates([tmp_path / "ds" / "ds_null"])
    save_template(tmp_path, "ds", "item", validation=[row(), row(), row(choices=("yes", None))])
    with pytest.raises(DataError, match=r"row 2: field 'answer_choices' is null"):
        load_eval_templates([tmp_path / "ds" / "ds_item"])
    save_template(tmp_path, "train", "t", train=[row(choices=())], validation=[row(choices=None)])
    assert len(load_training_mixture(tmp_path, ["train"], -1).train) == 1  # training never reads the choices


# --- reported: what the original tolerates -------------------------------------------------------------------------


HUGE = "cat " * (MAX_DOCUMENT_CHARS // 3)  # about 1.33 million characters
ODD_ROWS = [
    row(documents=()),  # 0: nothing retrieved
    row(documents=None),  # 1: field missing in this row
    row(documents=("", " x ", "a real fact .")),  # 2: two documents read "N/A"
    row(documents=("fine", HUGE)),  # 3: a runaway document
    row(documents=("bell \x07 and nul \x00 inside", "undecodable \ufffd byte")),  # 4: odd characters
    row(documents=("d0", "d1", "d2", "d3", "d4", "\x01 sixth")),  # 5: the odd one is beyond 5 documents
]


def test_missing_short_huge_and_odd_documents_are_counted_and_reported(tmp_path):
    with logged("zemi.data.validation", logging.INFO) as messages:
        report = validate_split(split(ODD_ROWS), EVAL_FIELDS, where="odd [validation]", documents_read=5)
    assert report.rows_without_documents == [0, 1]
    assert report.documents_checked == 12 and report.na_documents == 2
    assert report.huge_documents == [(3, 1)]
    assert report.odd_documents == [(4, 0), (4, 1)]
    text = "\n".join(messages)
    assert "odd [validation]: 2 of 6 examples have no chosen_examples (rows [0, 1])" in text
    assert "2 of 12 documents read are empty or shorter than 2 characters" in text
    assert f"1 documents are longer than {MAX_DOCUMENT_CHARS} characters (row 3 chosen_examples[1])" in text
    assert "row 4 chosen_examples[0], row 4 chosen_examples[1]" in text
    everything = validate_split(split(ODD_ROWS), EVAL_FIELDS, where="odd", documents_read=None)
    assert everything.odd_documents[-1] == (5, 5) and everything.documents_checked == 13
    assert validate_split(split(ODD_ROWS), EVAL_FIELDS, where="odd", documents_read=0).documents_checked == 0


def test_documents_beyond_those_read_are_not_checked(tmp_path):
    """A null in the 7th document breaks nothing for a run that reads 5; a run that reads them all is stopped."""
    rows = [row(documents=("a a", "b b", "c c", "d d", "e e", "f f", None))]
    assert validate_split(split(rows), TRAIN_FIELDS, where="x", documents_read=5).documents_checked == 5
    with pytest.raises(DataError, match="row 0: field 'chosen_examples"):
        validate_split(split(rows), TRAIN_FIELDS, where="x", documents_read=7)


def test_what_happens_to_odd_huge_and_missing_documents(backbone_dir):
    """Missing documents read "N/A" in every slot; odd characters reach the tokenizer as they are (the original's
    behaviour); a huge document is cut to MAX_DOCUMENT_CHARS, which leaves its tokens unchanged."""
    rules = TextRules(num_documents=3)
    assert build_texts(ODD_ROWS[1], rules).documents == ["N/A"] * 3
    assert build_texts(ODD_ROWS[4], rules).documents == ["bell \x07 and nul \x00 inside", "undecodable \ufffd byte"]
    cut = build_texts(ODD_ROWS[3], rules).documents[1]
    assert len(cut) == MAX_DOCUMENT_CHARS and HUGE.strip().startswith(cut)
    tokenizer = AutoTokenizer.from_pretrained(backbone_dir)
    featurizer = Featurizer(tokenizer, rules, MaxLengths(input=48, document=24, target=8))
    features = featurizer.eval_features(split(ODD_ROWS[3:5]).to_dict())
    uncut = tokenizer(HUGE.strip(), max_length=24, truncation=True, add_special_tokens=False)["input_ids"]
    assert features["aug_input_ids"][0][1] == uncut
    assert [len(slots) for slots in features["aug_input_ids"]] == [2, 2]


def test_old_sequence_files_are_checked_the_same_way(tmp_path):
    """datasets 2.x files declare chosen_examples as Sequence({...}), stored as a struct of lists."""
    documents = Sequence({"inputs_pretokenized": Value("string"), "score": Value("float32")})
    features = Features({"inputs_pretokenized": Value("string"), "targets_pretokenized": Value("string"),
                         "chosen_examples": documents})
    data = Dataset.from_dict({"inputs_pretokenized": ["q", "q"], "targets_pretokenized": ["a", "b"],
                              "chosen_examples": [{"inputs_pretokenized": ["doc \x00", " "], "score": [2.0, 1.0]},
                                                  {"inputs_pretokenized": [], "score": []}]}, features=features)
    report = validate_split(data, TRAIN_FIELDS, where="old", documents_read=5)
    assert (report.rows_without_documents, report.na_documents, report.odd_documents) == ([1], 1, [(0, 0)])


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=st.sampled_from(" \t\n\x0b\x0c\r\x1c\x1f\x85\xa0\u2003\u3000\u200bab\x00é"), max_size=6))
def test_the_arrow_count_of_na_documents_follows_pythons_strip(text):
    import pyarrow as pa
    import pyarrow.compute as pc

    assert pc.match_substring_regex(pa.array([text]), SHORT_DOCUMENT)[0].as_py() == (len(text.strip()) < 2)


# --- evaluation: gold targets missing from the choices, templates without a validation split ----------------------


@pytest.fixture(scope="module")
def t5_run(tmp_path_factory, backbone_dir) -> Path:
    return write_run_dir(tmp_path_factory.mktemp("run") / "t5", backbone_dir, steps=(1,))


def evaluate(run_dir: Path, paths: list[Path], output_dir: Path, *extra: str) -> dict:
    eval_original_task_only.main(["--processed_dataset_paths", *map(str, paths), "--model_name_or_path",
                                  str(run_dir), "--output_dir", str(output_dir), *extra])
    return json.loads((output_dir / "results.json").read_text())


def test_gold_targets_missing_from_the_choices_are_counted_per_template_and_strict_refuses_them(
        tmp_path, t5_run, data_root):
    fruit = sorted((data_root / "fruit_taste").iterdir())  # row 3 of every template: gold "sour", choices yes/no/maybe
    results = evaluate(t5_run, fruit + sorted((data_root / "weather_effect").iterdir()), tmp_path / "lenient")
    counts = {r["template"]: r["gold_not_in_choices"] for r in results["results"]}
    assert counts == {"fruit_taste_plain": 1, "fruit_taste_with_options": 1, "weather_effect_plain": 0,
                      "weather_effect_with_options": 0}
    with pytest.raises(GoldNotInChoicesError, match=r"fruit_taste_plain \[validation\]: 1 rows \[3\]: the gold "
                                                    r"target \(targets_pretokenized, stripped\) is not among "
                                                    "answer_choices"):
        evaluate(t5_run, fruit, tmp_path / "strict", "--strict")


def test_a_template_without_a_validation_split_is_skipped_and_recorded(tmp_path, t5_run, data_root):
    """The original would stop; skipping alone would make the task's mean silently cover fewer templates, so the
    skipped directory is in results.json beside the scores."""
    task = tmp_path / "weather_effect"
    shutil.copytree(data_root / "weather_effect", task)
    test_only = task / "weather_effect_test_only"
    DatasetDict({"test": load_from_disk(str(task / "weather_effect_plain"))["validation"]}).save_to_disk(str(test_only))
    with logged("zemi.data.mixture") as warnings:
        results = evaluate(t5_run, sorted(task.iterdir()), tmp_path / "eval")
    assert {r["template"] for r in results["results"]} == {"weather_effect_plain", "weather_effect_with_options"}
    assert results["skipped_templates"] == [{"path": str(test_only), "reason": "no validation split (splits: "
                                                                               "['test'])"}]
    assert any(str(test_only) in message and "skipping this template" in message for message in warnings)
    assert scan_eval_templates([test_only])[0] == []
    with pytest.raises(DataError, match="is an evaluable template directory"):
        evaluate(t5_run, [test_only], tmp_path / "none")


# --- builder inputs: custom task files -----------------------------------------------------------------------------


@pytest.fixture
def task_dir(tmp_path) -> Path:
    return Path(shutil.copytree(FIXTURE_TASK, tmp_path / "task"))


@pytest.mark.parametrize("text, message", [
    ("dataset_dir: x\nquery_fields: [question\n", r"task.yaml: not valid YAML \(line 3, column 1: expected ','"),
    ("- just\n- a list\n", "task.yaml: expected a mapping"),
    ("dataset_dir: x\n", r"task.yaml: missing field 'query_fields' \(a non-empty list"),
    ("dataset_dir: x\nquery_fields: question\n", "field 'query_fields' is 'question'; expected a non-empty list"),
    ("dataset_dir: ../../elsewhere\nquery_fields: [question]\n", "field 'dataset_dir' is '../../elsewhere'"),
    ("dataset_dir: x\nquery_fields: [question]\nquery_field: [q]\n", r"unknown field\(s\) \['query_field'\]"),
    ("dataset_dir: x\nquery_fields: [question]\ntemplate_filter: some\n", "field 'template_filter' is 'some'"),
])
def test_a_bad_task_yaml_is_named_with_what_it_should_hold(text, message, task_dir):
    (task_dir / "task.yaml").write_text(text)
    with pytest.raises(DataError, match=message):
        load_custom_task(task_dir)


@pytest.mark.parametrize("line, message", [
    ('{"question": "What is a cat?", "choices": ["a", "b"]', r"train.jsonl:3: not valid JSON"),
    ('["a list", "not an object"]', r"train.jsonl:3: expected a JSON object"),
    ('{"prompt": "no question here", "choices": ["a"], "label": 0}', r"train.jsonl:3: missing query field\(s\) "
                                                                     r"\['question'\]"),
    ('{"question": 42, "choices": ["a"], "label": 0}', r"train.jsonl:3: query field 'question' is int"),
    ('{"question": "bad \\ud83d escape", "choices": ["a"], "label": 0}', r"train.jsonl:3: field 'question' holds a "
                                                                         r"lone surrogate U\+D83D at character 4"),
])
def test_a_bad_raw_example_is_named_by_file_and_line(line, message, task_dir):
    lines = (task_dir / "train.jsonl").read_text().splitlines()
    (task_dir / "train.jsonl").write_text("\n".join(lines[:2] + [line] + lines[2:]) + "\n")
    with pytest.raises(DataError, match=message):
        load_raw_splits(load_custom_task(task_dir))


def test_raw_examples_that_are_not_utf8_are_named_by_line(task_dir):
    data = (task_dir / "validation.jsonl").read_bytes().split(b"\n")
    data[4] = data[4].replace(b"?", b"\xe9?", 1)
    (task_dir / "validation.jsonl").write_bytes(b"\n".join(data))
    with pytest.raises(DataError, match=r"validation.jsonl:5: not valid UTF-8"):
        load_raw_splits(load_custom_task(task_dir))


def test_bad_templates_yaml_is_named_and_builds_no_python_objects(task_dir, tmp_path):
    path = task_dir / "templates.yaml"
    path.write_text("dataset: x\ntemplates:\n  a: [unclosed\n")
    with pytest.raises(DataError, match=r"templates.yaml: not valid YAML \(line 4, column 1"):
        load_templates(load_custom_task(task_dir))
    path.write_text("dataset: x\ntemplates: {}\n")
    with pytest.raises(DataError, match="a non-empty 'templates' mapping"):
        load_templates(load_custom_task(task_dir))
    path.write_text("dataset: x\ntemplates:\n  first: just a string\n")
    with pytest.raises(DataError, match=r"templates\['first'\] is str; expected a !Template entry"):
        load_templates(load_custom_task(task_dir))
    marker = tmp_path / "code_ran"
    path.write_text(f"templates:\n  a: !!python/object/apply:os.system ['touch {marker}']\n")
    with pytest.raises(DataError, match="not valid YAML"):
        load_templates(load_custom_task(task_dir))
    assert not marker.exists()


@pytest.mark.parametrize("flag, value, message", [
    ("--document_words", "0", "--document_words must be a positive integer"),
    ("--documents_per_example", "-1", "--documents_per_example must be a positive integer"),
    ("--corpus_fraction", "1.5", r"--corpus_fraction must be within \(0, 1\]"),
])
def test_impossible_builder_settings_fail_before_any_work(flag, value, message):
    with pytest.raises(ValueError, match=message):
        build.parse_args(["--corpus", "c4", "--output", "o", flag, value])
