"""The paper's Table 1 from evaluation directories: per method, the checkpoint that is best on average over the
held-out tasks; per task, the mean accuracy over its templates (with the median and the template count).

    python -m zemi.report output/eval/* --output_dir output/report

writes table1.md, table1.csv, results.json ({method: {"tasks": {task: accuracy}, "average", "checkpoint",
"chance": {task: accuracy of guessing}}}) and table1.png (a bar chart of the methods, with each task's chance level).
The chance level of a template is the mean of 1 / (number of answer choices) over its examples, recorded by the
evaluation; a task's is the mean over its templates, like its accuracy.
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
    chance: float | None = None  # None: a results.json without chance levels (the authors' or an older run)


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
    chances: dict[int, dict[str, list[float | None]]] = defaultdict(lambda: defaultdict(list))
    for row in rows:
        by_step[row["step"]][row["task"]].append(row["accuracy"])
        chances[row["step"]][row["task"]].append(row.get("chance"))
    tasks = set.intersection(*(set(per_task) for per_task in by_step.values()))
    if not tasks:
        raise ConfigError(f"{method}: no task was evaluated at every checkpoint")
    candidates = []
    for step, per_task in sorted(by_step.items()):
        scores = {task: TaskScore(statistics.fmean(per_task[task]), statistics.median(per_task[task]),
                                  len(per_task[task]), _mean_or_none(chances[step][task])) for task in sorted(tasks)}
        candidates.append(MethodRow(method, step, scores))
    return max(candidates, key=lambda row: (row.average, -row.checkpoint))


def _mean_or_none(values: list[float | None]) -> float | None:
    return None if not values or any(v is None for v in values) else statistics.fmean(values)


def chance_levels(table: list[MethodRow], tasks: list[str]) -> dict[str, float | None]:
    """Each task's chance level (the first method that recorded one: every method reads the same templates) and
    their average over the tasks (None unless every task has one)."""
    chance = {t: next((row.tasks[t].chance for row in table if t in row.tasks and row.tasks[t].chance is not None),
                      None) for t in tasks}
    missing = [t for t, value in chance.items() if value is None]
    chance["Average"] = None if missing or not tasks else statistics.fmean(chance[t] for t in tasks)
    return chance


def markdown(table: list[MethodRow], tasks: list[str]) -> str:
    header = "| Method | Checkpoint | " + " | ".join(tasks) + " | Average |"
    lines = [header, "|" + "---|" * (len(tasks) + 3)]
    for row in table:
        cells = [f"{100 * row.tasks[t].mean:.2f}" if t in row.tasks else "–" for t in tasks]
        lines.append(f"| {row.method} | step_{row.checkpoint} | " + " | ".join(cells) + f" | {100 * row.average:.2f} |")
    chance = chance_levels(table, tasks)
    cells = [f"{100 * chance[t]:.2f}" if chance[t] is not None else "–" for t in [*tasks, "Average"]]
    lines.append("| *Chance* | – | " + " | ".join(cells) + " |")
    lines += ["", "Accuracy (%), mean over each task's templates; *Chance*: the accuracy of guessing uniformly among "
              "each example's answer choices. Median over templates / template count:", "",
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
    chance = chance_levels(table, tasks)
    label = "chance"
    for g, group in enumerate(groups):  # a dashed line across each group's bars, drawn over them
        if chance[group] is not None:
            axes.hlines(100 * chance[group], g - 0.45, g + 0.45, colors="black", linestyles="--", linewidth=1.2,
                        zorder=3, label=label)
            label = None
    axes.set_xticks(range(len(groups)), groups, rotation=30, ha="right")
    axes.set_ylim(0, 100)
    axes.set_ylabel("accuracy (%)")
    axes.set_title("Zero-shot accuracy on held-out tasks (best checkpoint per method)")
    axes.legend(loc="upper left", bbox_to_anchor=(1.01, 1), borderaxespad=0, frameon=False)
    figure.tight_layout()
    figure.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(figure)


def write_report(eval_dirs: Sequence[str | Path], output_dir: str | Path, labels: dict[str, str] | None = None,
                 order: Sequence[str] | None = None) -> list[MethodRow]:
    by_method = collect(eval_dirs, labels or {})
    table = [best_checkpoint(method, rows) for method, rows in by_method.items()]
    if order:
        rank = {name: i for i, name in enumerate(order)}
        table.sort(key=lambda row: rank.get(row.method, len(rank)))
    tasks = sorted({task for row in table for task in row.tasks})
    without_chance = [task for task, level in chance_levels(table, tasks).items() if level is None and task in tasks]
    if without_chance:
        logger.warning("no chance level for %s: no method's results.json rows record 'chance' there (the authors' "
                       "or an older evaluation); table1.md and table1.png show none for it", without_chance)
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    write_text_atomic(output_dir / "table1.md", markdown(table, tasks))
    write_csv_atomic(output_dir / "table1.csv", [
        {"method": row.method, "checkpoint": row.checkpoint, "task": task, "mean": score.mean,
         "median": score.median, "templates": score.templates, "chance": "" if score.chance is None else score.chance}
        for row in table for task, score in row.tasks.items()])
    write_json_atomic(output_dir / "results.json", {
        row.method: {"tasks": {t: s.mean for t, s in row.tasks.items()}, "average": row.average,
                     "checkpoint": row.checkpoint, "chance": {t: s.chance for t, s in row.tasks.items()}}
        for row in table})
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

