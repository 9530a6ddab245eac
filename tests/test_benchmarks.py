"""The throughput benchmark runs end to end on CPU and reports what the README's table needs (one timed iteration
per measurement: the numbers are checked for being there and consistent, not for their size)."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[1]


ONE_STEP = ["--device", "cpu", "--config", "tiny", "--steps", "1", "--warmup", "0"]


def test_tiny_cpu_benchmark_reports_both_modes_of_all_four_methods():
    """As a user runs it, in its own process (its peak memory is the process's high-water mark)."""
    done = subprocess.run([sys.executable, "benchmarks/throughput.py", *ONE_STEP], cwd=REPO, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout)
    assert report["device"].startswith("cpu") and report["config"] == "tiny" and report["lengths"] == "max"
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
        ranking = entry["rank_classification"]
        ways = ("reencode_full_head", "encode_once_full_head", "encode_once_fused_head")
        assert ranking["choices_per_example"] == 4 and ranking["dtype"] == "torch.float32"
        assert all(ranking[way]["seconds_per_example"] > 0 for way in ways)
        ratios = ranking["ratios"]
        assert ratios["encode_once_flop_reduction"] == pytest.approx(
            ranking["reencode_full_head"]["flop_per_example"] / ranking["encode_once_full_head"]["flop_per_example"])
        assert ratios["encode_once_flop_reduction"] > 1.5, method  # 4 choices share one encoding
        assert ratios["fused_head_speedup"] == pytest.approx(ranking["encode_once_full_head"]["seconds_per_example"]
                                                             / ranking["encode_once_fused_head"]["seconds_per_example"])
        assert ratios["total_speedup"] == pytest.approx(ranking["reencode_full_head"]["seconds_per_example"]
                                                        / ranking["encode_once_fused_head"]["seconds_per_example"])
        # The fused head scores what the full-vocabulary log-softmax scores (fp32 rounding of sums near -50).
        assert ranking["fused_head_max_abs_score_difference"] < 1e-4
        assert ranking["fused_head_logits_elements"] <= ranking["full_head_logits_elements"]


def test_benchmark_on_real_examples_of_a_30aug_root(data_root, backbone_dir, capsys, monkeypatch):
    spec = importlib.util.spec_from_file_location("throughput", REPO / "benchmarks" / "throughput.py")
    throughput = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "throughput", throughput)  # its dataclasses look their module up
    spec.loader.exec_module(throughput)
    report = throughput.main([*ONE_STEP, "--methods", "zemi", "--data_root", str(data_root), "--tokenizer",
                              str(backbone_dir), "--train_tasks", "animal_colors", "animal_homes",
                              "--eval_task", "weather_effect"])
    assert json.loads(capsys.readouterr().out) == report
    assert report["shapes"].startswith("real examples")
    assert report["methods"]["zemi"]["fast"]["eval_examples_per_s"] > 0
