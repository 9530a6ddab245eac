"""The retrieval benchmark's quick mode runs end to end, as a user runs it, and reports agreeing engines."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

BENCHMARK = Path(__file__).resolve().parents[1] / "benchmarks" / "retrieval.py"


def test_quick_benchmark_reports_identical_top_k():
    completed = subprocess.run([sys.executable, str(BENCHMARK), "--quick", "--scorings", "lucene"],
                               capture_output=True, text=True, check=True, timeout=300)
    report = json.loads(completed.stdout)
    result = report["scoring"]["lucene"]
    assert report["num_documents"] == 2_000
    assert result["agreement"]["queries_compared"] == 50
    assert result["agreement"]["identical_topk_fraction"] == 1.0
    assert result["agreement"]["max_relative_score_difference"] <= 1e-6
    for engine in ("bm25s", "rank_bm25"):
        assert result[engine]["queries_per_second"] > 0 and result[engine]["peak_rss_mib"] > 0
    assert result["query_speedup"] > 1
