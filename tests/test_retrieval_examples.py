"""Per-example retrieval: field queries cut to 20 words, top 30 per field, merged by score, top 30 kept."""

from __future__ import annotations

import pytest

from zemi.retrieval import BM25Index
from zemi.retrieval.examples import (
    chosen_examples,
    example_queries,
    field_query,
    merge_field_hits,
    retrieve_for_examples,
)

pytestmark = pytest.mark.unit


def test_field_queries_join_lists_and_keep_the_first_twenty_words():
    long_text = " ".join(f"w{i}" for i in range(40))
    assert field_query(long_text) == " ".join(f"w{i}" for i in range(20))
    assert field_query(["first line", "second line"]) == "first line\nsecond line"
    assert field_query({"text": ["a b", "c"]}) == "a b\nc"  # the authors' dict-with-text case
    # Cut on single spaces, as the authors' `get_query_string`: "w1\nw2" is one word, each extra space one more.
    assert field_query("w0 w1\nw2 w3  w4 " + long_text, 4) == "w0 w1\nw2 w3 "
    assert field_query(None) == ""
    assert example_queries({"sentence1": "a b", "sentence2": "c", "label": 0}, ["sentence1", "sentence2"]) == ["a b", "c"]
    with pytest.raises(KeyError, match="premise"):
        example_queries({"hypothesis": "x"}, ["premise"])


def test_merge_sorts_all_fields_by_score_and_keeps_duplicates():
    merged = merge_field_hits([[(4, 3.0), (1, 1.0)], [(2, 5.0), (4, 3.0), (0, 1.0)]], k=4)
    assert merged == [(2, 5.0), (4, 3.0), (4, 3.0), (0, 1.0)]


def test_retrieval_per_example_uses_every_query_field():
    documents = ["the cat sat on the mat", "dogs chase cats", "a bird in the hand", "fish swim in water",
                 "the dog barked", "birds fly south"]
    index = BM25Index.build(documents)
    examples = [{"sentence1": "cat mat", "sentence2": "fish water"}, {"sentence1": "bird", "sentence2": "zzz"}]
    hits = retrieve_for_examples(index, examples, ["sentence1", "sentence2"], per_query=2, per_example=3, batch_size=1)
    assert len(hits) == 2
    # No stemming: "cats" and "birds" do not match "cat" and "bird".
    assert sorted(doc for doc, _ in hits[0]) == [0, 3]
    assert hits[0][0][1] >= hits[0][1][1]
    assert [doc for doc, _ in hits[1]] == [2]
    rows = chosen_examples(hits[1], [documents[doc] for doc, _ in hits[1]])
    assert rows[0] == {"inputs_pretokenized": documents[hits[1][0][0]], "score": hits[1][0][1]}
