"""The model card `zemi-convert` writes says what the model is: its Hub pipeline, which
baseline a plain T5 run is, and the paper as the README cites it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from zemi.run.run_directory import RunDirectory
from zemi.tools.convert import model_card

pytestmark = pytest.mark.unit

README = Path(__file__).resolve().parents[1] / "README.md"


def card(args: dict) -> str:
    return model_card(RunDirectory(path=Path("output/p3_finetuning/run"), args=args), 7, None)


def header(text: str) -> str:
    return text.split("---")[1]


def title(text: str) -> str:
    return next(line for line in text.splitlines() if line.startswith("# "))


def test_a_seq2seq_t5_is_tagged_text2text_generation():
    metadata = header(card({"model_architecture": "T5", "lm_name": "google/t5-base-lm-adapt"}))
    assert re.search(r"^pipeline_tag: text2text-generation$", metadata, re.M)


@pytest.mark.parametrize("args, expected, absent", [
    ({"model_architecture": "T5", "concat_aug_num": 0}, "No Aug baseline", "Concat"),
    ({"lm_name": "google/t5-base-lm-adapt"}, "No Aug baseline", "Concat"),  # the authors' baseline args.json
    ({"model_architecture": "T5", "concat_aug_num": 5}, "Concat baseline (5 documents)", "No Aug"),
    ({"concat_aug_num": 3}, "Concat baseline (3 documents)", "No Aug"),
])
def test_a_plain_t5_run_is_named_for_its_documents(args, expected, absent):
    text = card(args)
    assert expected in title(text) and absent not in title(text)
    assert f"A {expected} model of" in text


def test_the_citation_is_the_readmes():
    readme = README.read_text()
    venue = re.search(r"\*([^*]+)\*, ACL Findings (\d{4})", readme)
    arxiv = re.search(r"arXiv (\d{4}\.\d{5})", readme)
    assert venue and arxiv, "the README no longer cites the paper as this test reads it"
    citation = card({"model_architecture": "T5"}).split("## Citation")[1]
    assert venue.group(1) in citation
    assert f"year={{{venue.group(2)}}}" in citation and f"ACL {venue.group(2)}" in citation
    assert arxiv.group(1) in citation
    assert "2022" not in citation
