"""BM25 retrieval as in the authors' Elasticsearch setup, on one machine: tokenise, index, search.

`tokenize` is the Elasticsearch `standard` analyzer; `BM25Index` indexes with bm25s or rank_bm25 under Lucene or
Okapi scoring; `build_sharded_index`/`open_index` handle corpora larger than memory.
"""

from zemi.retrieval.analyzer import tokenize
from zemi.retrieval.bm25 import BM25Index
from zemi.retrieval.corpus import DocumentStore, iter_documents
from zemi.retrieval.sharded import ShardedBM25Index, build_sharded_index, open_index

__all__ = [
    "BM25Index",
    "DocumentStore",
    "ShardedBM25Index",
    "build_sharded_index",
    "iter_documents",
    "open_index",
    "tokenize",
]
