"""BM25 scoring as small pure functions: corpus statistics, idf, Lucene's one-byte length norms, term weights.

Both engines (bm25s's sparse matrices and rank_bm25) and the sharded index score with these, so they agree.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Iterable, Sequence

import numpy as np

from zemi.errors import ConfigError

# Defaults per scoring: Lucene's BM25Similarity (what the authors' Elasticsearch used) and rank_bm25's BM25Okapi.
SCORING_DEFAULTS: dict[str, dict[str, float]] = {
    "lucene": {"k1": 1.2, "b": 0.75},
    "okapi": {"k1": 1.5, "b": 0.75, "epsilon": 0.25},
}


def scoring_parameters(scoring: str, k1: float | None = None, b: float | None = None) -> dict[str, float]:
    """The parameters of `scoring`, with `k1`/`b` overriding its defaults; unknown scorings fail loudly."""
    if scoring not in SCORING_DEFAULTS:
        raise ConfigError(f"unknown scoring {scoring!r}; choose one of {sorted(SCORING_DEFAULTS)}")
    params = dict(SCORING_DEFAULTS[scoring])
    if k1 is not None:
        params["k1"] = float(k1)
    if b is not None:
        params["b"] = float(b)
    if params["k1"] < 0 or not 0 <= params["b"] <= 1:
        raise ConfigError(f"need k1 >= 0 and 0 <= b <= 1, got k1={params['k1']}, b={params['b']}")
    return params


@dataclass
class CorpusStats:
    """Collection statistics that BM25 needs; summed over shards, they score every shard as one index."""

    num_documents: int = 0  # every document (rank_bm25's corpus_size)
    num_nonempty: int = 0  # documents with at least one token (Lucene's docCount)
    total_length: int = 0  # tokens in all documents (Lucene's sumTotalTermFreq)
    doc_freqs: Counter = field(default_factory=Counter)

    def add_documents(self, token_lists: Iterable[Sequence[str]]) -> None:
        """Count a batch of tokenised documents into the statistics."""
        for tokens in token_lists:
            self.num_documents += 1
            self.num_nonempty += bool(tokens)
            self.total_length += len(tokens)
            self.doc_freqs.update(set(tokens))

    def merge(self, other: "CorpusStats") -> None:
        """Add the statistics of another part of the corpus."""
        self.num_documents += other.num_documents
        self.num_nonempty += other.num_nonempty
        self.total_length += other.total_length
        self.doc_freqs.update(other.doc_freqs)

    def size(self, epsilon: float = SCORING_DEFAULTS["okapi"]["epsilon"]) -> "CollectionSize":
        """The corpus-wide numbers, with rank_bm25's idf floor computed over this whole vocabulary."""
        floor = okapi_idf_floor(self.doc_freqs.values(), self.num_documents, epsilon)
        return CollectionSize(self.num_documents, self.num_nonempty, self.total_length, floor)


# The idfs are computed term by term with `math.log`, in rank_bm25's order of operations: numpy's vectorised log
# may differ in the last bit, and a last-bit difference is enough to swap two documents with equal true scores.


def lucene_idf(doc_freq: Iterable[int], doc_count: int) -> np.ndarray:
    """Lucene's idf, ln(1 + (N - n + 0.5) / (n + 0.5)): always positive, so every matching document scores."""
    return np.array([math.log(1 + (doc_count - n + 0.5) / (n + 0.5)) for n in doc_freq], dtype=np.float64)


def okapi_raw_idf(doc_freq: Iterable[int], corpus_size: int) -> np.ndarray:
    """rank_bm25's BM25Okapi idf before its floor: ln(N - n + 0.5) - ln(n + 0.5) (negative for common terms)."""
    return np.array([math.log(corpus_size - n + 0.5) - math.log(n + 0.5) for n in doc_freq], dtype=np.float64)


def okapi_idf_floor(vocabulary_doc_freqs: Iterable[int], corpus_size: int, epsilon: float) -> float:
    """The value rank_bm25 gives negative idfs: `epsilon` times the mean raw idf of the whole vocabulary.

    Summed left to right over the vocabulary in first-seen order, as rank_bm25 does.
    """
    total, count = 0.0, 0
    for idf in okapi_raw_idf(vocabulary_doc_freqs, corpus_size).tolist():
        total += idf
        count += 1
    return epsilon * (total / count) if count else 0.0


# Lucene stores a document's length in one byte (SmallFloat.intToByte4): lengths below 24 exactly, longer ones
# with four significant bits. BM25Similarity scores with the decoded length, so we do too.
_NUM_FREE_VALUES = 24


def _int4_encode(value: np.ndarray) -> np.ndarray:
    """Float-like encoding of non-negative integers keeping 4 significant bits (SmallFloat.longToInt4)."""
    value = value.astype(np.int64)
    num_bits = np.frexp(value.astype(np.float64))[1].astype(np.int64)  # bit length (exact below 2**53)
    shift = np.maximum(num_bits - 4, 0)
    normal = ((value >> shift) & 0x07) | ((shift + 1) << 3)
    return np.where(num_bits < 4, value, normal)


def _int4_decode(code: np.ndarray) -> np.ndarray:
    """Inverse of `_int4_encode` (SmallFloat.int4ToLong)."""
    code = code.astype(np.int64)
    shift = (code >> 3) - 1
    return np.where(shift < 0, code & 0x07, ((code & 0x07) | 0x08) << np.maximum(shift, 0))


def lucene_length_norm(lengths: np.ndarray) -> np.ndarray:
    """Document lengths as Lucene's BM25 sees them: encoded to one byte and decoded again."""
    lengths = np.asarray(lengths, dtype=np.int64)
    small = lengths < _NUM_FREE_VALUES
    decoded = _NUM_FREE_VALUES + _int4_decode(_int4_encode(np.maximum(lengths - _NUM_FREE_VALUES, 0)))
    return np.where(small, lengths, decoded)


def idf_for_terms(term_doc_freqs: np.ndarray, stats: "CollectionSize", scoring: str, params: dict) -> np.ndarray:
    """The idf of some terms under `scoring`, from corpus-wide statistics (so shards agree with one index)."""
    if scoring == "lucene":
        return lucene_idf(term_doc_freqs, stats.num_nonempty)
    raw = okapi_raw_idf(term_doc_freqs, stats.num_documents)
    return np.where(raw < 0, stats.okapi_floor, raw)


@dataclass(frozen=True)
class CollectionSize:
    """The corpus-wide numbers a scorer needs besides per-term document frequencies."""

    num_documents: int
    num_nonempty: int
    total_length: int
    okapi_floor: float  # rank_bm25's value for negative idfs (only used by okapi)

    def average_length(self, scoring: str) -> float:
        """Mean document length: Lucene divides by the non-empty documents, rank_bm25 by all of them."""
        denominator = self.num_nonempty if scoring == "lucene" else self.num_documents
        return self.total_length / max(denominator, 1)


def term_weights(
    term_freqs: np.ndarray, doc_lengths: np.ndarray, idf: np.ndarray, average_length: float, scoring: str, params: dict
) -> np.ndarray:
    """BM25 weight of each (term, document) pair; a query's score is the sum over its tokens.

    lucene: idf * tf / (tf + k1 * (1 - b + b * dl / avgdl)) with dl the one-byte-norm length (Lucene >= 8 has no
    (k1 + 1) factor); okapi: idf * tf * (k1 + 1) / (tf + k1 * (1 - b + b * dl / avgdl)), rank_bm25's order of
    operations, so both engines round alike.
    """
    tf = np.asarray(term_freqs, dtype=np.float64)
    k1, b = params["k1"], params["b"]
    if scoring == "lucene":
        length = lucene_length_norm(doc_lengths).astype(np.float64)
        return idf * (tf / (tf + k1 * (1 - b + b * length / average_length)))
    length = np.asarray(doc_lengths, dtype=np.float64)
    return idf * (tf * (k1 + 1) / (tf + k1 * (1 - b + b * length / average_length)))
