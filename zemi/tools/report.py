"""The paper's Table 1 from evaluation directories: per method, the checkpoint that is best on average over the
held-out tasks; per task, the mean accuracy over its templates (with the median and the template count).

    python -m zemi.report output/eval/* --output_dir output/report

writes table1.md, table1.csv, results.json ({method: {"tasks": {task: accuracy}, "average", "checkpoint"}}) and
table1.png (a bar chart of the methods).
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from zemi.errors import ConfigError, MissingInputError
from zemi.io import write_csv_atomic, write_json_atomic, write_text_atomic

logger = logging.getLogger(__name__)


@dataclass
class TaskScore:
    mean: float
    median: float
    templates: int


@dataclass
class MethodRow:
    method: str
    checkpoint: int
    tasks: dict[str, TaskScore]

    @property
    def average(self) -> float:
        return statistics.fmean(score.mean for score in self.tasks.values())


def collect(eval_dirs: Sequence[str | Path], labels: dict[str, str]) -> dict[str, list[dict]]:
    """All result rows, by method (a label given for the run directory's name, or that name)."""
    rows: dict[str, list[dict]] = defaultdict(list)
    for directory in eval_dirs:
        results_file = Path(directory) / "results.json"
        if not results_file.is_file():
            raise MissingInputError(f"{results_file} does not exist: not an evaluation output directory")
        data = json.loads(results_file.read_text())
        rows[labels.get(data["method"], data["method"])].extend(data["results"])
    return rows


def best_checkpoint(method: str, rows: list[dict]) -> MethodRow:
    """Per checkpoint, per task: mean over templates; the checkpoint with the best average over the tasks that
    every checkpoint was evaluated on wins (ties: the earlier step)."""
    by_step: dict[int, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for row in rows:
        by_step[row["step"]][row["task"]].append(row["accuracy"])
    tasks = set.intersection(*(set(per_task) for per_task in by_step.values()))
    if not tasks:
        raise ConfigError(f"{method}: no task was evaluated at every checkpoint")
    candidates = []
    for step, per_task in sorted(by_step.items()):
        scores = {task: TaskScore(statistics.fmean(per_task[task]), statistics.median(per_task[task]),
                                  len(per_task[task])) for task in sorted(tasks)}
        candidates.append(MethodRow(method, step, scores))
    return max(candidates, key=lambda row: (row.average, -row.checkpoint))


def markdown(table: list[MethodRow], tasks: list[str]) -> str:
    header = "| Method | Checkpoint | " + " | ".join(tasks) + " | Average |"
    lines = [header, "|" + "---|" * (len(tasks) + 3)]
    for row in table:
        cells = [f"{100 * row.tasks[t].mean:.2f}" if t in row.tasks else "–" for t in tasks]
        lines.append(f"| {row.method} | step_{row.checkpoint} | " + " | ".join(cells) + f" | {100 * row.average:.2f} |")
    lines += ["", "Accuracy (%), mean over each task's templates. Median over templates / template count:", "",
              "| Method | " + " | ".join(tasks) + " |", "|" + "---|" * (len(tasks) + 1)]
    for row in table:
        cells = [f"{100 * row.tasks[t].median:.2f} / {row.tasks[t].templates}" if t in row.tasks else "–" for t in tasks]
        lines.append(f"| {row.method} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def bar_chart(table: list[MethodRow], tasks: list[str], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = tasks + ["Average"]
    width = 0.8 / max(len(table), 1)
    figure, axes = plt.subplots(figsize=(max(6, 1.3 * len(groups)), 4))
    for i, row in enumerate(table):
        values = [100 * row.tasks[t].mean if t in row.tasks else 0 for t in tasks] + [100 * row.average]
        axes.bar([g + (i - (len(table) - 1) / 2) * width for g in range(len(groups))], values, width, label=row.method)
    axes.set_xticks(range(len(groups)), groups, rotation=30, ha="right")
    axes.set_ylabel("accuracy (%)")
    axes.set_title("Zero-shot accuracy on held-out tasks (best checkpoint per method)")
    axes.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def write_report(eval_dirs: Sequence[str | Path], output_dir: str | Path, labels: dict[str, str] | None = None,
                 order: Sequence[str] | None = None) -> list[MethodRow]:
    by_method = collect(eval_dirs, labels or {})
    table = [best_checkpoint(method, rows) for method, rows in by_method.items()]
    if order:
        rank = {name: i for i, name in enumerate(order)}
        table.sort(key=lambda row: rank.get(row.method, len(rank)))
    tasks = sorted({task for row in table for task in row.tasks})
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    write_text_atomic(output_dir / "table1.md", markdown(table, tasks))
    write_csv_atomic(output_dir / "table1.csv", [
        {"method": row.method, "checkpoint": row.checkpoint, "task": task, "mean": score.mean,
         "median": score.median, "templates": score.templates}
        for row in table for task, score in row.tasks.items()])
    write_json_atomic(output_dir / "results.json", {
        row.method: {"tasks": {t: s.mean for t, s in row.tasks.items()}, "average": row.average,
                     "checkpoint": row.checkpoint} for row in table})
    bar_chart(table, tasks, output_dir / "table1.png")
    return table


class _HelpFormatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """The module docstring as written, and every option's default."""


def main(argv: Sequence[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=_HelpFormatter)
    parser.add_argument("eval_dirs", nargs="+", help="Evaluation output directories (each with results.json)")
    parser.add_argument("--output_dir", required=True)
    parser.add_argument("--label", action="append", default=[], metavar="RUN=NAME",
                        help="Show run directory RUN as method NAME (repeatable); also fixes the row order")
    args = parser.parse_intermixed_args(argv)  # training/common.sh passes DIR --label ... DIR --label ...
    labels = dict(item.split("=", 1) for item in args.label)
    write_report(args.eval_dirs, args.output_dir, labels, order=list(labels.values()) or None)
    print((Path(args.output_dir) / "table1.md").read_text())
    return Path(args.output_dir)

