"""Visualization files: the authors' text format, parsed back into the same instances; the CLI and index.html."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from datasets import load_from_disk
from hypothesis import given, settings, strategies as st

from zemi.tools import visualize_retrieval as vis
from zemi.data import build

REPO = Path(__file__).resolve().parents[1]
FIXTURE_TASK = REPO / "tests" / "fixtures" / "retrieval" / "wordnet_acts"
CORPUS = REPO / "data" / "demo" / "corpus.jsonl.gz"

_MARKERS = ("=======", "Target Text: ", vis.DOCUMENTS_LINE, vis.DOCUMENT_END)
prompt_text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=80).filter(
    lambda s: not any(marker in s for marker in _MARKERS))
document_text = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\n\r"), max_size=80).map(
    lambda s: " ".join(s.split()))
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


def test_parser_rejects_other_text():
    with pytest.raises(ValueError):
        vis.parse_instances("some notes\n======= Instance Index 0 =========\n")


def test_selection_of_first_highest_and_lowest():
    items = [vis.Instance(i, "q", "a", [vis.Document(0, s, "d")] if s is not None else [])
             for i, s in enumerate([3.0, 9.0, None, 9.0, 1.0])]
    assert [x.index for x in vis.select(items, "first", 2)] == [0, 1]
    assert [x.index for x in vis.select(items, "highest", 3)] == [1, 3, 0]
    assert [x.index for x in vis.select(items, "lowest", 2)] == [2, 4]


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
    assert len(data) == 6 and data["first50_retrieval_instances/retrieval_vis_eval__wordnet_acts.txt"][0][
        "input_text"] == first[0].input_text
