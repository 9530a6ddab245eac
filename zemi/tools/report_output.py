"""Table 1's files from a built report (`zemi.tools.report`): the markdown table with its notes, the CSV rows, the
results.json object and the bar chart with interval whiskers."""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import TYPE_CHECKING

from zemi.tools.uncertainty import LEVEL

if TYPE_CHECKING:
    from zemi.tools.report import Difference, Estimate, MethodRow, Report

DASH = "–"
STATISTICS_NOTE = ("paired bootstrap over raw examples (the same resampled examples for both methods, in every "
                   "template of a task; template by template where files lack raw example keys; with seeds, seeds "
                   "resampled too); p: two-sided, twice the smaller share of "
                   "resampled differences on either side of 0 (docs/statistics.md)")


def chance_levels(report: Report) -> dict[str, float | None]:
    """Each task's chance level (the first method that recorded one: every method reads the same templates) and
    their average over the report's average tasks (None unless each of them has one)."""
    recorded = [(t, row.tasks[t].chance) for row in report.rows for t in row.tasks if row.tasks[t].chance is not None]
    chance: dict[str, float | None] = {t: next((level for task, level in recorded if task == t), None)
                                       for t in report.tasks}
    levels = [chance[t] for t in report.average_tasks]
    chance["Average"] = None if not levels or None in levels else statistics.fmean(levels)
    return chance


def average_header(report: Report) -> str:
    if report.average_tasks == report.tasks:
        return "Average"
    return f"Average of {len(report.average_tasks)}/{len(report.tasks)}"


def _cell(score: Estimate | None) -> str:
    if score is None:
        return DASH
    text = f"{100 * score.mean:.2f}"
    if score.sd is not None:
        text += f" ± {100 * score.sd:.2f}"
    interval = DASH if score.low is None else f"{100 * score.low:.1f}, {100 * score.high:.1f}"
    return f"{text} [{interval}]"


def _difference_cell(difference: Difference | None) -> str:
    if difference is None:
        return DASH
    p = "p<0.001" if difference.p < 0.001 else f"p={difference.p:.3f}"
    return f"{100 * difference.value:+.2f} [{100 * difference.low:+.1f}, {100 * difference.high:+.1f}] {p}"


def method_label(row: MethodRow) -> str:
    if len(row.seeds) == 1:
        return row.method
    return f"{row.method} (seeds {', '.join(str(run.seed) for run in row.seeds)})"


def _table(header: list[str], lines: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)] + ["| " + " | ".join(cells) + " |"
                                                                            for cells in lines]


def _marks(row: MethodRow, where: str) -> str:
    return "".join(f" †{number}" for number in row.marks.get(where, []))


def markdown(report: Report) -> str:
    tasks, average = report.tasks, average_header(report)
    rows = [[method_label(row) + _marks(row, ""), ", ".join(f"step_{run.checkpoint}" for run in row.seeds),
             *(_cell(row.tasks.get(t)) + _marks(row, t) for t in tasks), _cell(row.average)] for row in report.rows]
    chance = chance_levels(report)
    rows.append(["*Chance*", DASH, *(f"{100 * chance[t]:.2f}" if chance[t] is not None else DASH
                                     for t in [*tasks, "Average"])])
    lines = _table(["Method", "Checkpoint", *tasks, average], rows)
    seeds = any(len(row.seeds) > 1 for row in report.rows)
    lines += ["", f"Accuracy (%) at each method's best checkpoint (per seed), the mean over each task's templates"
              + ("; with several seeds, the mean over seeds ± their standard deviation" if seeds else "")
              + f"; [{LEVEL:.0%} interval]: bootstrap over the examples ({report.resamples} resamples, seed "
              f"{report.seed}; each task's templates resampled on the same raw examples"
              + ("; with several seeds, seeds resampled too" if seeds else "") + "). *Chance*: the accuracy of "
              "guessing uniformly among each example's answer choices."]
    lines.append("")
    if not report.average_tasks:
        lines.append("**Average**: none, no task was evaluated for every method.")
    elif report.average_tasks == tasks:
        lines.append(f"**Average**: over all {len(tasks)} tasks.")
    else:
        lacking = "; ".join(f"{row.method} lacks {', '.join(report.missing_tasks(row))}" for row in report.rows
                            if report.missing_tasks(row))
        lines.append(f"**{average}**: over the {len(report.average_tasks)} tasks every method has "
                     f"({', '.join(report.average_tasks)}); {lacking}.")
    lines += [f"- †{number}: {text}" for number, text in enumerate(report.footnotes, 1)]
    lines += [f"- {row.method}: no intervals, {row.no_interval}" for row in report.rows if row.no_interval]
    lines += [f"- {note}" for note in report.notes]
    if report.comparisons:
        lines += ["", f"Paired differences (percentage points), [{LEVEL:.0%} interval] and p-value: {STATISTICS_NOTE}.",
                  ""]
        lines += _table(["Comparison", *tasks, average],
                        [[f"{c.method} − {c.baseline}", *(_difference_cell(c.tasks.get(t)) for t in tasks),
                          _difference_cell(c.average)] for c in report.comparisons])
    lines += ["", "Median over templates / template count:", ""]
    lines += _table(["Method", *tasks], [[method_label(row), *(f"{100 * row.tasks[t].median:.2f} / "
                                                               f"{row.tasks[t].templates}" if t in row.tasks else DASH
                                                               for t in tasks)] for row in report.rows])
    return "\n".join(lines) + "\n"


def _optional(value: float | None):
    return "" if value is None else value


def _checkpoint_text(row: MethodRow):
    return row.checkpoint if len(row.seeds) == 1 else ";".join(str(run.checkpoint) for run in row.seeds)


def table_rows(report: Report) -> list[dict]:
    chance = chance_levels(report)
    rows = []
    for row in report.rows:
        scored = [(task, score, score.median, score.templates, score.chance) for task, score in row.tasks.items()]
        if row.average is not None:
            scored.append(("Average", row.average, "", "", chance["Average"]))
        rows += [{"method": row.method, "checkpoint": _checkpoint_text(row), "task": task, "mean": score.mean,
                  "median": median, "templates": templates, "chance": _optional(level), "low": _optional(score.low),
                  "high": _optional(score.high), "sd": _optional(score.sd), "seeds": len(row.seeds)}
                 for task, score, median, templates, level in scored]
    return rows


def _interval(score: Estimate | None) -> list[float] | None:
    return None if score is None or score.low is None else [score.low, score.high]


def _difference_json(difference: Difference | None) -> dict | None:
    return None if difference is None else {"difference": difference.value, "interval": [difference.low,
                                                                                         difference.high],
                                            "p": difference.p}


def results_json(report: Report) -> dict:
    statistics_settings = {"level": LEVEL, "resamples": report.resamples, "seed": report.seed,
                           "test": "paired bootstrap"}
    data = {}
    for row in report.rows:
        data[row.method] = {
            "tasks": {t: s.mean for t, s in row.tasks.items()},
            "average": None if row.average is None else row.average.mean,
            "checkpoint": row.checkpoint,
            "chance": {t: s.chance for t, s in row.tasks.items()},
            "average_tasks": report.average_tasks,
            "missing_tasks": report.missing_tasks(row),
            "interval": {t: _interval(s) for t, s in row.tasks.items()},
            "average_interval": _interval(row.average),
            "no_interval": row.no_interval,
            "sd": {t: s.sd for t, s in row.tasks.items()},
            "average_sd": None if row.average is None else row.average.sd,
            "median": {t: s.median for t, s in row.tasks.items()},
            "templates": {t: s.templates for t, s in row.tasks.items()},
            "seeds": [{"seed": run.seed, "checkpoint": run.checkpoint,
                       "eval_dirs": [str(item.path) for item in run.directories],
                       "tasks": {t: s.mean for t, s in run.tasks.items()},
                       "average": statistics.fmean(run.tasks[t].mean for t in report.average_tasks)
                       if report.average_tasks and row.average is not None else None} for run in row.seeds],
            "differences": {c.baseline: {"tasks": {t: _difference_json(d) for t, d in c.tasks.items()},
                                         "average": _difference_json(c.average)}
                            for c in report.comparisons if c.method == row.method},
            "statistics": statistics_settings,
            "footnotes": {where or "row": [report.footnotes[n - 1] for n in numbers]
                          for where, numbers in row.marks.items()},
        }
    return data


def comparison_rows(report: Report) -> list[dict]:
    rows = []
    for c in report.comparisons:
        for task, difference in [*c.tasks.items(), ("Average", c.average)]:
            rows.append({"method": c.method, "baseline": c.baseline, "task": task,
                         "difference": "" if difference is None else difference.value,
                         "low": "" if difference is None else difference.low,
                         "high": "" if difference is None else difference.high,
                         "p": "" if difference is None else difference.p})
    return rows


def seed_rows(report: Report) -> list[dict]:
    return [{"method": row.method, "seed": run.seed, "checkpoint": run.checkpoint, "task": task, "mean": score.mean,
             "eval_dirs": ";".join(str(item.path) for item in run.directories)}
            for row in report.rows for run in row.seeds for task, score in run.tasks.items()]


def bar_chart(report: Report, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = report.tasks + ([average_header(report)] if report.average_tasks else [])
    width = 0.8 / max(len(report.rows), 1)
    figure, axes = plt.subplots(figsize=(max(6, 1.3 * len(groups)), 4))
    for i, row in enumerate(report.rows):
        scores = [row.tasks.get(t) for t in report.tasks] + ([row.average] if report.average_tasks else [])
        values = [100 * s.mean if s is not None else float("nan") for s in scores]
        below = [100 * (s.mean - s.low) if s is not None and s.low is not None else float("nan") for s in scores]
        above = [100 * (s.high - s.mean) if s is not None and s.low is not None else float("nan") for s in scores]
        axes.bar([g + (i - (len(report.rows) - 1) / 2) * width for g in range(len(groups))], values, width,
                 yerr=[below, above], capsize=2, error_kw={"elinewidth": 1}, label=method_label(row))
    chance = chance_levels(report)
    label = "chance"
    for g, group in enumerate(report.tasks + ["Average"] * bool(report.average_tasks)):
        if chance[group] is not None:  # a dashed line across each group's bars, drawn over them
            axes.hlines(100 * chance[group], g - 0.45, g + 0.45, colors="black", linestyles="--", linewidth=1.2,
                        zorder=3, label=label)
            label = None
    axes.set_xticks(range(len(groups)), groups, rotation=30, ha="right")
    axes.set_ylim(0, 100)
    axes.set_ylabel("accuracy (%)")
    axes.set_title(f"Zero-shot accuracy, best checkpoint per method ({LEVEL:.0%} intervals)")
    axes.legend(loc="upper left", bbox_to_anchor=(1.01, 1), borderaxespad=0, frameon=False)
    figure.tight_layout()
    figure.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(figure)
