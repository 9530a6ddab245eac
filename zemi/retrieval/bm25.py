"""`BM25Index`: one interface over two engines (bm25s sparse matrices, rank_bm25) and two scorings (lucene, okapi).

Build from document texts, search with query texts; results are (doc_id, score) lists, best first, ties by doc_id.
"""

from __future__ import annotations

import json
import logging
import math
import pickle
from multiprocessing import get_context
from pathlib import Path
from itertools import islice
from typing import Iterable, Iterator, Sequence

import numpy as np
import rank_bm25

from zemi.errors import ConfigError
from zemi.retrieval.analyzer import tokenize
from zemi.retrieval.scoring import (
    CollectionSize,
    idf_for_terms,
    lucene_length_norm,
    okapi_idf_floor,
    scoring_parameters,
    term_weights,
)

logger = logging.getLogger(__name__)

BACKENDS = ("bm25s", "rank_bm25")
METADATA_FILE = "zemi_bm25.json"
Hits = list[tuple[int, float]]


def iter_token_lists(texts: Iterable[str], num_workers: int = 1) -> Iterator[list[str]]:
    """Tokenised texts in order, from worker processes when `num_workers` > 1 (tokenising dominates indexing)."""
    if num_workers <= 1:
        yield from map(tokenize, texts)
        return
    # Pool.imap would read the whole iterable ahead of the workers; feeding it a block at a time bounds memory.
    chunk_size = 500
    iterator = iter(texts)
    with get_context("spawn").Pool(num_workers) as pool:
        while block := list(islice(iterator, 8 * num_workers * chunk_size)):
            yield from pool.imap(tokenize, block, chunksize=chunk_size)


# Documents are turned into (term, document, term frequency) triples this many at a time, so that only one
# chunk's token lists exist at once; the triples of all chunks (12 bytes each) are the build's main memory.
CHUNK_DOCUMENTS = 20_000


def _chunk_triples(token_lists: list[list[str]], vocab: dict[str, int], first_doc: int):
    """(term ids, doc ids, term frequencies) of some documents, sorted by term then document, and their lengths.

    New terms get the next vocabulary id, so ids follow first occurrence in the corpus (as rank_bm25's dicts do).
    """
    lengths = np.fromiter(map(len, token_lists), dtype=np.int64, count=len(token_lists))
    flat = np.fromiter((vocab.setdefault(t, len(vocab)) for tokens in token_lists for t in tokens),
                       dtype=np.int64, count=int(lengths.sum()))
    span = max(len(token_lists), 1)
    keys = flat * span + np.repeat(np.arange(len(token_lists), dtype=np.int64), lengths)
    keys, term_freqs = np.unique(keys, return_counts=True)  # sorted keys: term-major, documents ascending
    terms, docs = np.divmod(keys, span)
    return (terms.astype(np.int32), (docs + first_doc).astype(np.int32), term_freqs.astype(np.int32)), lengths


def top_k(scores: np.ndarray, k: int) -> Hits:
    """The `k` best positive scores as (doc_id, score), best first, equal scores by lower doc_id.

    Only documents with a positive score count as hits: under Lucene scoring exactly those matching a query term.
    """
    candidates = np.flatnonzero(scores > 0)
    if candidates.size > k:
        candidate_scores = scores[candidates]
        kth_best = np.partition(candidate_scores, candidates.size - k)[candidates.size - k]
        candidates = candidates[candidate_scores >= kth_best]  # keeps every document tied with the k-th
    order = np.lexsort((candidates, -scores[candidates]))[:k]
    chosen = candidates[order]
    return [(int(doc), float(scores[doc])) for doc in chosen]


class SparseMatrixEngine:
    """bm25s's precomputed sparse index: a term-by-document CSC matrix of BM25 weights, memory-mappable.

    We fill the matrix with our own scorer (bm25s has neither Lucene's length norms nor rank_bm25's idf floor) and
    score a query with one `bincount`, which adds its token weights in query order, as rank_bm25 does.
    """

    def __init__(self, *, retriever):
        self.retriever = retriever  # a bm25s.BM25 whose `scores` and `vocab_dict` we filled

    @classmethod
    def build(cls, token_lists: Iterable[list[str]], *, scoring: str, params: dict, size: CollectionSize | None,
              term_doc_freq=None, dtype: str = "float32") -> "SparseMatrixEngine":
        """Index tokenised documents; `size`/`term_doc_freq` give corpus-wide statistics when this is a shard.

        Streaming: token lists are consumed a chunk at a time; the CSC arrays are then filled chunk by chunk with a
        counting sort (no global argsort), and each chunk's triples are freed once placed.
        """
        import bm25s

        vocab: dict[str, int] = {}
        chunks, lengths_list, iterator, first_doc = [], [], iter(token_lists), 0
        while token_chunk := list(islice(iterator, CHUNK_DOCUMENTS)):
            triples, lengths = _chunk_triples(token_chunk, vocab, first_doc)
            chunks.append(triples)
            lengths_list.append(lengths)
            first_doc += len(token_chunk)
        lengths = np.concatenate(lengths_list) if lengths_list else np.zeros(0, np.int64)
        num_docs, num_terms = len(lengths), len(vocab)
        local_doc_freq = np.zeros(num_terms, dtype=np.int64)
        for terms, _, _ in chunks:
            local_doc_freq += np.bincount(terms, minlength=num_terms)
        if size is None:
            floor = okapi_idf_floor(local_doc_freq, num_docs, params.get("epsilon", 0.25))
            size = CollectionSize(num_docs, int((lengths > 0).sum()), int(lengths.sum()), floor)
            doc_freq = local_doc_freq
        else:
            doc_freq = np.fromiter((term_doc_freq[t] for t in vocab), dtype=np.int64, count=num_terms)
        idf = idf_for_terms(doc_freq, size, scoring, params)
        average_length = size.average_length(scoring)

        indptr = np.zeros(num_terms + 1, dtype=np.int64)
        np.cumsum(local_doc_freq, out=indptr[1:])
        indices = np.empty(int(indptr[-1]), dtype=np.int32)
        data = np.empty(int(indptr[-1]), dtype=dtype)
        cursor = indptr[:-1].copy()  # the next free slot of each term's column
        chunks.reverse()
        while chunks:
            terms, docs, term_freqs = chunks.pop()  # in document order; its memory is freed after this pass
            # A chunk's triples of one term are consecutive and in document order: the i-th goes to cursor + i.
            run_starts = np.flatnonzero(np.diff(terms, prepend=-1))
            run_lengths = np.diff(run_starts, append=len(terms))
            run_terms = terms[run_starts]
            slots = cursor[terms] + (np.arange(len(terms)) - np.repeat(run_starts, run_lengths))
            indices[slots] = docs
            data[slots] = term_weights(term_freqs, lengths[docs], idf[terms], average_length, scoring, params)
            cursor[run_terms] += run_lengths
        # bm25s's own `method` is never used: the matrix holds our weights, whatever the scoring.
        retriever = bm25s.BM25(k1=params["k1"], b=params["b"], method="lucene", dtype=dtype, int_dtype="int32")
        # bm25s (pinned: 0.3.16) has no public call that takes precomputed weights (`index()` computes its own), so
        # the three attributes its `index()` sets and its `save()` reads are set here: the CSC matrix `scores`, the
        # term -> column `vocab_dict`, and `nonoccurrence_array` (None: no BM25L/BM25+ term). tests/
        # test_retrieval_bm25.py fails if bm25s changes them: its own `get_scores` must read our matrix as we do.
        retriever.scores = {"data": data, "indices": indices, "indptr": indptr, "num_docs": num_docs}
        retriever.vocab_dict = vocab
        retriever.nonoccurrence_array = None
        return cls(retriever=retriever)

    @property
    def num_documents(self) -> int:
        return int(self.retriever.scores["num_docs"])

    def scores(self, tokens: list[str]) -> np.ndarray:
        """BM25 score of every document for one tokenised query (float64)."""
        matrix, vocab = self.retriever.scores, self.retriever.vocab_dict
        term_ids = [vocab[token] for token in tokens if token in vocab]
        if not term_ids:
            return np.zeros(self.num_documents)
        indptr = matrix["indptr"]
        spans = [(indptr[t], indptr[t + 1]) for t in term_ids]
        docs = np.concatenate([matrix["indices"][start:end] for start, end in spans])
        weights = np.concatenate([matrix["data"][start:end] for start, end in spans]).astype(np.float64, copy=False)
        return np.bincount(docs, weights=weights, minlength=self.num_documents)

    def save(self, path: Path) -> None:
        self.retriever.save(str(path), show_progress=False)

    @classmethod
    def load(cls, path: Path, *, mmap: bool = True) -> "SparseMatrixEngine":
        import bm25s

        retriever = bm25s.BM25.load(str(path), mmap=mmap, load_corpus=False, show_progress=False)
        return cls(retriever=retriever)


class LuceneRankBM25(rank_bm25.BM25):
    """rank_bm25's data structures scored with Lucene's BM25 (rank_bm25 ships no Lucene variant)."""

    def __init__(self, corpus, k1: float = 1.2, b: float = 0.75):
        self.k1 = k1
        self.b = b
        super().__init__(corpus)

    def _calc_idf(self, nd):
        # Lucene counts only documents that have the field (at least one token), also for the mean length.
        self.doc_count = sum(1 for length in self.doc_len if length > 0)
        self.avgdl = sum(self.doc_len) / max(self.doc_count, 1)
        for word, freq in nd.items():
            self.idf[word] = math.log(1 + (self.doc_count - freq + 0.5) / (freq + 0.5))

    def get_scores(self, query):
        score = np.zeros(self.corpus_size)
        doc_len = lucene_length_norm(np.array(self.doc_len)).astype(np.float64)
        for q in query:
            q_freq = np.array([(doc.get(q) or 0) for doc in self.doc_freqs], dtype=np.float64)
            score += (self.idf.get(q) or 0) * (q_freq / (q_freq + self.k1 * (1 - self.b + self.b * doc_len / self.avgdl)))
        return score


class RankBM25Engine:
    """The reference engine: rank_bm25 scores every document per query term in Python (slow, simple, trusted)."""

    def __init__(self, *, model):
        self.model = model

    @classmethod
    def build(cls, token_lists: Iterable[list[str]], *, scoring: str, params: dict, **unused) -> "RankBM25Engine":
        if unused.get("size") is not None:
            raise ConfigError("rank_bm25 indexes one corpus at once; shard with backend='bm25s'")
        token_lists = list(token_lists)
        if scoring == "okapi":
            model = rank_bm25.BM25Okapi(token_lists, k1=params["k1"], b=params["b"], epsilon=params["epsilon"])
        else:
            model = LuceneRankBM25(token_lists, k1=params["k1"], b=params["b"])
        return cls(model=model)

    @property
    def num_documents(self) -> int:
        return int(self.model.corpus_size)

    def scores(self, tokens: list[str]) -> np.ndarray:
        return np.asarray(self.model.get_scores(tokens), dtype=np.float64)

    def save(self, path: Path) -> None:
        with open(path / "rank_bm25.pkl", "wb") as handle:
            pickle.dump(self.model, handle, protocol=pickle.HIGHEST_PROTOCOL)

    @classmethod
    def load(cls, path: Path, *, mmap: bool = True) -> "RankBM25Engine":
        with open(path / "rank_bm25.pkl", "rb") as handle:
            return cls(model=pickle.load(handle))


ENGINES = {"bm25s": SparseMatrixEngine, "rank_bm25": RankBM25Engine}


class BM25Index:
    """A BM25 index over a list of documents; document ids are their positions (0-based) in that list."""

    def __init__(self, *, engine, backend: str, scoring: str, params: dict):
        self.engine = engine
        self.backend = backend
        self.scoring = scoring
        self.params = params

    @classmethod
    def build(
        cls,
        documents: Iterable[str],
        backend: str = "bm25s",
        scoring: str = "lucene",
        k1: float | None = None,
        b: float | None = None,
        *,
        size: CollectionSize | None = None,
        term_doc_freq=None,
        dtype: str = "float32",
        num_workers: int = 1,
    ) -> "BM25Index":
        """Index document texts (any iterable: they are read once, in order). `size` and `term_doc_freq` (term ->
        corpus-wide document frequency) make this a shard scored with the statistics of a larger corpus. The bm25s
        matrix holds float32 weights (Lucene's own precision); `dtype="float64"` keeps every bit of our float64
        weights, which the reference tests against rank_bm25 use."""
        if backend not in ENGINES:
            raise ConfigError(f"unknown backend {backend!r}; choose one of {BACKENDS}")
        params = scoring_parameters(scoring, k1, b)
        token_lists = iter_token_lists(documents, num_workers)
        engine = ENGINES[backend].build(
            token_lists, scoring=scoring, params=params, size=size, term_doc_freq=term_doc_freq, dtype=dtype
        )
        logger.info("indexed %d documents with %s (%s scoring)", engine.num_documents, backend, scoring)
        return cls(engine=engine, backend=backend, scoring=scoring, params=params)

    def __len__(self) -> int:
        return self.engine.num_documents

    def search(self, queries: Sequence[str], k: int = 30) -> list[Hits]:
        """For each query text, its `k` best (doc_id, score) pairs, best first, equal scores by lower doc_id."""
        if isinstance(queries, str):
            raise TypeError("search takes a list of query texts, not one string")
        return [top_k(self.engine.scores(tokenize(query)), k) for query in queries]

    def save(self, path: str | Path) -> None:
        """Write the index to directory `path` (bm25s: .npy arrays that `load` memory-maps)."""
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        self.engine.save(path)
        metadata = {"backend": self.backend, "scoring": self.scoring, "params": self.params,
                    "num_documents": len(self)}
        (path / METADATA_FILE).write_text(json.dumps(metadata, indent=2))

    @classmethod
    def load(cls, path: str | Path, *, mmap: bool = True) -> "BM25Index":
        """Read an index written by `save`; bm25s arrays stay on disk, memory-mapped, when `mmap`."""
        path = Path(path)
        metadata = json.loads((path / METADATA_FILE).read_text())
        engine = ENGINES[metadata["backend"]].load(path, mmap=mmap)
        return cls(engine=engine, backend=metadata["backend"], scoring=metadata["scoring"], params=metadata["params"])
