"""The retrieval benchmark's quick mode runs end to end, as a user runs it, and reports every field the docs quote."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

BENCHMARK = Path(__file__).resolve().parents[1] / "benchmarks" / "retrieval.py"


def test_quick_benchmark_reports_engines_c4_like_build_and_parallel_queries(tmp_path):
    completed = subprocess.run([sys.executable, str(BENCHMARK), "--quick", "--scorings", "lucene",
                                "--work_dir", str(tmp_path)], capture_output=True, text=True, check=True, timeout=300)
    report = json.loads(completed.stdout)
    result = report["scoring"]["lucene"]
    assert report["num_documents"] == 2_000
    assert result["agreement"]["queries_compared"] == 50
    assert result["agreement"]["identical_topk_fraction"] == 1.0
    assert result["agreement"]["max_relative_score_difference"] <= 1e-6
    for engine in ("bm25s", "rank_bm25"):
        assert result[engine]["queries_per_second"] > 0 and result[engine]["peak_rss_mib"] > 0
    assert result["query_speedup"] > 1

    c4 = report["c4_like"]
    assert c4["num_documents"] == 1_000 and 250 < c4["mean_words_per_document"] < 450
    assert c4["store_disk_gb_per_million_documents"] > 0
    assert set(c4["builds"]) == {"float32", "float64"}
    for build in c4["builds"].values():
        assert build["index_documents_per_second"] > 0 and build["statistics_documents_per_second"] > 0
        assert build["index_peak_anonymous_mib"] >= build["baseline_anonymous_mib"] > 0
        assert build["term_document_pairs_per_document"] > 50
        assert build["index_disk_gb_per_million_documents"] > 0
        assert "index_memory_gb_per_million_documents" in build
    assert c4["ratios"]["index_disk_float32_over_float64"] < 1  # 4-byte weights instead of 8
    queries = c4["queries"]
    assert queries["num_queries"] == 50 and queries["serial_queries_per_second"] > 0
    assert set(queries["workers"]) == {"1", "2"}
    assert all(entry["same_hits"] and entry["queries_per_second"] > 0 for entry in queries["workers"].values())
    assert queries["speedup_over_first_worker_count"]["1"] == 1.0
    assert not list(tmp_path.iterdir())  # the corpus and indexes are temporary
