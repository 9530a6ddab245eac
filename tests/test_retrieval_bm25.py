"""BM25Index on real English text: engine parity, the Lucene formula, ties, save/load, sharding."""

from __future__ import annotations

import gzip
import json
import math
from collections import Counter
from functools import lru_cache
from itertools import islice
from pathlib import Path

import numpy as np
import pytest

from zemi.retrieval import BM25Index, DocumentStore, build_sharded_index, open_index, tokenize
from zemi.retrieval.bm25 import top_k
from zemi.retrieval.scoring import lucene_length_norm

pytestmark = pytest.mark.unit

CORPUS = Path(__file__).resolve().parents[1] / "data" / "demo" / "corpus.jsonl.gz"
NUM_DOCUMENTS = 3_000


@lru_cache(maxsize=None)
def demo_texts(count: int, skip: int = 0) -> tuple[str, ...]:
    """Real English documents: the demo WordNet corpus, in file order."""
    with gzip.open(CORPUS, "rt", encoding="utf-8") as handle:
        return tuple(json.loads(line)["text"] for line in islice(handle, skip, skip + count))


@lru_cache(maxsize=None)
def queries() -> tuple[str, ...]:
    """20-word queries from documents that are not indexed, plus edge cases."""
    held_out = [" ".join(text.split()[:20]) for text in demo_texts(60, skip=NUM_DOCUMENTS)]
    return tuple(held_out + ["the", "a kind of act of the", "zzzqqq unknownword", "", "1,000 U.S.A."])


@lru_cache(maxsize=None)
def built(backend: str, scoring: str) -> BM25Index:
    """Reference comparisons need every bit of the weights: the bm25s matrix in float64, not the float32 default."""
    extra = {"dtype": "float64"} if backend == "bm25s" else {}
    return BM25Index.build(demo_texts(NUM_DOCUMENTS), backend=backend, scoring=scoring, **extra)


@pytest.mark.parametrize("scoring", ["lucene", "okapi"])
def test_backends_agree_on_ids_and_scores(scoring):
    fast = built("bm25s", scoring).search(queries(), k=30)
    reference = built("rank_bm25", scoring).search(queries(), k=30)
    assert sum(len(hits) for hits in fast) > 1_000
    for fast_hits, reference_hits in zip(fast, reference):
        assert [doc for doc, _ in fast_hits] == [doc for doc, _ in reference_hits]
        np.testing.assert_allclose([s for _, s in fast_hits], [s for _, s in reference_hits], rtol=1e-6)


def _direct_lucene_scorer(documents, k1=1.2, b=0.75):
    """Lucene BM25 written out per document: sum over query tokens of idf * tf / (tf + k1 * (1 - b + b * dl / avgdl)),
    idf = ln(1 + (N - n + 0.5) / (n + 0.5)), dl the one-byte-norm length, N and avgdl over non-empty documents."""
    token_lists = [tokenize(text) for text in documents]
    doc_count = sum(1 for tokens in token_lists if tokens)
    avgdl = sum(len(tokens) for tokens in token_lists) / doc_count
    df = Counter(term for tokens in token_lists for term in set(tokens))
    term_freqs = [Counter(tokens) for tokens in token_lists]
    norms = [float(lucene_length_norm(np.array([len(tokens)]))[0]) for tokens in token_lists]

    def scores(query):
        terms = tokenize(query)
        idf = {term: math.log(1 + (doc_count - df[term] + 0.5) / (df[term] + 0.5)) for term in terms if df[term]}
        result = []
        for tf, dl in zip(term_freqs, norms):
            score = 0.0
            for term in terms:
                if tf[term]:
                    score += idf[term] * tf[term] / (tf[term] + k1 * (1 - b + b * dl / avgdl))
            result.append(score)
        return result

    return scores


def test_lucene_scores_equal_the_formula():
    direct = _direct_lucene_scorer(demo_texts(NUM_DOCUMENTS))
    index = built("bm25s", "lucene")
    for query in queries()[:15]:
        expected = direct(query)
        ranked = sorted((i for i, s in enumerate(expected) if s > 0), key=lambda i: (-expected[i], i))[:30]
        hits = index.search([query], k=30)[0]
        assert [doc for doc, _ in hits] == ranked
        np.testing.assert_allclose([s for _, s in hits], [expected[i] for i in ranked], rtol=1e-9)


def test_lucene_length_norm_changes_scores_of_long_documents():
    # Two documents that differ only in length 100 vs 101 tokens share one Lucene norm (96): equal scores.
    filler = " ".join(f"w{i}" for i in range(98))
    others = ["pear plum", "fig date", "kiwi lime", "plum fig", "lime date"]
    documents = [f"apple pear {filler}", f"apple pear {filler} extra", *others]
    hits = BM25Index.build(documents, scoring="lucene").search(["apple"], k=3)[0]
    assert [doc for doc, _ in hits] == [0, 1] and hits[0][1] == hits[1][1]
    okapi = BM25Index.build(documents, scoring="okapi").search(["apple"], k=3)[0]
    assert okapi[0][1] > okapi[1][1]


@pytest.mark.parametrize("backend", ["bm25s", "rank_bm25"])
def test_ties_break_by_lower_doc_id_and_only_matches_are_hits(backend):
    documents = ["red fox", "blue whale", "red fox", "green frog", "red fox"]
    index = BM25Index.build(documents, backend=backend)
    hits = index.search(["fox", "whale frog", "nothing here"], k=2)
    assert [doc for doc, _ in hits[0]] == [0, 2]
    assert hits[0][0][1] == hits[0][1][1] > 0
    assert sorted(doc for doc, _ in hits[1]) == [1, 3]
    assert hits[2] == []


def test_top_k_keeps_all_ties_at_the_boundary_before_choosing_lowest_ids():
    scores = np.array([0.0, 2.0, 1.0, 2.0, 2.0, 3.0, -1.0])
    assert top_k(scores, 3) == [(5, 3.0), (1, 2.0), (3, 2.0)]
    assert top_k(scores, 10) == [(5, 3.0), (1, 2.0), (3, 2.0), (4, 2.0), (2, 1.0)]


def test_worker_processes_build_the_same_index():
    parallel = BM25Index.build(demo_texts(NUM_DOCUMENTS), num_workers=2, dtype="float64")
    assert parallel.search(queries(), k=30) == built("bm25s", "lucene").search(queries(), k=30)


def test_streaming_build_in_many_chunks_equals_one_chunk(monkeypatch):
    from zemi.retrieval import bm25

    monkeypatch.setattr(bm25, "CHUNK_DOCUMENTS", 7)  # 429 chunks, the last one partial
    chunked = BM25Index.build(iter(demo_texts(NUM_DOCUMENTS)), dtype="float64")
    reference = built("bm25s", "lucene").engine.retriever.scores
    for key in ("data", "indices", "indptr"):
        np.testing.assert_array_equal(chunked.engine.retriever.scores[key], reference[key])


def test_float32_weights_and_int32_indices_by_default_keep_scores_close():
    small = BM25Index.build(demo_texts(NUM_DOCUMENTS))
    matrix = small.engine.retriever.scores
    assert matrix["data"].dtype == np.float32 and matrix["indices"].dtype == np.int32
    for got, expected in zip(small.search(queries(), k=30), built("bm25s", "lucene").search(queries(), k=30)):
        np.testing.assert_allclose([s for _, s in got], [s for _, s in expected], rtol=1e-5)


def test_search_rejects_a_bare_string():
    with pytest.raises(TypeError):
        built("bm25s", "lucene").search("a query", k=5)


def test_unknown_backend_fails_loudly():
    with pytest.raises(ValueError, match="unknown backend"):
        BM25Index.build(["text"], backend="lucene")


@pytest.mark.parametrize("backend", ["bm25s", "rank_bm25"])
def test_save_load_round_trip(tmp_path, backend):
    index = built(backend, "lucene")
    index.save(tmp_path / "index")
    loaded = BM25Index.load(tmp_path / "index")
    assert (loaded.backend, loaded.scoring, loaded.params, len(loaded)) == (backend, "lucene", index.params, len(index))
    assert loaded.search(queries()[:20], k=30) == index.search(queries()[:20], k=30)
    if backend == "bm25s":  # the score matrix stays on disk
        assert isinstance(loaded.engine.retriever.scores["data"], np.memmap)


@pytest.mark.parametrize("scoring", ["lucene", "okapi"])
def test_sharded_index_equals_one_index(tmp_path, scoring):
    store = DocumentStore.write(tmp_path / "documents.arrow", demo_texts(NUM_DOCUMENTS), batch_size=700)
    sharded = build_sharded_index(store, tmp_path / "index", shard_size=1_100, scoring=scoring, dtype="float64")
    assert len(sharded.shards) == 3 and len(sharded) == NUM_DOCUMENTS
    single = built("bm25s", scoring).search(queries(), k=30)
    for merged, expected in zip(sharded.search(queries(), k=30), single):
        assert [doc for doc, _ in merged] == [doc for doc, _ in expected]
        np.testing.assert_allclose([s for _, s in merged], [s for _, s in expected], rtol=1e-12)
    reopened = open_index(tmp_path / "index")
    assert reopened.search(queries()[:5], k=30) == sharded.search(queries()[:5], k=30)


def test_sharded_build_resumes_without_redoing_finished_shards(tmp_path):
    store = DocumentStore.write(tmp_path / "documents.arrow", demo_texts(1_000))
    build_sharded_index(store, tmp_path / "index", shard_size=400)
    finished = (tmp_path / "index" / "shard_00000" / "data.csc.index.npy").stat().st_mtime_ns
    (tmp_path / "index" / "shards.json").unlink()
    import shutil

    shutil.rmtree(tmp_path / "index" / "shard_00002")  # as if the run had stopped before the last shard
    resumed = build_sharded_index(store, tmp_path / "index", shard_size=400)
    assert (tmp_path / "index" / "shard_00000" / "data.csc.index.npy").stat().st_mtime_ns == finished
    assert len(resumed) == 1_000 and (tmp_path / "index" / "shard_00002").is_dir()


def test_bm25s_reads_our_matrix_through_its_own_api(tmp_path):
    """Our index fills the attributes bm25s 0.3.16's `index()` sets (it has no public call for precomputed
    weights). bm25s's own indexing must still set exactly those, and its own scoring and loading must read our
    matrix as we do: a bm25s release that changes them fails here, not silently in a build."""
    import bm25s

    reference = bm25s.BM25()
    reference.index([["a", "b"], ["b", "c"]], show_progress=False)
    assert {"scores", "vocab_dict", "nonoccurrence_array"} <= set(vars(reference))
    assert set(reference.scores) == {"data", "indices", "indptr", "num_docs"}

    index = built("bm25s", "lucene")
    retriever = index.engine.retriever
    index.save(tmp_path / "index")
    reloaded = bm25s.BM25.load(str(tmp_path / "index"), mmap=True, load_corpus=False, show_progress=False)
    for query in queries()[:20]:
        tokens = [token for token in tokenize(query) if token in retriever.vocab_dict]
        if not tokens:
            continue
        ours = index.engine.scores(tokens)
        np.testing.assert_allclose(retriever.get_scores(tokens), ours, rtol=1e-6, atol=1e-9)
        np.testing.assert_allclose(reloaded.get_scores(tokens), ours, rtol=1e-6, atol=1e-9)
