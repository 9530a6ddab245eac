"""The Elasticsearch engine, for corpora that outgrow one machine: the authors' index settings (standard analyzer,
BM25 k1 1.2 / b 0.75, 16 shards), bulk indexing of full texts and their `multi_match` query, behind `search`.

Requests are built by pure functions (unit-tested without a server); the client is the optional extra
`pip install zemi[elasticsearch]`.
"""

from __future__ import annotations

import logging
from itertools import islice
from typing import Iterable, Iterator, Sequence

from zemi.retrieval.bm25 import Hits

try:
    import elasticsearch
    from elasticsearch import helpers as elasticsearch_helpers
except ImportError:  # optional extra
    elasticsearch = None
    elasticsearch_helpers = None

logger = logging.getLogger(__name__)

TEXT_FIELD = "text"
SIMILARITY_NAME = "zemi_bm25"


def index_settings(*, shards: int = 16, replicas: int = 0, k1: float = 1.2, b: float = 0.75) -> dict:
    """Index settings: the shard count, and a BM25 similarity with Lucene's parameters."""
    return {
        "number_of_shards": shards,
        "number_of_replicas": replicas,
        "similarity": {SIMILARITY_NAME: {"type": "BM25", "k1": k1, "b": b}},
    }


def index_mappings() -> dict:
    """One `text` field analysed by the `standard` analyzer and scored by our BM25 similarity."""
    return {
        "properties": {
            TEXT_FIELD: {"type": "text", "analyzer": "standard", "similarity": SIMILARITY_NAME},
        }
    }


def bulk_actions(texts: Iterable[str], *, index: str, first_id: int = 0) -> Iterator[dict]:
    """Bulk-index actions; a document's `_id` is its position in the corpus, so hits map back to doc_ids."""
    for doc_id, text in enumerate(texts, start=first_id):
        yield {"_op_type": "index", "_index": index, "_id": str(doc_id), "_source": {TEXT_FIELD: text}}


def search_body(query: str, *, k: int = 30) -> dict:
    """The authors' query, as `datasets`' `ElasticSearchIndex.search` sends it: a `cross_fields` `multi_match` of
    the query text over the text field, top `k`."""
    return {"query": {"multi_match": {"query": query, "fields": [TEXT_FIELD], "type": "cross_fields"}}, "size": k}


def msearch_body(queries: Sequence[str], *, index: str, k: int = 30) -> list[dict]:
    """A multi-search request: a header then a body per query."""
    searches: list[dict] = []
    for query in queries:
        searches.append({"index": index})
        searches.append(search_body(query, k=k))
    return searches


def parse_hits(response: dict) -> Hits:
    """(doc_id, score) pairs of one search response, best first, equal scores by lower doc_id."""
    hits = [(int(hit["_id"]), float(hit["_score"])) for hit in response["hits"]["hits"]]
    hits.sort(key=lambda hit: (-hit[1], hit[0]))
    return hits


class ElasticsearchIndex:
    """A corpus in an Elasticsearch index, searched like `BM25Index`.

    `search_type="dfs_query_then_fetch"` scores with corpus-wide statistics; the default `query_then_fetch`
    (what the authors ran) uses each shard's own statistics, so its scores differ slightly from one index's.
    """

    def __init__(self, *, client, index_name: str, search_type: str | None = None, batch_size: int = 100):
        self.client = client
        self.index_name = index_name
        self.search_type = search_type
        self.batch_size = batch_size

    @classmethod
    def connect(
        cls, url: str, index_name: str, *, search_type: str | None = None, batch_size: int = 100, **client_options
    ) -> "ElasticsearchIndex":
        """A client for the server at `url` (`client_options` go to `Elasticsearch`); needs the extra."""
        if elasticsearch is None:
            raise ImportError("the Elasticsearch engine needs the client: pip install 'elasticsearch>=8,<10'")
        client = elasticsearch.Elasticsearch(url, **client_options)
        return cls(client=client, index_name=index_name, search_type=search_type, batch_size=batch_size)

    def create(self, *, shards: int = 16, replicas: int = 0, k1: float = 1.2, b: float = 0.75) -> None:
        """Create the index with the authors' settings (fails if it exists: we never overwrite a corpus)."""
        self.client.indices.create(
            index=self.index_name,
            settings=index_settings(shards=shards, replicas=replicas, k1=k1, b=b),
            mappings=index_mappings(),
        )

    def add(self, texts: Iterable[str], *, first_id: int = 0, chunk_size: int = 2_000) -> int:
        """Bulk-index texts with doc_ids from `first_id`; returns how many were indexed."""
        indexed, errors = elasticsearch_helpers.bulk(
            self.client, bulk_actions(texts, index=self.index_name, first_id=first_id), chunk_size=chunk_size
        )
        if errors:
            raise RuntimeError(f"bulk indexing failed for {len(errors)} documents, first: {errors[0]}")
        self.client.indices.refresh(index=self.index_name)
        logger.info("indexed %d documents into %s", indexed, self.index_name)
        return indexed

    def __len__(self) -> int:
        return int(self.client.count(index=self.index_name)["count"])

    def search(self, queries: Sequence[str], k: int = 30) -> list[Hits]:
        """For each query text, its `k` best (doc_id, score) pairs, best first."""
        results: list[Hits] = []
        iterator = iter(queries)
        while batch := list(islice(iterator, self.batch_size)):
            extra = {"search_type": self.search_type} if self.search_type else {}
            response = self.client.msearch(searches=msearch_body(batch, index=self.index_name, k=k), **extra)
            for item in response["responses"]:
                if "error" in item:
                    raise RuntimeError(f"Elasticsearch search failed: {item['error']}")
                results.append(parse_hits(item))
        return results
