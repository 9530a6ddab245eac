"""Corpus readers (local jsonl / parquet / arrow, first N or a fraction, 256-word cut), C4 shard naming, and the
memory-mapped document store."""

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
    documents_for_fraction,
    iter_documents,
    iter_local,
)

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
        expected = [" ".join(json.loads(next(handle))["text"].split()) for _ in range(5)]
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
    assert list(iter_documents(str(path), fraction=0.25)) == [" ".join(t.split()) for t in texts[:10]]


def test_documents_are_cut_to_their_first_words(tmp_path):
    path = tmp_path / "long.jsonl"
    path.write_text(json.dumps({"text": " ".join(f"w{i}" for i in range(600))}) + "\n")
    (document,) = iter_documents(str(path))
    assert document.split() == [f"w{i}" for i in range(256)]
    (short,) = iter_documents(str(path), max_words=3)
    assert short == "w0 w1 w2"


def test_document_store_round_trip_is_memory_mapped(tmp_path):
    texts = [f"text {i} ünïcode" for i in range(1_234)] + [""]
    store = DocumentStore.write(tmp_path / "documents.arrow", iter(texts), batch_size=100)
    assert len(store) == len(texts)
    assert store.texts([5, 0, 1_234, 5]) == [texts[5], texts[0], "", texts[5]]
    reopened = DocumentStore.open(tmp_path / "documents.arrow")
    slices = list(reopened.iter_slices(500))
    assert [start for start, _ in slices] == [0, 500, 1_000]
    assert [text for _, chunk in slices for text in chunk] == texts
    assert not (tmp_path / "documents.arrow.partial").exists()


def test_conflicting_size_options_fail():
    with pytest.raises(ValueError):
        list(iter_documents(str(CORPUS), num_documents=3, fraction=0.5))
