"""Corpus readers (local jsonl / parquet / arrow, first N or a fraction), the authors' 256-word cut, C4 shard naming,
and the memory-mapped document store of full texts."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from zemi.retrieval.corpus import (
    C4_TRAIN_DOCUMENTS,
    DocumentStore,
    c4_shard_files,
    cut_words,
    documents_for_fraction,
    iter_documents,
    iter_local,
)

pytestmark = pytest.mark.unit

CORPUS = Path(__file__).resolve().parents[1] / "data" / "demo" / "corpus.jsonl.gz"


def test_the_authors_five_percent_of_c4():
    assert documents_for_fraction(0.05, C4_TRAIN_DOCUMENTS) == 18_243_444
    with pytest.raises(ValueError):
        documents_for_fraction(0.0, 10)


def test_c4_shard_files_are_the_hub_names_in_order():
    files = c4_shard_files()
    assert len(files) == 1024
    assert files[0] == "en/c4-train.00000-of-01024.json.gz"
    assert files[-1] == "en/c4-train.01023-of-01024.json.gz"
    assert c4_shard_files(first_shard=51, num_shards=2) == [
        "en/c4-train.00051-of-01024.json.gz", "en/c4-train.00052-of-01024.json.gz"]


def test_demo_corpus_first_documents_and_fraction():
    first = list(iter_documents(str(CORPUS), num_documents=5))
    with gzip.open(CORPUS, "rt") as handle:
        expected = [json.loads(next(handle))["text"] for _ in range(5)]
    assert first == expected


@pytest.mark.parametrize("suffix", ["jsonl", "jsonl.gz", "parquet", "arrow", "arrow-stream", "directory"])
def test_local_formats_read_the_same_texts(tmp_path, suffix):
    texts = [f"document number {i} " + "word " * (i % 7) for i in range(40)]
    if suffix in ("jsonl", "jsonl.gz"):
        path = tmp_path / f"corpus.{suffix}"
        opener = gzip.open if suffix.endswith(".gz") else open
        with opener(path, "wt") as handle:
            handle.writelines(json.dumps({"id": str(i), "text": t}) + "\n" for i, t in enumerate(texts))
    elif suffix == "parquet":
        path = tmp_path / "corpus.parquet"
        pq.write_table(pa.table({"text": texts}), path, row_group_size=7)
    elif suffix == "arrow":
        path = tmp_path / "corpus.arrow"
        with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_file(sink, pa.schema([("text", pa.string())])) as w:
            w.write_table(pa.table({"text": texts}))
    elif suffix == "arrow-stream":  # what `datasets` writes in its cache
        path = tmp_path / "data.arrow"
        with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_stream(sink, pa.schema([("text", pa.string())])) as w:
            w.write_table(pa.table({"text": texts}))
    else:
        path = tmp_path / "shards"
        path.mkdir()
        for part in range(2):
            pq.write_table(pa.table({"text": texts[part * 20 : (part + 1) * 20]}), path / f"part-{part}.parquet")
    assert list(iter_local(path)) == texts
    assert list(iter_documents(str(path), fraction=0.25)) == texts[:10]


def test_the_cut_splits_on_single_spaces_as_the_authors_did():
    # `' '.join(text.split(' ')[:n])`: a newline or tab does not end a word, and each extra space of a run is
    # an empty word of its own.
    assert cut_words("one two\nthree\tfour  five six", 3) == "one two\nthree\tfour "
    assert cut_words("a  b", 2) == "a "
    assert cut_words("para one.\n\npara two is here", 3) == "para one.\n\npara two"
    assert cut_words("short text", 256) == "short text"
    assert cut_words("", 20) == ""
    text = "  ".join(f"w{i}\n" for i in range(300))
    assert cut_words(text, 256) == " ".join(text.split(" ")[:256])


def test_the_store_keeps_full_texts_and_returns_them_cut(tmp_path):
    long_text = "\n".join(" ".join(f"w{line}_{i}" for i in range(50)) for line in range(12))  # 600 words
    path = tmp_path / "long.jsonl"
    path.write_text(json.dumps({"text": long_text}) + "\n")
    (document,) = iter_documents(str(path))
    assert document == long_text
    store = DocumentStore.write(tmp_path / "documents.arrow", [document])
    assert store.texts([0]) == [long_text]
    (cut,) = store.texts([0], max_words=256)
    assert cut == " ".join(long_text.split(" ")[:256]) and "\n" in cut
    assert len(cut.split(" ")) == 256 and len(cut.split()) > 256  # newline-joined pairs count as one word


def test_document_store_round_trip_is_memory_mapped(tmp_path):
    texts = [f"text {i} ünïcode" for i in range(1_234)] + [""]
    store = DocumentStore.write(tmp_path / "documents.arrow", iter(texts), batch_size=100)
    assert len(store) == len(texts)
    assert store.texts([5, 0, 1_234, 5]) == [texts[5], texts[0], "", texts[5]]
    reopened = DocumentStore.open(tmp_path / "documents.arrow")
    ranges = list(reopened.shard_ranges(500))
    assert ranges == [(0, 500), (500, 1_000), (1_000, 1_235)]
    assert [text for start, stop in ranges for text in reopened.iter_texts(start, stop, batch_size=70)] == texts
    assert list(reopened.iter_texts(1_230)) == texts[1_230:]
    assert not (tmp_path / "documents.arrow.partial").exists()


def test_conflicting_size_options_fail():
    with pytest.raises(ValueError):
        list(iter_documents(str(CORPUS), num_documents=3, fraction=0.5))
