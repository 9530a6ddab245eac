"""The authors' Elasticsearch indexed each document's full text and cut it to 256 words only when returning it: so do
we. Also: queries searched from worker processes give exactly a serial search's hits."""

from __future__ import annotations

import json

import numpy as np
import pytest

from zemi.data import build
from zemi.retrieval import BM25Index, DocumentStore, build_sharded_index
from zemi.retrieval.examples import retrieve_for_examples
from zemi.retrieval.sharded import ParallelSearch
from tests.test_retrieval_bm25 import NUM_DOCUMENTS, built, demo_texts, queries

pytestmark = pytest.mark.unit


def _filler(count: int, tag: str) -> str:
    # Newlines and runs of spaces, as in C4: the authors' cut counts words between single spaces.
    return " ".join(f"{tag}{i}\n" if i % 40 == 39 else f"{tag}{i}" for i in range(count)) + "  "


# Document 0 names the zebra only after its 256th word; document 1 names it once in 252 words; document 2
# twice, but in a long text whose length (under BM25's length norm) counts only in full.
CORPUS = [
    _filler(300, "a") + " the zebra grazes",
    "a zebra " + _filler(250, "b"),
    "zebra zebra " + _filler(200, "c") + _filler(2_000, "d"),
    *(_filler(50, f"x{n}_") for n in range(20)),
]


def _build(tmp_path, *extra: str) -> tuple[build.BuildConfig, DocumentStore, object]:
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text("".join(json.dumps({"text": text}) + "\n" for text in CORPUS))
    config = build.parse_args(["--corpus", str(corpus), "--output", str(tmp_path / "30aug"), *extra])
    store = build.prepare_store(config)
    return config, store, build.prepare_index(config, store)


def test_the_index_holds_full_texts_and_returns_them_cut(tmp_path):
    config, store, index = _build(tmp_path)
    hits = index.search(["zebra"], k=10)[0]
    # Full-text statistics: document 0 matches (its cut text does not), and document 2's 2,200-word length puts
    # it below document 1 although its cut text (tf 2 in 256 words) would rank first.
    assert [doc for doc, _ in hits] == [1, 0, 2]
    cut_index = BM25Index.build([text for text in store.texts(range(3), max_words=256)] + CORPUS[3:])
    assert [doc for doc, _ in cut_index.search(["zebra"], k=10)[0]] == [2, 1]
    assert store.texts([0, 2]) == [CORPUS[0], CORPUS[2]]
    returned = store.texts([doc for doc, _ in hits], max_words=config.document_words)
    assert returned == [" ".join(CORPUS[doc].split(" ")[:256]) for doc, _ in hits]
    assert "zebra" not in returned[1] and "\n" in returned[1]


def test_the_written_documents_are_the_cut_texts(tmp_path):
    config, store, index = _build(tmp_path)
    hits = {"validation": retrieve_for_examples(index, [{"q": "zebra"}], ["q"])}
    task = build.resolve_tasks([str(build.Path(__file__).parent / "fixtures" / "retrieval" / "wordnet_acts")])[0]
    raw = {"validation": [{"question": "What grazes?", "choices": ["zebra", "fish"], "label": 0}]}
    template = build.load_templates(task)[1]
    build.write_template(task, template, raw, {"validation": [hits["validation"][0]]}, store, tmp_path / "out",
                         document_words=256)
    from datasets import load_from_disk

    written = load_from_disk(str(tmp_path / "out" / task.dataset_dir / build.template_dir_name(task, template.name)))
    documents = [doc["inputs_pretokenized"] for doc in written["validation"][0]["chosen_examples"]]
    assert documents == [" ".join(CORPUS[doc].split(" ")[:256]) for doc, _ in hits["validation"][0]]


def test_parallel_search_equals_serial_search(tmp_path):
    store = DocumentStore.write(tmp_path / "documents.arrow", demo_texts(NUM_DOCUMENTS))
    index = build_sharded_index(store, tmp_path / "index", shard_size=1_000)
    serial = index.search(list(queries()), k=30)
    with ParallelSearch(tmp_path / "index", num_workers=2, chunk_size=7) as parallel:
        assert parallel.search(list(queries()), k=30) == serial
        assert parallel.search([], k=30) == []


def test_sharded_float32_index_keeps_the_reference_ranking_close(tmp_path):
    store = DocumentStore.write(tmp_path / "documents.arrow", demo_texts(NUM_DOCUMENTS))
    index = build_sharded_index(store, tmp_path / "index", shard_size=1_000)
    assert all(shard.engine.retriever.scores["data"].dtype == np.float32 for shard in index.shards)
    for got, expected in zip(index.search(list(queries()), k=30), built("bm25s", "lucene").search(queries(), k=30)):
        np.testing.assert_allclose([s for _, s in got], [s for _, s in expected], rtol=1e-5)
