"""Indexing a corpus larger than memory: one bm25s index per shard of documents, all scored with the statistics
of the whole corpus, so merging the shards' hits by score gives exactly the hits of one big index.
"""

from __future__ import annotations

import json
import logging
import os
import pickle
import shutil
from multiprocessing import get_context
from pathlib import Path
from typing import Iterable, Iterator, Sequence

from zemi.cli import progress
from zemi.io import write_bytes_atomic, write_text_atomic
from zemi.retrieval.bm25 import BM25Index, Hits, iter_token_lists
from zemi.retrieval.corpus import DocumentStore
from zemi.retrieval.scoring import CorpusStats, scoring_parameters

logger = logging.getLogger(__name__)

SHARDS_FILE = "shards.json"
STATS_FILE = "corpus_stats.pkl"


def merge_hits(hits_per_shard: Sequence[Hits], k: int) -> Hits:
    """The `k` best of several hit lists by score, equal scores by lower doc_id (doc_ids already global)."""
    merged = [hit for hits in hits_per_shard for hit in hits]
    merged.sort(key=lambda hit: (-hit[1], hit[0]))
    return merged[:k]


def _progress(texts: Iterable[str], total: int, description: str) -> Iterator[str]:
    """`texts`, counted by a progress bar in documents per second."""
    with progress(texts, total=total, unit=" documents", desc=description, mininterval=2) as bar:
        yield from bar


def collect_stats(store: DocumentStore, num_workers: int = 1) -> CorpusStats:
    """First pass over the corpus: document frequencies and lengths of the full texts, streamed from the store."""
    stats = CorpusStats()
    stats.add_documents(iter_token_lists(_progress(store.iter_texts(), len(store), "counting statistics"),
                                         num_workers))
    logger.info("counted the statistics of %d documents (%d terms)", stats.num_documents, len(stats.doc_freqs))
    return stats


def _load_or_collect_stats(store: DocumentStore, output_dir: Path, num_workers: int) -> CorpusStats:
    stats_path = output_dir / STATS_FILE
    if stats_path.exists():
        with open(stats_path, "rb") as handle:
            return pickle.load(handle)
    stats = collect_stats(store, num_workers)
    write_bytes_atomic(stats_path, pickle.dumps(stats, protocol=pickle.HIGHEST_PROTOCOL))
    return stats


def build_sharded_index(
    store: DocumentStore,
    output_dir: str | Path,
    *,
    shard_size: int = 1_000_000,
    scoring: str = "lucene",
    k1: float | None = None,
    b: float | None = None,
    dtype: str = "float32",
    num_workers: int = 1,
) -> "ShardedBM25Index":
    """Index the full text of every document of `store` into `output_dir`, shard by shard (bounded memory),
    resumably: finished shards and the corpus statistics are kept, and each shard appears only once complete
    (written, then renamed).
    """
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    params = scoring_parameters(scoring, k1, b)
    stats = _load_or_collect_stats(store, output_dir, num_workers)
    size = stats.size(params.get("epsilon", 0.25))
    shards = []
    ranges = list(store.shard_ranges(shard_size))
    for number, (start, stop) in enumerate(ranges):
        shard_dir = output_dir / f"shard_{number:05d}"
        if not shard_dir.exists():
            partial = output_dir / f"shard_{number:05d}.partial"
            shutil.rmtree(partial, ignore_errors=True)
            texts = _progress(store.iter_texts(start, stop), stop - start, f"indexing shard {number + 1}/{len(ranges)}")
            index = BM25Index.build(texts, backend="bm25s", scoring=scoring, k1=params["k1"], b=params["b"],
                                    size=size, term_doc_freq=stats.doc_freqs, dtype=dtype, num_workers=num_workers)
            index.save(partial)
            os.replace(partial, shard_dir)
            logger.info("indexed shard %d (documents %d..%d)", number, start, stop - 1)
        shards.append({"path": shard_dir.name, "offset": start, "num_documents": stop - start})
    manifest = {"scoring": scoring, "params": params, "num_documents": len(store), "shards": shards}
    write_text_atomic(output_dir / SHARDS_FILE, json.dumps(manifest, indent=2))
    return ShardedBM25Index.load(output_dir)


class ShardedBM25Index:
    """Several `BM25Index` shards searched as one; the same `search` interface as `BM25Index`."""

    def __init__(self, *, shards: list[BM25Index], offsets: list[int], scoring: str, params: dict):
        self.shards = shards
        self.offsets = offsets
        self.scoring = scoring
        self.params = params

    @classmethod
    def load(cls, path: str | Path, *, mmap: bool = True) -> "ShardedBM25Index":
        path = Path(path)
        manifest = json.loads((path / SHARDS_FILE).read_text())
        shards = [BM25Index.load(path / shard["path"], mmap=mmap) for shard in manifest["shards"]]
        offsets = [shard["offset"] for shard in manifest["shards"]]
        return cls(shards=shards, offsets=offsets, scoring=manifest["scoring"], params=manifest["params"])

    def __len__(self) -> int:
        return sum(len(shard) for shard in self.shards)

    def search(self, queries: Sequence[str], k: int = 30) -> list[Hits]:
        """For each query, the `k` best (doc_id, score) over all shards, best first, ties by lower doc_id."""
        per_shard = []
        for shard, offset in zip(self.shards, self.offsets):
            per_shard.append([[(doc + offset, score) for doc, score in hits] for hits in shard.search(queries, k)])
        return [merge_hits([shard_hits[q] for shard_hits in per_shard], k) for q in range(len(queries))]


def open_index(path: str | Path, *, mmap: bool = True) -> BM25Index | ShardedBM25Index:
    """Open a saved index, sharded or not."""
    path = Path(path)
    if (path / SHARDS_FILE).exists():
        return ShardedBM25Index.load(path, mmap=mmap)
    return BM25Index.load(path, mmap=mmap)


_worker_index = None  # the index each search worker process opened


def _open_worker_index(path: str) -> None:
    global _worker_index
    _worker_index = open_index(path)


def _search_in_worker(job: tuple[list[str], int]) -> list[Hits]:
    queries, k = job
    return _worker_index.search(queries, k)


class ParallelSearch:
    """A saved index searched by `num_workers` processes, with the same `search` interface as `BM25Index`.

    Each worker opens the index once; its score matrices are memory-mapped, so all workers share one copy in the
    page cache. Queries go to the workers in chunks and come back in order: the hits equal a serial search's.
    """

    def __init__(self, path: str | Path, num_workers: int, *, chunk_size: int = 32):
        self.chunk_size = chunk_size
        self.pool = get_context("spawn").Pool(num_workers, initializer=_open_worker_index, initargs=(str(path),))

    def search(self, queries: Sequence[str], k: int = 30) -> list[Hits]:
        if isinstance(queries, str):
            raise TypeError("search takes a list of query texts, not one string")
        size = self.chunk_size
        jobs = [(list(queries[start : start + size]), k) for start in range(0, len(queries), size)]
        return [hits for chunk in self.pool.map(_search_in_worker, jobs) for hits in chunk]

    def close(self) -> None:
        self.pool.close()
        self.pool.join()

    def __enter__(self) -> "ParallelSearch":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()
