"""Benchmark of our BM25 retrieval; prints one JSON object, every comparison measured side by side in one run.

    .venv/bin/python benchmarks/retrieval.py                  # engines on 100k short documents + 20k C4-like ones
    .venv/bin/python benchmarks/retrieval.py --quick          # a few seconds (run by the tests)
    .venv/bin/python benchmarks/retrieval.py --scale_run      # 1M C4-like documents (float32): the docs' figures

Two parts. `scoring`: bm25s against rank_bm25 behind `BM25Index` on the demo WordNet corpus (short documents).
`c4_like`: the real sharded build (`build_sharded_index`) on synthetic documents with C4's length (lognormal word
counts, mean 360 words, about C4 en's 2.1 KB of text per document), made from demo-corpus documents joined by
newlines; then queries/s searching serially and from 1, 2, ... worker processes. Each engine and each build runs in
its own process, so that its peak memory is its own: `peak_rss_mib` (what `getrusage` reports, memory-mapped file
pages included) and `peak_anonymous_mib` (sampled RssAnon: the memory the build itself allocates). Queries are the
first 20 words of documents that are not indexed, like the authors' 20-word queries.
"""

from __future__ import annotations

import argparse
import gzip
import json
import logging
import multiprocessing
import pickle
import resource
import sys
import tempfile
import threading
import time
from contextlib import contextmanager
from itertools import islice
from pathlib import Path

import numpy as np

from zemi.cli import setup_logging

REPO = Path(__file__).resolve().parents[1]
DEFAULT_CORPUS = REPO / "data" / "demo" / "corpus.jsonl.gz"


def read_texts(path: Path, count: int, skip: int = 0) -> list[str]:
    with gzip.open(path, "rt", encoding="utf-8") as handle:
        return [json.loads(line)["text"] for line in islice(handle, skip, skip + count)]


def _max_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def _anonymous_mib() -> float:
    """This process's resident anonymous memory (heap, arrays), without memory-mapped file pages."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("RssAnon:"):
                return int(line.split()[1]) / 1024
    return 0.0


@contextmanager
def anonymous_peak(interval: float = 0.2):
    """Samples RssAnon in a thread; the yielded dict holds the peak (MiB) once the block ends."""
    peak = {"mib": _anonymous_mib()}
    done = threading.Event()

    def sample():
        while not done.wait(interval):
            peak["mib"] = max(peak["mib"], _anonymous_mib())

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    try:
        yield peak
    finally:
        done.set()
        thread.join()
        peak["mib"] = max(peak["mib"], _anonymous_mib())


def run_engine(backend: str, scoring: str, documents: list[str], queries: list[str], k: int, result_queue) -> None:
    """In a fresh process: build, save, reload and query one engine; report timings, memory and hits."""
    sys.path.insert(0, str(REPO))
    from zemi.retrieval import BM25Index

    rss_before = _max_rss_mib()
    start = time.perf_counter()
    extra = {"dtype": "float64"} if backend == "bm25s" else {}  # rank_bm25 is compared bit for bit
    index = BM25Index.build(documents, backend=backend, scoring=scoring, **extra)
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


def in_fresh_process(target, *args):
    """Run `target(*args, result_queue)` in a spawned process and return what it puts on the queue."""
    context = multiprocessing.get_context("spawn")
    result_queue = context.Queue()
    process = context.Process(target=target, args=(*args, result_queue))
    process.start()
    result = result_queue.get()
    process.join()
    return result


def measure(backend, scoring, documents, queries, k) -> dict:
    return in_fresh_process(run_engine, backend, scoring, documents, queries, k)


def agreement(fast_hits, reference_hits) -> dict:
    """How often the top-k lists are identical, and the largest relative score difference."""
    same = sum([doc for doc, _ in a] == [doc for doc, _ in b] for a, b in zip(fast_hits, reference_hits))
    worst = 0.0
    for a, b in zip(fast_hits, reference_hits):
        for (_, score_a), (_, score_b) in zip(a, b):
            worst = max(worst, abs(score_a - score_b) / max(abs(score_b), 1e-300))
    return {"queries_compared": len(reference_hits), "identical_topk_fraction": same / max(len(reference_hits), 1),
            "max_relative_score_difference": worst}


def c4_like_documents(path: Path, count: int, *, mean_words: float = 360, sigma: float = 1.0, seed: int = 0):
    """`count` documents with C4-like lengths: lognormal word counts with mean `mean_words`, each made of random
    demo-corpus documents joined by newlines (so words span lines, as in C4) and cut to its length."""
    pieces = read_texts(path, 10**9)
    rng = np.random.default_rng(seed)
    mu = np.log(mean_words) - sigma**2 / 2  # a lognormal's mean is exp(mu + sigma^2 / 2)
    for length in np.maximum(1, rng.lognormal(mu, sigma, size=count).round().astype(int)):
        words = []
        while len(words) < length:
            picked = pieces[rng.integers(len(pieces))].split(" ")
            if words:
                words[-1] += "\n" + picked[0]
                picked = picked[1:]
            words += picked
        yield " ".join(words[:length])


def run_c4_build(store_path: str, index_dir: str, dtype: str, num_workers: int, result_queue) -> None:
    """In a fresh process: the two passes of `build_sharded_index` over the store as one shard, timed and with
    their memory peaks."""
    sys.path.insert(0, str(REPO))
    from zemi.retrieval import DocumentStore, build_sharded_index
    from zemi.retrieval.sharded import STATS_FILE, collect_stats

    store = DocumentStore.open(store_path)
    Path(index_dir).mkdir(parents=True)
    baseline = _anonymous_mib()  # the interpreter and its libraries, before either pass
    start = time.perf_counter()
    with anonymous_peak() as stats_peak:
        stats = collect_stats(store, num_workers)
    stats_seconds = time.perf_counter() - start
    with open(Path(index_dir) / STATS_FILE, "wb") as handle:  # the build then reuses them: we time each pass
        pickle.dump(stats, handle)
    vocabulary = len(stats.doc_freqs)
    del stats
    start = time.perf_counter()
    with anonymous_peak() as index_peak:
        index = build_sharded_index(store, index_dir, shard_size=len(store), dtype=dtype, num_workers=num_workers)
    index_seconds = time.perf_counter() - start
    (shard,) = index.shards
    index_files = [p for p in Path(index_dir, "shard_00000").iterdir()]
    result_queue.put({
        "dtype": dtype,
        "statistics_seconds": stats_seconds,
        "statistics_documents_per_second": len(store) / stats_seconds,
        "baseline_anonymous_mib": baseline,
        "statistics_peak_anonymous_mib": stats_peak["mib"],
        "index_seconds": index_seconds,
        "index_documents_per_second": len(store) / index_seconds,
        "index_peak_anonymous_mib": index_peak["mib"],
        "peak_rss_mib": _max_rss_mib(),
        "vocabulary_terms": vocabulary,
        "term_document_pairs": int(len(shard.engine.retriever.scores["data"])),
        "index_disk_bytes": sum(p.stat().st_size for p in index_files),
    })


def run_c4_queries(index_dir: str, queries: list[str], worker_counts: list[int], k: int, result_queue) -> None:
    """In a fresh process: queries/s of a serial search and of `ParallelSearch` with each worker count (after a
    warm-up that also starts the workers), and checks they all return the same hits."""
    sys.path.insert(0, str(REPO))
    from zemi.retrieval import open_index
    from zemi.retrieval.sharded import ParallelSearch

    index = open_index(index_dir)
    index.search(queries, k)  # warm the page cache: every run then reads the matrix from memory
    start = time.perf_counter()
    serial = index.search(queries, k)
    serial_qps = len(queries) / (time.perf_counter() - start)
    result = {"num_queries": len(queries), "serial_queries_per_second": serial_qps,
              "searcher_anonymous_mib": _anonymous_mib(), "workers": {}}
    for workers in worker_counts:
        with ParallelSearch(index_dir, workers) as parallel:
            parallel.search(queries[: 8 * workers], k)
            start = time.perf_counter()
            hits = parallel.search(queries, k)
            seconds = time.perf_counter() - start
        result["workers"][str(workers)] = {"queries_per_second": len(queries) / seconds, "same_hits": hits == serial}
    first = result["workers"][str(worker_counts[0])]["queries_per_second"]
    result["speedup_over_first_worker_count"] = {
        str(w): entry["queries_per_second"] / first for w, entry in result["workers"].items()}
    result_queue.put(result)


def c4_like(args, queries: list[str]) -> dict:
    """Build the C4-like corpus and its index with each dtype, then time the queries on the first dtype's."""
    sys.path.insert(0, str(REPO))
    from zemi.retrieval import DocumentStore

    with tempfile.TemporaryDirectory(dir=args.work_dir) as directory:
        start = time.perf_counter()
        store = DocumentStore.write(Path(directory) / "documents.arrow",
                                    c4_like_documents(args.corpus, args.c4_documents, mean_words=args.c4_mean_words),
                                    total=args.c4_documents)
        generate_seconds = time.perf_counter() - start
        words = sum(len(text.split(" ")) for text in store.iter_texts(0, 20_000))
        report = {
            "num_documents": len(store),
            "mean_words_per_document": words / min(20_000, len(store)),
            "generate_and_store_seconds": generate_seconds,
            "store_disk_bytes": store.path.stat().st_size,
            "num_workers": args.num_workers,
            "builds": {},
        }
        del store
        for dtype in args.dtypes:
            index_dir = str(Path(directory) / f"index_{dtype}")
            result = in_fresh_process(run_c4_build, str(Path(directory) / "documents.arrow"), index_dir, dtype,
                                      args.num_workers)
            per_million = 1e6 / report["num_documents"]
            result["index_disk_gb_per_million_documents"] = result["index_disk_bytes"] * per_million / 1e9
            result["index_memory_gb_per_million_documents"] = \
                (result["index_peak_anonymous_mib"] - result["baseline_anonymous_mib"]) * per_million / 1024
            result["term_document_pairs_per_document"] = result["term_document_pairs"] / report["num_documents"]
            report["builds"][dtype] = result
        if len(args.dtypes) > 1:
            first, second = (report["builds"][dtype] for dtype in args.dtypes[:2])
            versus = f"{args.dtypes[0]}_over_{args.dtypes[1]}"
            report["ratios"] = {
                f"index_disk_{versus}": first["index_disk_bytes"] / second["index_disk_bytes"],
                f"index_peak_anonymous_{versus}":
                    first["index_peak_anonymous_mib"] / second["index_peak_anonymous_mib"],
            }
        report["store_disk_gb_per_million_documents"] = report["store_disk_bytes"] * 1e6 / report["num_documents"] / 1e9
        report["queries"] = in_fresh_process(run_c4_queries, str(Path(directory) / f"index_{args.dtypes[0]}"),
                                             queries[: args.c4_queries], args.query_workers, args.k)
    return report


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
    if args.c4_documents:
        report["c4_like"] = c4_like(args, queries)
    return report


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    parser.add_argument("--num_documents", type=int, default=100_000, help="short documents of the engine comparison")
    parser.add_argument("--num_queries", type=int, default=2_000, help="queries timed on bm25s")
    parser.add_argument("--num_reference_queries", type=int, default=200, help="queries timed on rank_bm25")
    parser.add_argument("--k", type=int, default=30)
    parser.add_argument("--scorings", nargs="+", default=["lucene", "okapi"])
    parser.add_argument("--c4_documents", type=int, default=20_000, help="C4-like documents to index (0: skip)")
    parser.add_argument("--c4_mean_words", type=float, default=360)
    parser.add_argument("--c4_queries", type=int, default=2_000)
    parser.add_argument("--dtypes", nargs="+", default=["float32", "float64"], choices=["float32", "float64"],
                        help="score-matrix precisions built side by side")
    parser.add_argument("--num_workers", type=int, default=1, help="tokenising processes of the C4-like build")
    parser.add_argument("--query_workers", type=int, nargs="+", default=[1, 2], help="search processes to time")
    parser.add_argument("--work_dir", type=Path, default=None, help="where the C4-like corpus and index are written")
    parser.add_argument("--quick", action="store_true", help="2k documents, 50 queries: a smoke run")
    parser.add_argument("--scale_run", action="store_true",
                        help="the docs' per-million figures: 1M C4-like documents, float32 only, 2 tokenising workers")
    args = parser.parse_args(argv)
    if args.quick:
        args.num_documents, args.num_queries, args.num_reference_queries = 2_000, 50, 50
        args.c4_documents, args.c4_queries = 1_000, 50
    if args.scale_run:
        args.num_documents, args.num_queries, args.num_reference_queries = 20_000, 2_000, 50
        args.c4_documents, args.dtypes, args.num_workers = 1_000_000, ["float32"], 2
    return args


def main(argv=None) -> dict:
    setup_logging(level=logging.WARNING)
    report = run(parse_args(argv))
    print(json.dumps(report, indent=2))
    return report


if __name__ == "__main__":
    main()
