"""The demo corpus: WordNet parsing, document rendering, deterministic writing, and the committed file."""

from __future__ import annotations

import gzip
import hashlib
import json

import pytest

from demo_builders import corpus, wordnet
from demo_builders.wordnet import Pointer, Synset

pytestmark = pytest.mark.unit

DALMATIAN = ("02110341 05 n 03 dalmatian 0 coach_dog 0 carriage_dog 0 002 @ 02084071 n 0000 ~ 02110532 n 0000 | "
             "a large breed having a smooth white coat with black or brown spots; originated in Dalmatia  ")
HAS_WORDNET = all((wordnet.DEFAULT_WORDNET_DIR / name).is_file() for _, name in wordnet.POS_FILES)


def test_parse_line_reads_words_pointers_and_category():
    synset = wordnet.parse_line(DALMATIAN, "n")
    assert synset.id == "02110341-n" and synset.lexname == "noun.animal"
    assert synset.words == ("dalmatian", "coach dog", "carriage dog")
    assert synset.related("@") == [Pointer("@", "02084071-n", 0, 0)]
    assert synset.definition.endswith("originated in Dalmatia") and synset.examples == ()


def test_parse_line_handles_satellites_markers_and_lexical_pointers():
    line = "00002098 00 s 01 galore(ip) 0 001 & 00001740 a 0000 | plentiful; \"bottles galore\"  "
    synset = wordnet.parse_line(line, "a")
    assert synset.satellite and synset.words == ("galore",)
    assert synset.pointers[0].target == "00001740-a"
    assert synset.examples == ("bottles galore",)


@pytest.mark.parametrize("gloss, definition, examples", [
    ("a friend; \"friendly advice\"; \"a friendly neighborhood\"", "a friend", ("friendly advice", "a friendly neighborhood")),
    ("no examples; only a definition", "no examples; only a definition", ()),
])
def test_split_gloss(gloss, definition, examples):
    assert wordnet.split_gloss(gloss) == (definition, examples)


def _toy_synsets() -> dict[str, Synset]:
    dog = Synset("00000001-n", "n", "noun.animal", False, ("dog",), "a domestic canine", (), ())
    dalmatian = wordnet.parse_line(DALMATIAN.replace("02084071", "00000001"), "n")
    long = Synset("2-n", "n", "noun.animal", False, ("spotted dog",), " ".join(["word"] * 200),
                  ("an example that will not fit",), (Pointer("@", "00000001-n", 0, 0),))
    return {dog.id: dog, dalmatian.id: dalmatian, "2-n": long}


def test_document_states_the_relations_and_fits_the_budget():
    synsets = _toy_synsets()
    text = corpus.document_text(synsets["02110341-n"], synsets)
    assert text.startswith("dalmatian, coach dog, carriage dog (noun, animal): A large breed")
    assert "Dalmatian is a kind of dog." in text
    long_text = corpus.document_text(synsets["2-n"], synsets)
    assert len(long_text) <= corpus.MAX_CHARS and long_text.endswith("Spotted dog is a kind of dog.")
    assert "Example" not in long_text


def test_writing_is_byte_identical(tmp_path):
    records = [{"id": "a", "text": "first"}, {"id": "b", "text": "second é"}]
    first, second = tmp_path / "one.jsonl.gz", tmp_path / "two.jsonl.gz"
    corpus.write_jsonl_gz(records, first)
    corpus.write_jsonl_gz(records, second)
    assert first.read_bytes() == second.read_bytes()
    assert corpus.read_corpus(first) == records


def test_committed_corpus_has_valid_records():
    records = corpus.read_corpus()
    assert len(records) == 117_659
    assert all(set(r) == {"id", "text"} and r["text"].strip() for r in records)
    assert len({r["id"] for r in records}) == len(records)
    texts = {r["id"]: r["text"] for r in records}
    assert "Dalmatian is a kind of dog." in texts["02110341-n"]
    assert sum(len(t) > corpus.MAX_CHARS for t in texts.values()) < 0.01 * len(texts)


@pytest.mark.skipif(not HAS_WORDNET, reason="WordNet 3.0 data files not installed (apt-get install wordnet-base)")
def test_rebuilding_the_corpus_reproduces_the_committed_bytes(tmp_path):
    output = tmp_path / "corpus.jsonl.gz"
    corpus.main(["--output", str(output)])
    digest = hashlib.sha256(output.read_bytes()).hexdigest()
    assert digest == hashlib.sha256(corpus.CORPUS_PATH.read_bytes()).hexdigest()
    with gzip.open(output, "rt") as handle:
        assert json.loads(handle.readline())["id"] == "00001740-n"
