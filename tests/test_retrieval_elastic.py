"""The Elasticsearch engine: request building always; a live round trip only when ZEMI_ES_URL names a server."""

from __future__ import annotations

import os
import uuid

import pytest

from zemi.retrieval import elastic
from zemi.retrieval.elastic import (
    ElasticsearchIndex,
    bulk_actions,
    index_mappings,
    index_settings,
    msearch_body,
    parse_hits,
    search_body,
)

pytestmark = pytest.mark.unit


def test_index_settings_are_the_authors():
    settings = index_settings()
    assert settings["number_of_shards"] == 16
    assert settings["similarity"][elastic.SIMILARITY_NAME] == {"type": "BM25", "k1": 1.2, "b": 0.75}
    text = index_mappings()["properties"]["text"]
    assert text == {"type": "text", "analyzer": "standard", "similarity": elastic.SIMILARITY_NAME}
    assert index_settings(shards=4, k1=0.9)["number_of_shards"] == 4


def test_bulk_actions_use_corpus_positions_as_ids():
    actions = list(bulk_actions(["a", "b"], index="corpus", first_id=10))
    assert actions == [
        {"_op_type": "index", "_index": "corpus", "_id": "10", "_source": {"text": "a"}},
        {"_op_type": "index", "_index": "corpus", "_id": "11", "_source": {"text": "b"}},
    ]


def test_multi_match_query_and_msearch_layout():
    assert search_body("who wrote it", k=30) == {
        "query": {"multi_match": {"query": "who wrote it", "fields": ["text"], "type": "cross_fields"}}, "size": 30}
    body = msearch_body(["q1", "q2"], index="corpus", k=5)
    assert body[0] == {"index": "corpus"} and body[2] == {"index": "corpus"}
    assert body[1]["query"]["multi_match"]["query"] == "q1" and body[3]["size"] == 5


def test_parse_hits_orders_by_score_then_id():
    response = {"hits": {"hits": [{"_id": "7", "_score": 1.5}, {"_id": "3", "_score": 2.0},
                                  {"_id": "2", "_score": 1.5}]}}
    assert parse_hits(response) == [(3, 2.0), (2, 1.5), (7, 1.5)]


def test_connect_without_the_client_says_how_to_install(monkeypatch):
    monkeypatch.setattr(elastic, "elasticsearch", None)
    with pytest.raises(ImportError, match="pip install"):
        ElasticsearchIndex.connect("http://localhost:9200", "corpus")


@pytest.mark.skipif(not os.environ.get("ZEMI_ES_URL"), reason="no Elasticsearch server: set ZEMI_ES_URL to run")
def test_live_server_ranks_like_the_local_lucene_index():
    pytest.importorskip("elasticsearch")
    from zemi.retrieval import BM25Index

    documents = ["the red fox jumps", "a blue whale sings", "red wine and red cheese", "the fox den", "blue sky"]
    name = f"zemi-test-{uuid.uuid4().hex[:8]}"
    remote = ElasticsearchIndex.connect(os.environ["ZEMI_ES_URL"], name, search_type="dfs_query_then_fetch")
    remote.create(shards=1)
    try:
        remote.add(documents)
        assert len(remote) == len(documents)
        local = BM25Index.build(documents, scoring="lucene")
        queries = ["red fox", "blue", "cheese wine"]
        for got, expected in zip(remote.search(queries, k=5), local.search(queries, k=5)):
            assert [doc for doc, _ in got] == [doc for doc, _ in expected]
            assert [s for _, s in got] == pytest.approx([s for _, s in expected], rel=1e-5)
    finally:
        remote.client.indices.delete(index=name)
