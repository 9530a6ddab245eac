"""Visualization files: the authors' text format, parsed back into the same instances; the CLI and index.html
(tests/test_visualization_browser.py runs the page in Chromium); the page's gold-answer matching and summaries."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
from datasets import load_from_disk
from hypothesis import given, settings, strategies as st

from tests.evaluation_files import (ZEMI, Template, from_template_dir, gold_of, settings_for, write_eval_dir,
                                    wrong_of)
from zemi.cli import run_entry
from zemi.tools import retrieval_page as page_module
from zemi.tools import visualize_retrieval as vis
from zemi.data import build

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[1]
FIXTURE_TASK = REPO / "tests" / "fixtures" / "retrieval" / "wordnet_acts"
CORPUS = REPO / "data" / "demo" / "corpus.jsonl.gz"

_MARKERS = ("=======", "Target Text: ", vis.DOCUMENTS_LINE, vis.DOCUMENT_END)
prompt_text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=80).filter(
    lambda s: not any(marker in s for marker in _MARKERS))
# Documents may span lines (C4 texts keep their newlines), even hold a line of "#"s.
document_text = st.text(st.sampled_from("ab #\n") | st.characters(blacklist_categories=("Cs",)), max_size=80).filter(
    lambda s: "=======" not in s and "\nRank: " not in s)
instances = st.lists(st.builds(
    vis.Instance,
    index=st.integers(0, 10**6),
    input_text=prompt_text,
    target_text=prompt_text,
    documents=st.lists(st.builds(vis.Document, rank=st.integers(0, 29),
                                 score=st.floats(allow_nan=False, allow_infinity=False), text=document_text),
                       max_size=4),
), max_size=5)


def test_format_is_the_authors():
    text = vis.format_instances([vis.Instance(7, "Is it?\nYes or no?", "Yes", [vis.Document(0, 12.5, "A doc.")])])
    assert text.splitlines() == ["======= Instance Index 7 =========", "Input Text: Is it?", "Yes or no?",
                                 "Target Text: Yes", "#### Retrieved Documents ####", "Rank: 0", "Score: 12.5",
                                 "Retrieved Text: A doc.", "########", ""]


@settings(max_examples=150, deadline=None)
@given(instances)
def test_files_parse_back_into_the_same_instances(items):
    assert vis.parse_instances(vis.format_instances(items)) == items


def test_documents_with_newlines_and_marker_lines_parse_back():
    items = [vis.Instance(0, "q", "a", [vis.Document(0, 1.0, "line one\n########\nline two\n"),
                                        vis.Document(1, 0.5, "########")])]
    assert vis.parse_instances(vis.format_instances(items)) == items


def test_parser_rejects_other_text():
    with pytest.raises(ValueError):
        vis.parse_instances("some notes\n======= Instance Index 0 =========\n")


def test_selection_of_first_highest_and_lowest():
    items = [vis.Instance(i, "q", "a", [vis.Document(0, s, "d")] if s is not None else [])
             for i, s in enumerate([3.0, 9.0, None, 9.0, 1.0])]
    assert [x.index for x in vis.select(items, "first", 2)] == [0, 1]
    assert [x.index for x in vis.select(items, "highest", 3)] == [1, 3, 0]
    assert [x.index for x in vis.select(items, "lowest", 2)] == [2, 4]


@pytest.mark.e2e
def test_cli_on_a_built_root(tmp_path):
    root = tmp_path / "30aug"
    build.main(["--tasks", str(FIXTURE_TASK), "--corpus", str(CORPUS), "--num_documents", "3000",
                "--output", str(root)])
    output = tmp_path / "visualization"
    vis.main(["--data_root", str(root), "--output", str(output), "--num_instances", "8", "--num_documents", "3"])
    files = sorted(str(p.relative_to(output)) for p in output.rglob("*.txt"))
    assert files == sorted(f"{kind}/retrieval_vis_{split}__wordnet_acts.txt"
                           for kind in vis.KINDS for split in ("train", "eval"))
    template = sorted((root / "wordnet_acts").iterdir())[0]
    validation = load_from_disk(str(template))["validation"]
    first = vis.parse_instances((output / "first50_retrieval_instances" / "retrieval_vis_eval__wordnet_acts.txt")
                                .read_text())
    assert [x.index for x in first] == list(range(8))
    for instance in first:
        row = validation[instance.index]
        assert (instance.input_text, instance.target_text) == (row["inputs_pretokenized"], row["targets_pretokenized"])
        assert [(d.rank, d.score, d.text) for d in instance.documents] == [
            (rank, doc["score"], doc["inputs_pretokenized"]) for rank, doc in enumerate(row["chosen_examples"][:3])]
    highest = vis.parse_instances((output / "top50_highest_score_retrieval_instances" /
                                   "retrieval_vis_train__wordnet_acts.txt").read_text())
    top = [x.documents[0].score for x in highest]
    assert top == sorted(top, reverse=True) and len(highest) == 8
    page = (output / "index.html").read_text()
    data = json.loads(re.search(r"const DATA = (.*);\n", page).group(1).replace("<\\/", "</"))
    assert list(data["wordnet_acts"]) == ["train", "eval"]
    assert all(list(views) == ["first", "highest", "lowest"] for views in data["wordnet_acts"].values())
    assert [x["input_text"] for x in data["wordnet_acts"]["eval"]["first"]] == [x.input_text for x in first]
    # Everything is inline: no script, style sheet, font or image is fetched.
    assert not re.search(r"<(script|link|img|iframe)\b[^>]*\b(src|href)=|@import|url\(", page)
    summary = json.loads((output / "summaries" / "wordnet_acts.json").read_text())
    expected = page_module.summarize_split(
        (row["targets_pretokenized"], [(doc["score"], doc["inputs_pretokenized"]) for doc in row["chosen_examples"]])
        for row in validation)
    assert page_module.summary_from_json(summary["eval"]) == expected and expected.num_examples == len(validation)


def test_gold_answer_appears_as_whole_words_ignoring_case_and_punctuation():
    pattern = page_module.answer_pattern('  "Ice cream."\n')
    assert page_module.normalize_answer('  "Ice cream."\n') == "ice cream"
    assert pattern.search("I like ICE   CREAM!") and pattern.search("ice\ncream")
    assert not pattern.search("ice creamery") and not pattern.search("nice cream")
    assert page_module.answer_pattern(" ... ") is None and page_module.answer_rank(None, ["anything"]) is None
    assert page_module.answer_rank(page_module.answer_pattern("cat"), ["category", "a Cat.", "cat"]) == 1


def test_spans_are_javascript_offsets():
    # U+1F600 takes two UTF-16 code units: the span of "cat" after it starts at 3, not 2.
    text = "\U0001F600 cat"
    assert page_module.answer_spans(page_module.answer_pattern("cat"), text) == [(3, 6)]
    words = page_module.query_words("Is the cat here?")
    assert words == {"cat", "here"} and page_module.query_spans(words, "The cat, the Cat") == [(4, 7), (13, 16)]


def test_summary_of_a_split():
    examples = [("blue", [(9.0, "the sky is blue"), (3.0, "grass")]),
                ("red", [(5.0, "grass"), (4.0, "a red rose")]),
                ("green", [(1.0, "sky")]),
                ("none", [])]
    summary = page_module.summarize_split(examples, top_k=(1, 2, 30))
    assert summary.num_examples == 4 and summary.documents_stored == 2
    assert summary.answer_in_top == {1: 1, 2: 2, 30: None}  # 30 documents are not stored: not measurable
    assert sum(summary.best_score.counts) == 3 and summary.best_score.edges[0] == 1.0
    assert summary.best_score.edges[-1] == 9.0 and summary.best_score_median == 5.0
    assert page_module.histogram([2.0, 2.0]) == page_module.Histogram([2.0, 2.0], [2])
    table = page_module.overview_table({"colors": {"eval": summary}}, top_k=(1, 2, 30))
    assert 'data-k="1" data-hits="1" data-total="4">25%' in table and 'data-k="30" title="only 2 documents' in table


@pytest.mark.e2e
def test_the_committed_page_is_regenerated_byte_for_byte(tmp_path):
    """Without --eval_dirs the page is what it was: the committed demo page, rebuilt from its own text files and
    summaries, with regenerate_demo.sh's title."""
    committed = REPO / "visualization"
    title = re.search(r'--title "([^"]+)"', (committed / "regenerate_demo.sh").read_text()).group(1)
    copy = tmp_path / "visualization"
    shutil.copytree(committed, copy)
    (copy / "index.html").unlink()
    assert vis.write_index_html(copy, title).read_bytes() == (committed / "index.html").read_bytes()


@pytest.fixture(scope="module")
def built_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("built") / "30aug"
    build.main(["--tasks", str(FIXTURE_TASK), "--corpus", str(CORPUS), "--num_documents", "3000",
                "--output", str(root)])
    return root


def answering_runs(root: Path, directory: Path) -> tuple[Path, Path]:
    """No Aug right on even rows; Zemi (3 documents) right unless the row is 2 mod 3; on every template."""
    def runs_rule(rule):
        return [from_template_dir(path, lambda n, example: gold_of(example) if rule(n) else wrong_of(example))
                for path in vis.template_dirs(root / "wordnet_acts")]

    no_aug = write_eval_dir(directory / "no_aug", "no_aug_base", runs_rule(lambda n: n % 2 == 0))
    zemi = write_eval_dir(directory / "zemi", "zemi_base", runs_rule(lambda n: n % 3 != 2), architecture=ZEMI,
                          settings=settings_for(ZEMI, documents_read=3))
    return no_aug, zemi


@pytest.mark.e2e
def test_eval_dirs_add_each_runs_answers_and_the_helped_and_hurt_counts(built_root, tmp_path):
    no_aug, zemi = answering_runs(built_root, tmp_path)
    plain, answered = tmp_path / "plain", tmp_path / "answered"
    common = ["--data_root", str(built_root), "--num_instances", "4", "--num_documents", "3"]
    vis.main([*common, "--output", str(plain)])
    vis.main([*common, "--output", str(answered), "--eval_dirs", str(no_aug), str(zemi)])
    page = (answered / "index.html").read_text()
    script = re.search(r"// Runs' answers .*?\noutcome\.addEventListener\(\"change\", \(\) => show\(\)\);\n", page,
                       re.S).group(0)
    assert page.replace(script, "") == (plain / "index.html").read_text()  # the answers are all it adds
    data = json.loads(re.search(r"const PREDICTIONS = (.*);\n", page).group(1).replace("<\\/", "</"))["wordnet_acts"]
    template = vis.template_dirs(built_root / "wordnet_acts")[0]
    validation = load_from_disk(str(template))["validation"]
    assert data["template"] == template.name and [m["name"] for m in data["methods"]] == ["no_aug_base", "zemi_base"]
    assert data["reference"] == 0 and [m["step"] for m in data["methods"]] == [1, 1]
    rows = range(len(validation))
    helped = sum(n % 3 != 2 and n % 2 == 1 for n in rows)
    hurt = sum(n % 3 == 2 and n % 2 == 0 for n in rows)
    assert data["filters"] == [{"method": "zemi_base", "helped": helped, "hurt": hurt, "examples": len(validation)}]
    shown = {record["index"] for views in [json.loads(re.search(r"const DATA = (.*);\n", page).group(1)
                                                      .replace("<\\/", "</"))["wordnet_acts"]["eval"]]
             for records in views.values() for record in records}
    assert {int(i) for i in data["examples"]} == shown and len(shown) < len(validation)
    for index, answers in data["examples"].items():
        example = validation[int(index)]
        choices = [c.strip() for c in example["answer_choices"]]
        for (text, right), rule in zip(answers, (lambda n: n % 2 == 0, lambda n: n % 3 != 2)):
            assert right == rule(int(index))
            assert text == choices[gold_of(example) if right else wrong_of(example)]


@pytest.mark.e2e
def test_eval_dirs_without_per_example_files_are_refused(built_root, tmp_path, capsys):
    old = write_eval_dir(tmp_path / "old", "no_aug_base",
                         [Template("wordnet_acts", vis.template_dirs(built_root / "wordnet_acts")[0].name, [0], [0])],
                         legacy=True)
    with pytest.raises(SystemExit) as stop:
        run_entry(vis.main, ["--data_root", str(built_root), "--output", str(tmp_path / "out"), "--eval_dirs",
                             str(old)])
    assert stop.value.code == 2 and str(old) in capsys.readouterr().err
