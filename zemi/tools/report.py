"""The paper's Table 1 from evaluation directories, every number with its 95 % interval, and paired comparisons of
the methods (docs/statistics.md).

    zemi-report output/eval/no_aug_base output/eval/zemi_base --label no_aug_base=no_aug \\
        --label zemi_base=zemi --output_dir output/report/base

Per method and seed, the checkpoint that is best on average over the method's held-out tasks; per task, the mean
accuracy over its templates (with the median and the template count). Several seeds of a method (evaluation
directories with the same method name and different `seed`) give the mean over seeds, their standard deviation, and
an interval over seeds and examples together. The Average is over the tasks every method has; the table says which
tasks a method lacks. Writes table1.md, table1.csv, results.json ({method: {"tasks": {task: accuracy}, "average",
"checkpoint" (a list, one per seed, for several seeds), "chance", "interval", "average_interval", "differences", ...}})
and table1.png (bars with interval whiskers and each task's chance level), plus comparisons.csv and seeds.csv when
there are comparisons or several seeds. The chance level of a template is the mean of 1 / (number of answer choices)
over its examples, recorded by the evaluation; a task's is the mean over its templates, like its accuracy.
"""

from __future__ import annotations

import logging
import statistics
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from zemi.cli import argument, option, parse_config, setup_logging
from zemi.errors import ConfigError
from zemi.io import write_csv_atomic, write_json_atomic, write_text_atomic
from zemi.tools import report_output
from zemi.tools.evaluations import (METHOD_SETTING_PREFIXES, METHOD_SETTINGS, NO_PREDICTIONS, PADDING_SETTINGS,
                                    PER_DIRECTORY, EvalDir, best_checkpoint, check_labels, parse_labels,
                                    predictions_at, read_eval_dir, task_outcomes, template_means)
from zemi.tools.uncertainty import (LEVEL, RESAMPLES, SEED, TaskOutcomes, bootstrap, interval, paired_p_value,
                                    same_examples)

logger = logging.getLogger(__name__)

# Everything the report may write: a file of an earlier report that this one does not write is removed, so a used
# --output_dir ends up as a fresh one would.
REPORT_FILES = ("table1.md", "table1.csv", "results.json", "table1.png", "comparisons.csv", "seeds.csv")
NO_AUG, ZEMI = "no_aug", "zemi"
ZEMI_ARCHITECTURE = "SharedEncoderDecoder_MultiAug"


@dataclass
class Estimate:
    mean: float
    sd: float | None = None  # across seeds, with two or more
    low: float | None = None  # the 95 % interval; None without per-example predictions
    high: float | None = None


@dataclass
class TaskScore(Estimate):
    median: float = float("nan")  # over templates
    templates: int = 0
    chance: float | None = None  # None: a results.json without chance levels (the authors' or an older run)


@dataclass
class SeedRun:
    """One seed of a method: its evaluation directories and their best checkpoint."""

    seed: int | None
    directories: list[EvalDir]
    checkpoint: int
    tasks: dict[str, TaskScore]
    templates: dict[str, frozenset[str]]  # per task, the templates evaluated
    outcomes: dict[str, TaskOutcomes] | None  # None: no per-example predictions


@dataclass
class MethodRow:
    method: str
    seeds: list[SeedRun]
    tasks: dict[str, TaskScore]
    architecture: str | None = None
    documents_read: int | None = None
    average: Estimate | None = None  # over the report's common tasks; None when there are none
    no_interval: str | None = None  # why this row has no intervals
    marks: dict[str, list[int]] = field(default_factory=dict)  # footnote numbers, by task ("" for the whole row)

    @property
    def checkpoint(self) -> int | list[int]:
        steps = [run.checkpoint for run in self.seeds]
        return steps[0] if len(steps) == 1 else steps


@dataclass
class Difference:
    value: float
    low: float
    high: float
    p: float


@dataclass
class Comparison:
    method: str
    baseline: str
    tasks: dict[str, Difference | None]  # None: the two evaluated different examples of the task
    average: Difference | None


@dataclass
class Report:
    rows: list[MethodRow]
    tasks: list[str]
    average_tasks: list[str]
    comparisons: list[Comparison] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    footnotes: list[str] = field(default_factory=list)  # footnote n is footnotes[n - 1]
    resamples: int = RESAMPLES
    seed: int = SEED

    def missing_tasks(self, row: MethodRow) -> list[str]:
        return [task for task in self.tasks if task not in row.tasks]


def group_methods(eval_dirs: Sequence[EvalDir], labels: dict[str, str]) -> dict[str, dict[int | None, list[EvalDir]]]:
    """{method: {seed: directories}}; the directories of a method must have evaluated alike, and two of the same
    seed must not hold the same (checkpoint, template)."""
    methods: dict[str, dict[int | None, list[EvalDir]]] = defaultdict(lambda: defaultdict(list))
    for item in eval_dirs:
        methods[labels.get(item.run, item.run)][item.seed].append(item)
    for method, seeds in methods.items():
        directories = [item for group in seeds.values() for item in group]
        for other in directories[1:]:
            _check_same_settings(method, directories[0], other)
        for group in seeds.values():
            _check_disjoint(method, group)
    return methods


def _check_same_settings(method: str, first: EvalDir, other: EvalDir) -> None:
    same_seed = first.seed == other.seed
    mine, theirs = first.comparable_settings(same_seed=same_seed), other.comparable_settings(same_seed=same_seed)
    if mine == theirs:
        return
    if mine is None or theirs is None:
        without = first if mine is None else other
        raise ConfigError(f"method {method!r}: {without.path}/results.json records no settings (an older evaluation) "
                          f"but {(other if mine is None else first).path} does: cannot tell that they evaluated alike; "
                          "re-evaluate the older one or give it another --label")
    differing = {name: (mine.get(name), theirs.get(name)) for name in sorted(set(mine) | set(theirs))
                 if mine.get(name) != theirs.get(name)}
    raise ConfigError(f"method {method!r} joins {first.path} and {other.path}, which were evaluated with different "
                      f"settings {differing} (first vs second): give them different --label names")


def _check_disjoint(method: str, group: Sequence[EvalDir]) -> None:
    seen: dict[tuple, EvalDir] = {}
    for item in group:
        for row in item.rows:
            key = (row["step"], row["task"], row["template"])
            if key in seen and seen[key] is not item:
                raise ConfigError(f"method {method!r} (seed {item.seed}): {seen[key].path} and {item.path} both hold "
                                  f"step {key[0]} {key[1]}/{key[2]}: the same run evaluated twice? pass one of them, "
                                  "or give them different --label names")
            seen[key] = item


def seed_run(method: str, seed: int | None, directories: list[EvalDir], notes: list[str]) -> SeedRun:
    where = f"{method} ({', '.join(str(item.path) for item in directories)})"
    rows = [row for item in directories for row in item.rows]
    choice = best_checkpoint(rows, where)
    notes.extend(choice.passed_over)
    chosen = [row for row in rows if row["step"] == choice.step]
    chances: dict[str, list] = defaultdict(list)
    for row in chosen:
        chances[row["task"]].append(row.get("chance"))
    tasks = {task: TaskScore(statistics.fmean(values), median=statistics.median(values), templates=len(values),
                             chance=_mean_or_none(chances[task]))
             for task, values in sorted(template_means(chosen).items())}
    templates: dict[str, set[str]] = defaultdict(set)
    for row in chosen:
        templates[row["task"]].add(row["template"])
    predictions = predictions_at(directories, choice.step)
    return SeedRun(seed, directories, choice.step, tasks, {task: frozenset(names) for task, names in templates.items()},
                   None if predictions is None else task_outcomes(predictions))


def _mean_or_none(values: list[float | None]) -> float | None:
    return None if not values or any(v is None for v in values) else statistics.fmean(values)


def method_row(method: str, runs: list[SeedRun], notes: list[str]) -> MethodRow:
    """A method over its seeds: the tasks all of them have, on the same templates; per task the mean over seeds
    (and their sd)."""
    tasks = sorted(set.intersection(*(set(run.tasks) for run in runs)))
    for run in runs:
        if set(run.tasks) - set(tasks):
            notes.append(f"{method}: {sorted(set(run.tasks) - set(tasks))} left out: not evaluated for every seed")
    unlike = [task for task in tasks if len({run.templates[task] for run in runs}) > 1]
    if unlike:
        notes.append(f"{method}: {unlike} left out: its seeds were evaluated on different templates there")
        tasks = [task for task in tasks if task not in unlike]
    scores = {}
    for task in tasks:
        per_seed = [run.tasks[task] for run in runs]
        scores[task] = TaskScore(statistics.fmean(s.mean for s in per_seed), _seed_sd([s.mean for s in per_seed]),
                                 median=statistics.fmean(s.median for s in per_seed),
                                 templates=max(s.templates for s in per_seed), chance=per_seed[0].chance)
    first = runs[0].directories[0]
    row = MethodRow(method, runs, scores, first.architecture, first.documents_read)
    without = [item for run in runs if run.outcomes is None for item in run.directories]
    if without:
        row.no_interval = f"{', '.join(str(item.path) for item in without)}: {NO_PREDICTIONS}"
    return row


def build_report(eval_dirs: Sequence[str | Path], labels: dict[str, str] | None = None,
                 order: Sequence[str] | None = None, *, resamples: int = RESAMPLES, seed: int = SEED) -> Report:
    directories = [read_eval_dir(path) for path in eval_dirs]
    labels = labels or {}
    check_labels(labels, directories)
    notes: list[str] = []
    rows = []
    for method, seeds in group_methods(directories, labels).items():
        runs = [seed_run(method, key, group, notes) for key, group in sorted(seeds.items(), key=lambda kv: str(kv[0]))]
        rows.append(method_row(method, runs, notes))
    if order:
        rank = {name: i for i, name in enumerate(order)}
        rows.sort(key=lambda row: rank.get(row.method, len(rank)))
    tasks = sorted({task for row in rows for task in row.tasks})
    common = [task for task in tasks if all(task in row.tasks for row in rows)]
    report = Report(rows, tasks, common, notes=notes, resamples=resamples, seed=seed)
    check_comparable(report)
    for row in rows:
        if common:
            row.average = Estimate(statistics.fmean(row.tasks[t].mean for t in common),
                                   _seed_sd([statistics.fmean(run.tasks[t].mean for t in common) for run in row.seeds]))
    add_uncertainty(report)
    return report


def check_comparable(report: Report) -> None:
    """Methods side by side must have been evaluated alike, apart from what makes each method (docs/statistics.md):
    a setting that changes which examples are scored, their lengths or the precision refuses; padding and the
    template files read are marked with a footnote."""
    recorded = [row for row in report.rows if row.seeds[0].directories[0].settings is not None]
    for row in report.rows:
        if row not in recorded and len(report.rows) > 1:
            report.notes.append(f"{row.method}: its results.json records no settings (an older evaluation, or the "
                                "authors'), so whether it was evaluated like the other methods could not be checked")
    values = {row.method: row.seeds[0].directories[0].settings for row in recorded}
    names = sorted({name for settings in values.values() for name in settings})
    padding = []  # one footnote for every padding setting that differs: they come together (`longest` records more)
    for name in names:
        if name in METHOD_SETTINGS or name in PER_DIRECTORY or name.startswith(METHOD_SETTING_PREFIXES):
            continue
        found = {row.method: values[row.method].get(name) for row in recorded}
        if len({repr(value) for value in found.values()}) < 2:
            continue
        if name in PADDING_SETTINGS:
            padding.append(f"{name} (" + ", ".join(f"{method} {value!r}" for method, value in found.items()) + ")")
            continue
        first, other = next((a, b) for a in recorded for b in recorded if found[a.method] != found[b.method])
        raise ConfigError(f"{first.method} ({_paths(first)}) and {other.method} ({_paths(other)}) were evaluated with "
                          f"different {name}: {found[first.method]!r} and {found[other.method]!r}; it changes which "
                          "examples are scored or how, so their numbers cannot stand side by side: evaluate them "
                          "alike, or report them apart")
    if padding:
        _footnote(report, recorded, "", "evaluated with different padding: " + "; ".join(padding)
                  + "; scores differ through padding alone (docs/statistics.md)")
    _mark_template_files(report)


def _mark_template_files(report: Report) -> None:
    """A footnote on a task whose template (by name) was read from other data by different methods: other data
    fingerprints (a copy of the same files elsewhere has the same), or other paths where none was recorded."""
    for task in report.tasks:
        read: dict[str, dict[str, set]] = defaultdict(lambda: defaultdict(set))
        for row in report.rows:
            for run in row.seeds:
                for item in run.directories:
                    for result in item.rows:
                        if result["step"] == run.checkpoint and result["task"] == task:
                            files = (result.get("template_path"), result.get("data_fingerprint"))
                            read[result["template"]][row.method].add(files)
        differing = {template: methods for template, methods in sorted(read.items())
                     if len({fingerprint or path for found in methods.values() for path, fingerprint in found}) > 1}
        if differing:
            text = "; ".join(f"{task}/{template} read from different data: "
                             + ", ".join(f"{method} {_files(found)}" for method, found in methods.items())
                             for template, methods in differing.items())
            rows = [row for row in report.rows if any(row.method in methods for methods in differing.values())]
            _footnote(report, rows, task, text + " (the same examples only if they hold the same data)")


def _files(found: set) -> str:
    return " and ".join(f"{path} (fingerprint {fingerprint or 'not recorded'})" for path, fingerprint in sorted(found,
                                                                                                           key=str))


def _footnote(report: Report, rows: list[MethodRow], where: str, text: str) -> None:
    report.footnotes.append(text)
    for row in rows:
        row.marks.setdefault(where, []).append(len(report.footnotes))


def _paths(row: MethodRow) -> str:
    return ", ".join(str(item.path) for run in row.seeds for item in run.directories)


def _seed_sd(values: list[float]) -> float | None:
    return statistics.stdev(values) if len(values) > 1 else None


def add_uncertainty(report: Report) -> None:
    """Intervals for every row with per-example predictions, and the paired comparisons: each method against
    No Aug, Zemi against each other baseline."""
    usable = {row.method: {task: [run.outcomes[task] for run in row.seeds] for task in row.tasks}
              for row in report.rows if row.no_interval is None}
    replicates = bootstrap(usable, resamples=report.resamples, seed=report.seed) if usable else {}
    unkeyed = sorted({task for tasks in usable.values() for task, seeds in tasks.items()
                      if not all(o.keyed for o in seeds)})
    if unkeyed:
        report.notes.append(f"{unkeyed}: resampled template by template (paired by validation row), not by raw "
                            "example: some per-example files there lack raw example keys (an older evaluation), so "
                            "the templates of a task are treated as independent and the intervals are usually "
                            "narrower than they should be (the templates prompt the same examples)")
    averages = {}
    for row in report.rows:
        if row.method not in replicates:
            continue
        for task, score in row.tasks.items():
            score.low, score.high = interval(replicates[row.method][task])
        if row.average is not None:
            averages[row.method] = np.mean([replicates[row.method][t] for t in report.average_tasks], axis=0)
            row.average.low, row.average.high = interval(averages[row.method])
    by_name = {row.method: row for row in report.rows}
    for method, baseline in comparison_pairs(report):
        if method not in replicates or baseline not in replicates:
            missing = [name for name in (method, baseline) if name not in replicates]
            report.notes.append(f"{method} vs {baseline}: no paired comparison, {missing} without per-example "
                                "predictions")
            continue
        a, b = by_name[method], by_name[baseline]
        tasks: dict[str, Difference | None] = {}
        for task in report.tasks:
            if task in a.tasks and task in b.tasks:
                same = same_examples([run.outcomes[task] for row in (a, b) for run in row.seeds])
                tasks[task] = _difference(a.tasks[task].mean - b.tasks[task].mean,
                                          replicates[method][task] - replicates[baseline][task]) if same else None
                if not same:
                    report.notes.append(f"{method} vs {baseline} on {task}: not the same templates and examples, "
                                        "so no paired difference")
        average = None
        if a.average is not None and all(tasks.get(t) is not None for t in report.average_tasks):
            average = _difference(a.average.mean - b.average.mean, averages[method] - averages[baseline])
        report.comparisons.append(Comparison(method, baseline, tasks, average))


def _difference(value: float, replicates: np.ndarray) -> Difference:
    return Difference(value, *interval(replicates), paired_p_value(replicates))


def role(report: Report, wanted: str) -> tuple[MethodRow | None, str]:
    """The No Aug or Zemi row: by its name (the scripts' labels), else the one row whose files say so; and how."""
    named = [row for row in report.rows if row.method.lower().replace(" ", "_").replace("-", "_") == wanted]
    if named:
        return named[0], "by its name"
    if wanted == NO_AUG:
        found = [row for row in report.rows if row.architecture == "T5" and row.documents_read == 0]
        evidence = "architecture T5, documents_read 0 in its results.json settings"
    else:
        found = [row for row in report.rows if row.architecture == ZEMI_ARCHITECTURE]
        evidence = f"architecture {ZEMI_ARCHITECTURE} in its results.json"
    if len(found) == 1:
        return found[0], evidence
    if len(found) > 1:
        report.notes.append(f"{[row.method for row in found]} all look like {wanted} ({evidence}): label one "
                            f"{wanted!r} to compare against it")
    return None, ""


def comparison_pairs(report: Report) -> list[tuple[str, str]]:
    no_aug, how_no_aug = role(report, NO_AUG)
    zemi, how_zemi = role(report, ZEMI)
    pairs = []
    if no_aug is not None:
        report.notes.append(f"No Aug is {no_aug.method} ({how_no_aug})")
        pairs += [(row.method, no_aug.method) for row in report.rows if row is not no_aug]
    if zemi is not None:
        report.notes.append(f"Zemi is {zemi.method} ({how_zemi})")
        pairs += [(zemi.method, row.method) for row in report.rows if row is not zemi and row is not no_aug]
    return pairs


def write_report(eval_dirs: Sequence[str | Path], output_dir: str | Path, labels: dict[str, str] | None = None,
                 order: Sequence[str] | None = None, *, resamples: int = RESAMPLES,
                 bootstrap_seed: int = SEED) -> Report:
    report = build_report(eval_dirs, labels, order, resamples=resamples, seed=bootstrap_seed)
    without_chance = [task for task, level in report_output.chance_levels(report).items()
                      if level is None and task in report.tasks]
    if without_chance:
        logger.warning("no chance level for %s: no method's results.json rows record 'chance' there (the authors' "
                       "or an older evaluation); table1.md and table1.png show none for it", without_chance)
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    written = {"table1.md": report_output.markdown(report), "table1.csv": report_output.table_rows(report),
               "results.json": report_output.results_json(report)}
    if report.comparisons:
        written["comparisons.csv"] = report_output.comparison_rows(report)
    if any(len(row.seeds) > 1 for row in report.rows):
        written["seeds.csv"] = report_output.seed_rows(report)
    for name, content in written.items():
        if name.endswith(".md"):
            write_text_atomic(output_dir / name, content)
        elif name.endswith(".csv"):
            write_csv_atomic(output_dir / name, content)
        else:
            write_json_atomic(output_dir / name, content)
    report_output.bar_chart(report, output_dir / "table1.png")
    for name in set(REPORT_FILES) - set(written) - {"table1.png"}:
        (output_dir / name).unlink(missing_ok=True)
    return report


@dataclass
class ReportOptions:
    eval_dirs: list[str] = argument("Evaluation output directories (each with results.json)", nargs="+")
    output_dir: str = option(None, "Where table1.md, table1.csv, results.json and table1.png go", required=True)
    label: list[str] = option((), "Show run RUN as method NAME (repeatable); also fixes the row order. RUN is the name "
                              "of the evaluated run, the 'method' field of an evaluation directory's results.json (the "
                              "training run directory's name, e.g. zemi_base), not the evaluation directory's path; a "
                              "RUN that no directory holds is an error. Directories given the same NAME are one "
                              "method: its seeds, or parts of one evaluation", action="append", metavar="RUN=NAME")
    resamples: int = option(RESAMPLES, "bootstrap resamples for the intervals")
    bootstrap_seed: int = option(SEED, "seed of the bootstrap, so that a report is reproducible")


def main(argv: Sequence[str] | None = None) -> Path:
    setup_logging()
    # intermixed: training/common.sh passes DIR --label ... DIR --label ...
    options = parse_config(ReportOptions, argv, __doc__, intermixed=True)
    if options.resamples < 100:
        raise ConfigError(f"--resamples {options.resamples}: use at least 100 for a {LEVEL:.0%} interval")
    labels = parse_labels(options.label)
    write_report(options.eval_dirs, options.output_dir, labels, order=list(labels.values()) or None,
                 resamples=options.resamples, bootstrap_seed=options.bootstrap_seed)
    print((Path(options.output_dir) / "table1.md").read_text())
    return Path(options.output_dir)
