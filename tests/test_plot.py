"""`zemi-plot`: loss.png and (Zemi) gates.png from run directories' CSV files, several runs overlaid: one
legend entry per run, the styles explained once, validation markers apart, warm-up's end and the --group_by_length
windows marked."""

from __future__ import annotations

from pathlib import Path

import json
import math

import pytest
from PIL import Image

from tests.helpers import common_flags, method_flags, run_module
from zemi import multi_task_fine_tune_baseline, multi_task_fine_tune_xattn
from zemi.errors import MissingInputError
from zemi.tools.plot import DPI, FIGURE_SIZE, PlotInputError, _pyplot, loss_figure, read_run, smoothed, write_plots

pytestmark = pytest.mark.unit

PIXELS = (int(FIGURE_SIZE[0] * DPI), int(FIGURE_SIZE[1] * DPI))


def write_run(path: Path, *, gates: bool, steps: int = 30) -> Path:
    path.mkdir(parents=True)
    header = "step,epoch,loss,lr" + (",tanh_attn_gate_0,tanh_ff_gate_0" if gates else "")
    rows = [f"{s},1,{10 / s},0.001" + (f",{s / 1000},{-s / 2000}" if gates else "") for s in range(1, steps + 1)]
    (path / "train_log.csv").write_text("\n".join([header, *rows]) + "\n")
    (path / "results.csv").write_text(f"epoch,step,dev_loss\n1,{steps // 2},1.0\n2,{steps},0.5\n")
    return path


def write_schedule_run(path: Path, lr: list[float], *, epochs: int = 1, args: dict | None = None,
                       dev_loss: float = 1.0) -> Path:
    """A run of len(lr) steps split evenly into `epochs`, with that learning rate after each step."""
    path.mkdir(parents=True)
    per_epoch = len(lr) // epochs
    rows = [f"{s},{(s - 1) // per_epoch + 1},{3 - s / len(lr)},{rate}" for s, rate in enumerate(lr, start=1)]
    (path / "train_log.csv").write_text("\n".join(["step,epoch,loss,lr", *rows]) + "\n")
    (path / "results.csv").write_text(f"epoch,step,dev_loss\n{epochs},{len(lr)},{dev_loss}\n")
    if args is not None:
        (path / "args.json").write_text(json.dumps(args))
    return path


def warmup_cosine(steps: int, warmup: int) -> list[float]:
    """get_scheduler("cosine")'s learning rate after each step, as train_log.csv records it."""
    return [s / warmup if s < warmup else 0.5 * (1 + math.cos(math.pi * (s - warmup) / (steps - warmup)))
            for s in range(1, steps + 1)]


def test_the_end_of_warm_up_is_the_learning_rate_peak(tmp_path):
    assert read_run(write_schedule_run(tmp_path / "warm", warmup_cosine(125, 32))).warmup_end == 32
    assert read_run(write_schedule_run(tmp_path / "constant", [1e-3] * 20)).warmup_end is None
    assert read_run(write_schedule_run(tmp_path / "decay", warmup_cosine(20, 1))).warmup_end is None


def test_length_grouping_windows_start_every_50_global_batches_and_again_each_epoch(tmp_path):
    grouped = {"group_by_length": True, "gradient_accumulation_steps": 1}
    demo = read_run(write_schedule_run(tmp_path / "demo", warmup_cosine(125, 32), args=grouped))
    assert demo.window_starts() == [50.5, 100.5]
    accumulated = read_run(write_schedule_run(tmp_path / "ga2", warmup_cosine(120, 12), epochs=2,
                                              args={**grouped, "gradient_accumulation_steps": 2}))
    assert accumulated.epoch_starts == [1, 61]
    assert accumulated.window_starts() == [25.5, 50.5, 85.5, 110.5]
    shuffled = {"group_by_length": False, "gradient_accumulation_steps": 1}
    assert read_run(write_schedule_run(tmp_path / "shuffled", [1e-3] * 125, args=shuffled)).window_starts() == []
    assert read_run(write_schedule_run(tmp_path / "no_args", [1e-3] * 125)).window_starts() == []


def test_the_loss_plot_has_one_legend_entry_per_run_and_explains_its_styles_once(tmp_path):
    grouped = {"group_by_length": True, "gradient_accumulation_steps": 1}
    runs = [read_run(write_schedule_run(tmp_path / name, warmup_cosine(125, 32), args=grouped, dev_loss=loss))
            for name, loss in (("no_aug_base", 1.76), ("concat_base", 1.71), ("fid_base", 1.75), ("zemi_base", 1.57))]
    figure = loss_figure(runs)
    try:
        axes = figure.axes[0]
        assert [t.get_text() for t in axes.get_legend().get_texts()] == [
            "no_aug_base (validation 1.76)", "concat_base (validation 1.71)", "fid_base (validation 1.75)",
            "zemi_base (validation 1.57)"]
        styles = [t.get_text() for legend in figure.legends for t in legend.get_texts()]
        assert len(styles) == 4
        assert any("warm-up" in text and "32" in text for text in styles)
        assert any("--group_by_length" in text for text in styles)
        markers = [line.get_xdata()[0] for line in axes.get_lines() if line.get_marker() == "o"]
        assert len(markers) == 4 and len(set(markers)) == 4 and all(abs(x - 125) < 5 for x in markers)
        verticals = sorted(line.get_xdata()[0] for line in axes.get_lines() if line.get_linestyle() in ("--", ":"))
        assert verticals == [32, 50.5, 100.5]
    finally:
        _pyplot().close(figure)
    long_run = read_run(write_schedule_run(tmp_path / "long", warmup_cosine(2000, 500), args=grouped))
    figure = loss_figure([long_run])
    try:
        dotted = [line for line in figure.axes[0].get_lines() if line.get_linestyle() == ":"]
        styles = [t.get_text() for legend in figure.legends for t in legend.get_texts()]
        assert dotted == [] and any("every 50 steps" in text for text in styles)
    finally:
        _pyplot().close(figure)


def test_smoothing_keeps_a_constant_and_starts_at_the_first_value():
    assert smoothed([2.0] * 50) == pytest.approx([2.0] * 50)
    assert smoothed([5.0, 1.0, 1.0], weight=0.9)[0] == 5.0


def test_runs_are_read_with_their_gates_and_validation_losses(tmp_path):
    run = read_run(write_run(tmp_path / "zemi_base", gates=True))
    assert run.label == "zemi_base" and run.steps == list(range(1, 31))
    assert set(run.gates) == {"tanh_attn_gate_0", "tanh_ff_gate_0"} and run.dev_steps == [15, 30]
    assert read_run(write_run(tmp_path / "no_aug_base", gates=False)).gates == {}


def test_bad_inputs_name_the_file(tmp_path):
    with pytest.raises(MissingInputError, match="nowhere/train_log.csv does not exist"):
        read_run(tmp_path / "nowhere")
    bad = write_run(tmp_path / "bad", gates=False)
    (bad / "train_log.csv").write_text("step,epoch,loss\n1,1,not-a-number\n")
    with pytest.raises(PlotInputError, match="train_log.csv, line 2"):
        read_run(bad)


def test_gates_png_only_when_a_run_has_gates(tmp_path):
    assert [p.name for p in write_plots([write_run(tmp_path / "a", gates=False)], tmp_path / "out1")] == ["loss.png"]
    written = write_plots([write_run(tmp_path / "b", gates=False), write_run(tmp_path / "c", gates=True)],
                          tmp_path / "out2")
    assert [p.name for p in written] == ["loss.png", "gates.png"]
    for path in written:
        with Image.open(path) as image:
            assert image.format == "PNG" and image.size == PIXELS


@pytest.mark.e2e
def test_the_plot_command_after_real_runs(tmp_path, backbone_dir, data_root, perceiver_json, one_thread):
    runs = []
    for method, entry in (("no_aug", multi_task_fine_tune_baseline), ("zemi", multi_task_fine_tune_xattn)):
        _, flags = method_flags(method, backbone_dir, perceiver_json)
        runs.append(entry.main(flags + common_flags(data_root, tmp_path / f"{method}_base", epochs=1)
                               + ["--report_to", "none"]))
    done = run_module("zemi", ["plot", *map(str, runs), "--output", str(tmp_path / "plots")])
    assert done.returncode == 0, done.stderr[-2000:]
    for name in ("loss.png", "gates.png"):
        with Image.open(tmp_path / "plots" / name) as image:
            image.verify()
            assert image.size == PIXELS
    missing = run_module("zemi", ["plot", str(tmp_path / "nowhere")])
    assert missing.returncode == 2 and "error: " in missing.stderr and "train_log.csv" in missing.stderr
