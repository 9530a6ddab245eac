"""The throughput benchmark runs end to end on CPU and reports what the README's table needs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def run_benchmark(*args: str) -> dict:
    done = subprocess.run([sys.executable, "benchmarks/throughput.py", "--device", "cpu", "--config", "tiny", *args],
                          cwd=REPO, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout)


@pytest.mark.e2e
def test_tiny_cpu_benchmark_reports_both_modes_of_all_four_methods():
    report = run_benchmark()
    assert report["device"].startswith("cpu") and report["config"] == "tiny"
    assert set(report["methods"]) == {"no_aug", "concat", "fid", "zemi"}
    for method, entry in report["methods"].items():
        for mode in ("reference", "fast"):
            numbers = entry[mode]
            assert numbers["train_samples_per_s"] > 0 and numbers["eval_examples_per_s"] > 0, (method, mode)
            assert numbers["train_flop_per_sample"] > 0 and numbers["eval_flop_per_example"] > 0
            assert numbers["train_peak_memory_gib"] > 0
        assert entry["reference"]["attention"] == "eager" and entry["fast"]["attention"] == "sdpa"
        # Encoding once per example does less arithmetic than re-encoding per choice (4 choices).
        assert entry["fast"]["eval_flop_per_example"] < entry["reference"]["eval_flop_per_example"]
        assert entry["speedup"]["eval"] == pytest.approx(
            entry["fast"]["eval_examples_per_s"] / entry["reference"]["eval_examples_per_s"])


@pytest.mark.e2e
def test_benchmark_on_real_examples_of_a_30aug_root(data_root, backbone_dir):
    report = run_benchmark("--methods", "zemi", "--steps", "1", "--data_root", str(data_root), "--tokenizer",
                           str(backbone_dir), "--train_tasks", "animal_colors", "animal_homes",
                           "--eval_task", "weather_effect")
    assert report["shapes"].startswith("real examples")
    assert report["methods"]["zemi"]["fast"]["eval_examples_per_s"] > 0
