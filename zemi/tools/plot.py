"""Training curves of run directories, from their train_log.csv, results.csv and args.json (no tracker needed):
`loss.png` (training loss, raw and smoothed; the validation loss of each epoch; where warm-up ends and where
`--group_by_length` restarts from its longest examples) and, for Zemi runs, `gates.png` (the tanh of every
cross-attention block's gates). Several runs are overlaid, each labelled by its directory's name.

    zemi-plot output/p3_finetuning/no_aug_base output/p3_finetuning/zemi_base --output output/plots
"""

from __future__ import annotations

import csv
import io
import logging
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from zemi.cli import argument, option, parse_config, setup_logging
from zemi.data import MEGABATCH_FACTOR
from zemi.errors import MissingInputError, ZemiError
from zemi.io import read_json, write_bytes_atomic

logger = logging.getLogger(__name__)

TRAIN_LOG, RESULTS, ARGS = "train_log.csv", "results.csv", "args.json"
GATE_COLUMN = re.compile(r"^(tanh_)?(attn|ff)_gate_(\d+)$")  # written by zemi.run.tracking.fusion_gates
FIGURE_SIZE, DPI = (8.0, 4.5), 120  # 960 x 540 pixels
MAX_MARKED_WINDOWS = 20  # more --group_by_length windows than this are named in the legend, not drawn


class PlotInputError(ZemiError, ValueError):
    """A run's log exists but cannot be read as one."""


@dataclass
class RunCurves:
    label: str
    steps: list[int] = field(default_factory=list)
    loss: list[float] = field(default_factory=list)
    lr: list[float] = field(default_factory=list)  # after each step; empty when the log has no `lr` column
    epoch_starts: list[int] = field(default_factory=list)  # the first step of each epoch in the log
    gates: dict[str, list[float]] = field(default_factory=dict)  # column -> value per step
    dev_steps: list[int] = field(default_factory=list)
    dev_loss: list[float] = field(default_factory=list)
    length_window: float | None = None  # optimizer steps per --group_by_length window; None without grouping

    @property
    def warmup_end(self) -> int | None:
        """The step of the peak learning rate when it rises to it and falls after it (a warm-up schedule)."""
        if len(self.lr) < 3:
            return None
        peak = max(range(len(self.lr)), key=self.lr.__getitem__)
        return self.steps[peak] if self.lr[0] < self.lr[peak] and self.lr[-1] < self.lr[peak] else None

    def window_starts(self) -> list[float]:
        """Between which steps a length-grouping window begins (x.5), epoch starts excluded: each window runs from
        its longest examples to its shortest, so the training loss jumps there."""
        if not self.length_window or not self.steps:
            return []
        ends = self.epoch_starts[1:] + [self.steps[-1] + 1]
        starts = []
        for first, end in zip(self.epoch_starts, ends):
            boundary = first + self.length_window
            while boundary < end:
                starts.append(boundary - 0.5)
                boundary += self.length_window
        return starts


def read_run(run_dir: str | Path) -> RunCurves:
    run_dir = Path(run_dir)
    log = run_dir / TRAIN_LOG
    if not log.is_file():
        raise MissingInputError(f"{log} does not exist: {run_dir} is not a training run directory (or has not "
                                "finished a step yet)")
    curves = RunCurves(run_dir.resolve().name)
    with open(log, newline="") as handle:
        reader = csv.DictReader(handle)
        columns = reader.fieldnames or ()
        gate_columns = [c for c in columns if GATE_COLUMN.match(c)]
        curves.gates = {c: [] for c in gate_columns}
        epoch = None
        try:
            for row in reader:
                curves.steps.append(int(row["step"]))
                curves.loss.append(float(row["loss"]))
                if "lr" in columns:
                    curves.lr.append(float(row["lr"]))
                if "epoch" in columns and row["epoch"] != epoch:
                    epoch = row["epoch"]
                    curves.epoch_starts.append(curves.steps[-1])
                for column in gate_columns:
                    curves.gates[column].append(float(row[column]))
        except (KeyError, TypeError, ValueError) as err:
            raise PlotInputError(f"{log}, line {reader.line_num}: expected numeric 'step', 'loss', 'lr' and gate "
                                 f"columns ({err})") from err
    curves.length_window = _length_window(run_dir / ARGS)
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


def _length_window(args_file: Path) -> float | None:
    """Optimizer steps per --group_by_length window: the sampler sorts windows of MEGABATCH_FACTOR global batches,
    and an optimizer step takes --gradient_accumulation_steps of them."""
    if not args_file.is_file():
        return None
    args = read_json(args_file, PlotInputError)
    if not args.get("group_by_length"):
        return None
    return MEGABATCH_FACTOR / int(args.get("gradient_accumulation_steps") or 1)


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


def _dodged(runs: Sequence[RunCurves], span: float) -> list[list[float]]:
    """Each run's validation steps, moved a little apart where several runs have one at the same step."""
    sharing: dict[int, list[int]] = {}
    for i, run in enumerate(runs):
        for step in set(run.dev_steps):
            sharing.setdefault(step, []).append(i)
    gap = 0.012 * span
    return [[step + (sharing[step].index(i) - (len(sharing[step]) - 1) / 2) * gap for step in run.dev_steps]
            for i, run in enumerate(runs)]


def plot_loss(runs: Sequence[RunCurves], path: Path) -> Path:
    figure = loss_figure(runs)
    _save(figure, path)
    _pyplot().close(figure)
    return path


def loss_figure(runs: Sequence[RunCurves]):
    """Colour: run (its legend entry gives its last validation loss); line and marker styles are explained once.
    Grey vertical lines: the end of warm-up, and where a --group_by_length window starts again from its longest
    examples (the training loss jumps there: longer inputs and targets)."""
    plt = _pyplot()
    from matplotlib.lines import Line2D

    figure, axes = plt.subplots(figsize=FIGURE_SIZE, layout="constrained")
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    values = []
    steps = [step for run in runs for step in run.steps + run.dev_steps]
    span = (max(steps) - min(steps)) if steps else 1.0
    run_handles = []
    for i, (run, dev_x) in enumerate(zip(runs, _dodged(runs, span))):
        color = colors[i % len(colors)]
        axes.plot(run.steps, run.loss, color=color, alpha=0.25, linewidth=0.8)
        axes.plot(run.steps, smoothed(run.loss), color=color, linewidth=1.8)
        label = run.label
        if run.dev_steps:
            axes.plot(dev_x, run.dev_loss, color=color, marker="o", markersize=7, markeredgecolor="white",
                      linestyle=":" if len(run.dev_steps) > 1 else "none", linewidth=1, zorder=3)
            label = f"{run.label} (validation {run.dev_loss[-1]:.3g})"
        run_handles.append(Line2D([], [], color=color, linewidth=1.8, label=label))
        values += [v for v in run.loss + run.dev_loss if v > 0 and math.isfinite(v)]
    style_handles = [Line2D([], [], color="grey", linewidth=1.8, label="training loss, smoothed (faint: every step)")]
    if any(run.dev_steps for run in runs):
        style_handles.append(Line2D([], [], color="grey", marker="o", linestyle="none", markersize=7,
                                    label="validation loss, end of each epoch"))
    style_handles += _mark_schedule(axes, runs)
    if values and max(values) / min(values) > 10:  # a loss falling by orders of magnitude reads better on a log axis
        from matplotlib.ticker import FuncFormatter

        axes.set_yscale("log")
        axes.yaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
        # Minor ticks labelled at 2, 3 and 5 times a power of ten only: all of them would overlap.
        axes.yaxis.set_minor_formatter(FuncFormatter(
            lambda value, _: f"{value:g}" if f"{value:e}"[0] in "235" else ""))
    axes.set_xlabel("optimizer step")
    axes.set_ylabel("token cross-entropy")
    axes.set_title("Training and validation loss")
    axes.grid(True, alpha=0.3)
    axes.legend(handles=run_handles, loc="upper right", title="run")
    figure.legend(handles=style_handles, loc="outside lower center", ncols=2, frameon=False)
    return figure


def _mark_schedule(axes, runs: Sequence[RunCurves]) -> list:
    """Vertical lines where warm-up ends and where a length-grouping window starts; their legend handles."""
    from matplotlib.lines import Line2D

    handles = []
    warmup_ends = sorted({run.warmup_end for run in runs} - {None})
    for step in warmup_ends:
        axes.axvline(step, color="grey", linestyle="--", linewidth=1)
    if warmup_ends:
        handles.append(Line2D([], [], color="grey", linestyle="--", linewidth=1, label="end of warm-up (peak "
                              f"learning rate): step {', '.join(map(str, warmup_ends))}"))
    window_starts = sorted({x for run in runs for x in run.window_starts()})
    if len(window_starts) > MAX_MARKED_WINDOWS:  # a long run: as many lines would grey the plot out
        every = sorted({run.length_window for run in runs} - {None})
        handles.append(Line2D([], [], linestyle="none", label="--group_by_length: a new window every "
                              f"{' / '.join(f'{w:g}' for w in every)} steps, longest examples first"))
    elif window_starts:
        for x in window_starts:
            axes.axvline(x, color="grey", linestyle=":", linewidth=1.2)
        handles.append(Line2D([], [], color="grey", linestyle=":", linewidth=1.2,
                              label="--group_by_length: a new window, longest examples first"))
    return handles


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


@dataclass
class PlotOptions:
    run_dirs: list[str] = argument("Run directories (holding train_log.csv)", nargs="+")
    output: str | None = option(None, "Where the PNGs go (default: the run directory when one is given, else the "
                                "current one)")


def main(argv: Sequence[str] | None = None) -> list[Path]:
    setup_logging()
    options = parse_config(PlotOptions, argv, __doc__)
    output = options.output or (options.run_dirs[0] if len(options.run_dirs) == 1 else ".")
    written = write_plots(options.run_dirs, output)
    for path in written:
        logger.info("wrote %s", path)
    return written
