"""BM25 scoring functions: Lucene's one-byte length norm, idf formulas, parameter defaults."""

from __future__ import annotations

import math

import numpy as np
import pytest

from zemi.retrieval.scoring import (
    CorpusStats,
    lucene_idf,
    lucene_length_norm,
    okapi_idf_floor,
    okapi_raw_idf,
    scoring_parameters,
)

pytestmark = pytest.mark.unit


def _java_length_norm(length: int) -> int:
    """SmallFloat.byte4ToInt(SmallFloat.intToByte4(length)), written out from Lucene's definition."""

    def long_to_int4(value: int) -> int:
        num_bits = value.bit_length()
        if num_bits < 4:
            return value
        shift = num_bits - 4
        return ((value >> shift) & 0x07) | ((shift + 1) << 3)

    def int4_to_long(code: int) -> int:
        shift = (code >> 3) - 1
        return code & 0x07 if shift == -1 else ((code & 0x07) | 0x08) << shift

    free = 255 - long_to_int4(2**31 - 1)
    assert free == 24
    if length < free:
        return length
    return free + int4_to_long(long_to_int4(length - free))


def test_lucene_length_norm_matches_smallfloat():
    lengths = np.arange(0, 70_000)
    expected = np.array([_java_length_norm(int(n)) for n in lengths])
    np.testing.assert_array_equal(lucene_length_norm(lengths), expected)
    assert lucene_length_norm(np.array([23, 24, 100, 256]))[[0, 1, 2, 3]].tolist() == [23, 24, 96, 248]


def test_idf_formulas():
    assert lucene_idf([1], 10)[0] == pytest.approx(math.log(1 + (10 - 1 + 0.5) / 1.5))
    assert (lucene_idf(np.arange(1, 11), 10) > 0).all()  # Lucene's idf never goes negative
    assert okapi_raw_idf([8], 10)[0] == pytest.approx(math.log(2.5) - math.log(8.5))
    raw = okapi_raw_idf([1, 2, 9], 10)
    assert okapi_idf_floor([1, 2, 9], 10, 0.25) == pytest.approx(0.25 * raw.mean())


def test_scoring_parameters_defaults_and_validation():
    assert scoring_parameters("lucene") == {"k1": 1.2, "b": 0.75}
    assert scoring_parameters("okapi") == {"k1": 1.5, "b": 0.75, "epsilon": 0.25}
    assert scoring_parameters("lucene", k1=0.9, b=0.4) == {"k1": 0.9, "b": 0.4}
    with pytest.raises(ValueError, match="unknown scoring"):
        scoring_parameters("tfidf")
    with pytest.raises(ValueError):
        scoring_parameters("lucene", b=1.5)


def test_corpus_stats_merge_equals_one_pass():
    docs = [["a", "b", "a"], [], ["b", "c"], ["c"]]
    whole, first, second = CorpusStats(), CorpusStats(), CorpusStats()
    whole.add_documents(docs)
    first.add_documents(docs[:2])
    second.add_documents(docs[2:])
    first.merge(second)
    assert (first.num_documents, first.num_nonempty, first.total_length) == (4, 3, 6)
    assert first.doc_freqs == whole.doc_freqs == {"a": 1, "b": 2, "c": 2}
    assert first.size().okapi_floor == whole.size().okapi_floor
    assert whole.size().average_length("lucene") == 2.0 and whole.size().average_length("okapi") == 1.5
