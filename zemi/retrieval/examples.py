"""Retrieval for task examples, as the authors did it: one query per query field (its first 20 words), the top 30
documents per query, the hits of all fields merged by score and the best 30 kept, once per raw example.
"""

from __future__ import annotations

import logging
from typing import Mapping, Sequence

from zemi.cli import progress
from zemi.retrieval.bm25 import Hits
from zemi.retrieval.corpus import cut_words
from zemi.retrieval.sharded import merge_hits

logger = logging.getLogger(__name__)

QUERY_WORDS = 20
DOCUMENTS_PER_QUERY = 30
DOCUMENTS_PER_EXAMPLE = 30


def field_query(value, max_words: int = QUERY_WORDS) -> str:
    """A query text from one field value, as the authors' `get_query_string`: a list (or a mapping's "text" list)
    is joined with newlines, then cut to its first `max_words` space-separated words (`cut_words`)."""
    if value is None:
        return ""
    if isinstance(value, Mapping) and "text" in value:
        value = value["text"]
    if isinstance(value, (list, tuple)):
        value = "\n".join(str(item) for item in value)
    return cut_words(str(value), max_words)


def example_queries(example: Mapping, query_fields: Sequence[str], max_words: int = QUERY_WORDS) -> list[str]:
    """One query per query field of a raw example, in field order."""
    missing = [name for name in query_fields if name not in example]
    if missing:
        raise KeyError(f"example has no query field(s) {missing}; it has {sorted(example)}")
    return [field_query(example[name], max_words) for name in query_fields]


def merge_field_hits(hits_per_field: Sequence[Hits], k: int = DOCUMENTS_PER_EXAMPLE) -> Hits:
    """All fields' hits sorted by score (ties by doc_id), the best `k` kept.

    A document found by two fields appears twice, as in a plain concatenation of the authors' per-field lists.
    """
    return merge_hits(hits_per_field, k)


def retrieve_for_examples(
    index,
    examples: Sequence[Mapping],
    query_fields: Sequence[str],
    *,
    per_query: int = DOCUMENTS_PER_QUERY,
    per_example: int = DOCUMENTS_PER_EXAMPLE,
    query_words: int = QUERY_WORDS,
    batch_size: int = 1_000,
    description: str | None = None,
) -> list[Hits]:
    """For each example, its merged (doc_id, score) hits; `index` is any object with `search(queries, k)`.
    A `description` shows a progress bar in queries per second."""
    results: list[Hits] = []
    num_fields = len(query_fields)
    with progress(total=len(examples) * num_fields, unit=" queries", desc=description, disable=description is None,
                  mininterval=2) as bar:
        for start in range(0, len(examples), batch_size):
            batch = examples[start : start + batch_size]
            queries = [query for example in batch for query in example_queries(example, query_fields, query_words)]
            hits = index.search(queries, k=per_query)
            for position in range(len(batch)):
                fields = hits[position * num_fields : (position + 1) * num_fields]
                results.append(merge_field_hits(fields, per_example))
            bar.update(len(queries))
    logger.info("retrieved documents for %d examples", len(results))
    return results


def chosen_examples(hits: Hits, texts: Sequence[str]) -> list[dict]:
    """The 30aug `chosen_examples` field: each hit as {"inputs_pretokenized": document text, "score": score}."""
    return [{"inputs_pretokenized": text, "score": float(score)} for (_, score), text in zip(hits, texts, strict=True)]
