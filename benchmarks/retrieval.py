"""Benchmark: bm25s vs rank_bm25 behind `BM25Index` on real English text (the demo WordNet corpus).

    .venv/bin/python benchmarks/retrieval.py                  # 100k documents, prints one JSON object
    .venv/bin/python benchmarks/retrieval.py --quick          # 2k documents, a few seconds (run by the tests)
    .venv/bin/python benchmarks/retrieval.py --long_documents # also 256-word documents, for C4 extrapolation

Each engine runs in its own process so that its peak memory (max RSS) is its own. Queries are the first 20 words
of documents that are not indexed, like the authors' 20-word queries.
"""

from __future__ import annotations

import argparse
import gzip
import json
import logging
import multiprocessing
import resource
import sys
import tempfile
import time
from itertools import islice
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_CORPUS = REPO / "data" / "demo" / "corpus.jsonl.gz"


def read_texts(path: Path, count: int, skip: int = 0) -> list[str]:
    with gzip.open(path, "rt", encoding="utf-8") as handle:
        return [json.loads(line)["text"] for line in islice(handle, skip, skip + count)]


def _max_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def run_engine(backend: str, scoring: str, documents: list[str], queries: list[str], k: int, result_queue) -> None:
    """In a fresh process: build, save, reload and query one engine; report timings, memory and hits."""
    sys.path.insert(0, str(REPO))
    from zemi.retrieval import BM25Index

    rss_before = _max_rss_mib()
    start = time.perf_counter()
    index = BM25Index.build(documents, backend=backend, scoring=scoring)
    build_seconds = time.perf_counter() - start
    rss_after_build = _max_rss_mib()
    with tempfile.TemporaryDirectory() as directory:
        index.save(directory)
        disk_bytes = sum(p.stat().st_size for p in Path(directory).rglob("*") if p.is_file())
        if backend == "bm25s":
            index = BM25Index.load(directory, mmap=True)
        start = time.perf_counter()
        hits = index.search(queries, k=k)
        query_seconds = time.perf_counter() - start
    num_pairs = None
    if backend == "bm25s":
        num_pairs = int(len(index.engine.retriever.scores["data"]))
    result_queue.put({
        "backend": backend,
        "build_seconds": build_seconds,
        "build_documents_per_second": len(documents) / build_seconds,
        "num_queries": len(queries),
        "query_seconds": query_seconds,
        "queries_per_second": len(queries) / query_seconds,
        "peak_rss_mib": _max_rss_mib(),
        "build_rss_increase_mib": rss_after_build - rss_before,
        "index_disk_bytes": disk_bytes,
        "term_document_pairs": num_pairs,
        "hits": hits,
    })


def measure(backend, scoring, documents, queries, k) -> dict:
    context = multiprocessing.get_context("spawn")
    result_queue = context.Queue()
    process = context.Process(target=run_engine, args=(backend, scoring, documents, queries, k, result_queue))
    process.start()
    result = result_queue.get()
    process.join()
    return result


def agreement(fast_hits, reference_hits) -> dict:
    """How often the top-k lists are identical, and the largest relative score difference."""
    same = sum([doc for doc, _ in a] == [doc for doc, _ in b] for a, b in zip(fast_hits, reference_hits))
    worst = 0.0
    for a, b in zip(fast_hits, reference_hits):
        for (_, score_a), (_, score_b) in zip(a, b):
            worst = max(worst, abs(score_a - score_b) / max(abs(score_b), 1e-300))
    return {"queries_compared": len(reference_hits), "identical_topk_fraction": same / max(len(reference_hits), 1),
            "max_relative_score_difference": worst}


def long_documents(path: Path, words: int = 256) -> list[str]:
    """C4-like documents from real text: consecutive corpus documents joined until each has `words` words."""
    documents, current = [], []
    with gzip.open(path, "rt", encoding="utf-8") as handle:
        for line in handle:
            current += json.loads(line)["text"].split()
            if len(current) >= words:
                documents.append(" ".join(current[:words]))
                current = []
    return documents


def run(args) -> dict:
    documents = read_texts(args.corpus, args.num_documents)
    queries = [" ".join(text.split()[:20]) for text in read_texts(args.corpus, args.num_queries, args.num_documents)]
    reference_queries = queries[: args.num_reference_queries]
    sys.path.insert(0, str(REPO))
    from zemi.retrieval import tokenize

    tokens_total = sum(len(tokenize(text)) for text in documents[:5000]) * len(documents) / min(5000, len(documents))
    report = {"corpus": str(args.corpus), "num_documents": len(documents),
              "mean_tokens_per_document": tokens_total / len(documents), "k": args.k, "scoring": {}}
    for scoring in args.scorings:
        fast = measure("bm25s", scoring, documents, queries, args.k)
        slow = measure("rank_bm25", scoring, documents, reference_queries, args.k)
        report["scoring"][scoring] = {
            "bm25s": {key: value for key, value in fast.items() if key != "hits"},
            "rank_bm25": {key: value for key, value in slow.items() if key != "hits"},
            "query_speedup": fast["queries_per_second"] / slow["queries_per_second"],
            "agreement": agreement(fast["hits"][: len(reference_queries)], slow["hits"]),
        }
    if args.long_documents:
        documents = long_documents(args.corpus)[: args.num_documents]
        long_run = measure("bm25s", "lucene", documents, queries, args.k)
        long_run.pop("hits")
        long_run["num_documents"] = len(documents)
        long_run["disk_bytes_per_document"] = long_run["index_disk_bytes"] / len(documents)
        long_run["term_document_pairs_per_document"] = long_run["term_document_pairs"] / len(documents)
        report["long_documents_256_words"] = long_run
    return report


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    parser.add_argument("--num_documents", type=int, default=100_000)
    parser.add_argument("--num_queries", type=int, default=2_000, help="queries timed on bm25s")
    parser.add_argument("--num_reference_queries", type=int, default=200, help="queries timed on rank_bm25")
    parser.add_argument("--k", type=int, default=30)
    parser.add_argument("--scorings", nargs="+", default=["lucene", "okapi"])
    parser.add_argument("--long_documents", action="store_true",
                        help="also index 256-word documents made by joining consecutive corpus documents (bm25s "
                             "only), to extrapolate to C4's 256-word documents")
    parser.add_argument("--quick", action="store_true", help="2k documents, 50 queries: a smoke run")
    args = parser.parse_args(argv)
    if args.quick:
        args.num_documents, args.num_queries, args.num_reference_queries = 2_000, 50, 50
    return args


def main(argv=None) -> dict:
    logging.basicConfig(level=logging.WARNING)
    report = run(parse_args(argv))
    print(json.dumps(report, indent=2))
    return report


if __name__ == "__main__":
    main()
