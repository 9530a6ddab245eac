"""Training curves of run directories, from their train_log.csv and results.csv (no tracker needed): `loss.png`
(training loss, raw and smoothed, and the validation loss of each epoch) and, for Zemi runs, `gates.png` (the tanh
of every cross-attention block's gates). Several runs are overlaid, each labelled by its directory's name.
"""

from __future__ import annotations

import argparse
import csv
import io
import logging
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from zemi.errors import MissingInputError, ZemiError
from zemi.io import write_bytes_atomic

logger = logging.getLogger(__name__)

TRAIN_LOG, RESULTS = "train_log.csv", "results.csv"
GATE_COLUMN = re.compile(r"^(tanh_)?(attn|ff)_gate_(\d+)$")  # written by zemi.run.tracking.fusion_gates
FIGURE_SIZE, DPI = (8.0, 4.5), 120  # 960 x 540 pixels


class PlotInputError(ZemiError, ValueError):
    """A run's log exists but cannot be read as one."""


@dataclass
class RunCurves:
    label: str
    steps: list[int] = field(default_factory=list)
    loss: list[float] = field(default_factory=list)
    gates: dict[str, list[float]] = field(default_factory=dict)  # column -> value per step
    dev_steps: list[int] = field(default_factory=list)
    dev_loss: list[float] = field(default_factory=list)


def read_run(run_dir: str | Path) -> RunCurves:
    run_dir = Path(run_dir)
    log = run_dir / TRAIN_LOG
    if not log.is_file():
        raise MissingInputError(f"{log} does not exist: {run_dir} is not a training run directory (or has not "
                                "finished a step yet)")
    curves = RunCurves(run_dir.resolve().name)
    with open(log, newline="") as handle:
        reader = csv.DictReader(handle)
        gate_columns = [c for c in reader.fieldnames or () if GATE_COLUMN.match(c)]
        curves.gates = {c: [] for c in gate_columns}
        try:
            for row in reader:
                curves.steps.append(int(row["step"]))
                curves.loss.append(float(row["loss"]))
                for column in gate_columns:
                    curves.gates[column].append(float(row[column]))
        except (KeyError, TypeError, ValueError) as err:
            raise PlotInputError(f"{log}, line {reader.line_num}: expected numeric 'step', 'loss' and gate "
                                 f"columns ({err})") from err
    results = run_dir / RESULTS
    if results.is_file():
        with open(results, newline="") as handle:
            reader = csv.DictReader(handle)
            try:
                for row in reader:
                    curves.dev_steps.append(int(row["step"]))
                    curves.dev_loss.append(float(row["dev_loss"]))
            except (KeyError, TypeError, ValueError) as err:
                raise PlotInputError(f"{results}, line {reader.line_num}: expected numeric 'step' and 'dev_loss' "
                                     f"({err})") from err
    return curves


def smoothed(values: Sequence[float], weight: float | None = None) -> list[float]:
    """Exponential moving average with TensorBoard's start-up correction. By default its time constant is about
    1/30 of the curve (at most 100 steps), so a short run is barely smoothed and a long one is readable."""
    if weight is None:
        weight = 1 - 1 / max(1.0, min(100.0, len(values) / 30))
    out, average = [], 0.0
    for i, value in enumerate(values, start=1):
        average = weight * average + (1 - weight) * value
        out.append(average / (1 - weight ** i) if weight > 0 else value)
    return out


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update({"font.size": 11, "axes.titlesize": 12, "legend.fontsize": 9})
    return plt


def _save(figure, path: Path) -> Path:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI)
    write_bytes_atomic(path, buffer.getvalue())
    return path


def plot_loss(runs: Sequence[RunCurves], path: Path) -> Path:
    plt = _pyplot()
    figure, axes = plt.subplots(figsize=FIGURE_SIZE, layout="constrained")
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    values = []
    for i, run in enumerate(runs):
        color = colors[i % len(colors)]
        axes.plot(run.steps, run.loss, color=color, alpha=0.25, linewidth=0.8)
        axes.plot(run.steps, smoothed(run.loss), color=color, linewidth=1.8, label=f"{run.label} (train)")
        if run.dev_steps:
            axes.plot(run.dev_steps, run.dev_loss, color=color, marker="o", markersize=6, linestyle="--",
                      linewidth=1, label=f"{run.label} (validation)")
        values += [v for v in run.loss + run.dev_loss if v > 0 and math.isfinite(v)]
    if values and max(values) / min(values) > 10:  # a loss falling by orders of magnitude reads better on a log axis
        from matplotlib.ticker import FuncFormatter

        axes.set_yscale("log")
        axes.yaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
        # Minor ticks labelled at 2, 3 and 5 times a power of ten only: all of them would overlap.
        axes.yaxis.set_minor_formatter(FuncFormatter(
            lambda value, _: f"{value:g}" if f"{value:e}"[0] in "235" else ""))
    axes.set_xlabel("optimizer step")
    axes.set_ylabel("token cross-entropy")
    axes.set_title("Training loss (faint: every step; solid: smoothed) and validation loss per epoch")
    axes.grid(True, alpha=0.3)
    axes.legend(loc="upper right")
    _save(figure, path)
    plt.close(figure)
    return path


def plot_gates(runs: Sequence[RunCurves], path: Path) -> Path:
    """One panel per gate kind (cross-attention, feed-forward); colour: run, line style: block."""
    plt = _pyplot()
    figure, panels = plt.subplots(1, 2, figsize=FIGURE_SIZE, sharex=True, sharey=True, layout="constrained")
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    styles = ["-", "--", ":", "-."]
    tanh = True
    for i, run in enumerate(runs):
        for column, values in run.gates.items():
            is_tanh, kind, block = GATE_COLUMN.match(column).groups()
            tanh = tanh and bool(is_tanh)
            label = f"{run.label}, block {block}" if len(run.gates) > 2 else run.label
            panels[int(kind == "ff")].plot(run.steps, values, color=colors[i % len(colors)],
                                      linestyle=styles[int(block) % len(styles)], linewidth=1.6, label=label)
    for panel, title in zip(panels, ("cross-attention gate", "feed-forward gate")):
        panel.set_title(title)
        panel.set_xlabel("optimizer step")
        panel.axhline(0, color="grey", linewidth=0.8)
        panel.grid(True, alpha=0.3)
    panels[0].set_ylabel("tanh(gate)" if tanh else "gate")
    panels[0].legend(loc="best")
    figure.suptitle("Zemi's gates: how much of each block's output reaches the decoder (0: none)")
    _save(figure, path)
    plt.close(figure)
    return path


def write_plots(run_dirs: Sequence[str | Path], output_dir: str | Path) -> list[Path]:
    """loss.png for every run; gates.png when any run has gates. Returns the files written."""
    runs = [read_run(run_dir) for run_dir in run_dirs]
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    written = [plot_loss(runs, output_dir / "loss.png")]
    gated = [run for run in runs if run.gates]
    if gated:
        written.append(plot_gates(gated, output_dir / "gates.png"))
    return written


def main(argv: Sequence[str] | None = None) -> list[Path]:
    parser = argparse.ArgumentParser(description="Plot training curves (loss.png, and gates.png for Zemi runs) of "
                                                 "one or more run directories, overlaid")
    parser.add_argument("run_dirs", nargs="+", help="Run directories (holding train_log.csv)")
    parser.add_argument("--output", default=None,
                        help="Where the PNGs go (default: the run directory when one is given, else the current one)")
    args = parser.parse_args(argv)
    logging.basicConfig(format="%(levelname)s %(name)s: %(message)s", level=logging.INFO)
    output = args.output or (args.run_dirs[0] if len(args.run_dirs) == 1 else ".")
    written = write_plots(args.run_dirs, output)
    for path in written:
        logger.info("wrote %s", path)
    return written
