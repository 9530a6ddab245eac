"""`python -m zemi.plot`: loss.png and (Zemi) gates.png from run directories' CSV files, several runs overlaid."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from tests.helpers import common_flags, method_flags, run_module
from zemi import multi_task_fine_tune_baseline, multi_task_fine_tune_xattn
from zemi.errors import MissingInputError
from zemi.tools.plot import DPI, FIGURE_SIZE, PlotInputError, read_run, smoothed, write_plots

PIXELS = (int(FIGURE_SIZE[0] * DPI), int(FIGURE_SIZE[1] * DPI))


def write_run(path: Path, *, gates: bool, steps: int = 30) -> Path:
    path.mkdir(parents=True)
    header = "step,epoch,loss,lr" + (",tanh_attn_gate_0,tanh_ff_gate_0" if gates else "")
    rows = [f"{s},1,{10 / s},0.001" + (f",{s / 1000},{-s / 2000}" if gates else "") for s in range(1, steps + 1)]
    (path / "train_log.csv").write_text("\n".join([header, *rows]) + "\n")
    (path / "results.csv").write_text(f"epoch,step,dev_loss\n1,{steps // 2},1.0\n2,{steps},0.5\n")
    return path


@pytest.mark.unit
def test_smoothing_keeps_a_constant_and_starts_at_the_first_value():
    assert smoothed([2.0] * 50) == pytest.approx([2.0] * 50)
    assert smoothed([5.0, 1.0, 1.0], weight=0.9)[0] == 5.0


@pytest.mark.unit
def test_runs_are_read_with_their_gates_and_validation_losses(tmp_path):
    run = read_run(write_run(tmp_path / "zemi_base", gates=True))
    assert run.label == "zemi_base" and run.steps == list(range(1, 31))
    assert set(run.gates) == {"tanh_attn_gate_0", "tanh_ff_gate_0"} and run.dev_steps == [15, 30]
    assert read_run(write_run(tmp_path / "no_aug_base", gates=False)).gates == {}


@pytest.mark.unit
def test_bad_inputs_name_the_file(tmp_path):
    with pytest.raises(MissingInputError, match="nowhere/train_log.csv does not exist"):
        read_run(tmp_path / "nowhere")
    bad = write_run(tmp_path / "bad", gates=False)
    (bad / "train_log.csv").write_text("step,epoch,loss\n1,1,not-a-number\n")
    with pytest.raises(PlotInputError, match="train_log.csv, line 2"):
        read_run(bad)


@pytest.mark.unit
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
    done = run_module("zemi.plot", [*map(str, runs), "--output", str(tmp_path / "plots")])
    assert done.returncode == 0, done.stderr[-2000:]
    for name in ("loss.png", "gates.png"):
        with Image.open(tmp_path / "plots" / name) as image:
            image.verify()
            assert image.size == PIXELS
    missing = run_module("zemi.plot", [str(tmp_path / "nowhere")])
    assert missing.returncode == 2 and "error: " in missing.stderr and "train_log.csv" in missing.stderr
