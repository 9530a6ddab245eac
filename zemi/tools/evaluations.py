"""Evaluation directories as the report, `zemi-compare` and the retrieval browser read them: results.json (the run,
its seed and settings, a row per checkpoint and template), the best checkpoint by Table 1's rule, and per-example
predictions."""

from __future__ import annotations

import difflib
import statistics
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Mapping, Sequence

from zemi.errors import ConfigError, MissingInputError
from zemi.io import read_json
from zemi.tools.uncertainty import Predictions, TaskOutcomes, read_predictions

ROW_FIELDS = ("step", "task", "template", "accuracy", "num_examples")
NO_PREDICTIONS = "no per-example predictions (an older evaluation, or the authors' results.json)"
PER_DIRECTORY = ("seed", "processed_dataset_paths")  # settings keys that may differ between parts of one evaluation
PER_RUN = ("model", "tokenizer")  # and between seeds (their tokenizer may be read from the run directory)
# Between the methods of one report (docs/statistics.md, "Methods side by side"): what makes a method may differ; a
# difference in how examples are padded is marked in the table; any other setting (which examples, their lengths, the
# precision they are scored in, and any setting not named here) must be equal.
METHOD_SETTINGS = ("model", "architecture", "tokenizer", "tokenizer_fingerprint", "aug_max_length", "num_documents",
                   "documents_read", "fit_aug_num", "concat_aug_num", "concat_input_at_augmentation", "input_eos")
METHOD_SETTING_PREFIXES = ("fusion.",)
# Recorded only under --document_padding longest (evaluation's settings()), where a batch's padding depends on them.
PADDING_SETTINGS = ("pad_to_max_length", "document_padding", "per_device_eval_batch_size", "num_processes")


@dataclass(frozen=True)
class EvalDir:
    """One evaluation output directory's results.json."""

    path: Path
    run: str  # the evaluated run's name ("method" in results.json): what --label's RUN refers to
    architecture: str | None
    seed: int | None
    settings: dict | None  # None: written before evaluations recorded their settings
    rows: list[dict]

    @property
    def documents_read(self) -> int | None:
        return None if self.settings is None else self.settings.get("documents_read")

    def comparable_settings(self, *, same_seed: bool) -> dict | None:
        """What must be equal for two directories to be one method: the settings (the architecture alone for files
        that have only the top-level one). Which templates were evaluated is left to the rows (parts of one
        evaluation may cover different tasks); between seeds, so is the trained model itself, each seed being its
        own run."""
        if self.settings is None:
            return None if self.architecture is None else {"architecture": self.architecture}
        ignored = PER_DIRECTORY if same_seed else PER_DIRECTORY + PER_RUN
        return {name: value for name, value in self.settings.items() if name not in ignored}


def read_eval_dir(path: str | Path) -> EvalDir:
    path = Path(path)
    results_file = path / "results.json"
    if not results_file.is_file():
        raise MissingInputError(f"{results_file} does not exist: not an evaluation output directory")
    data = read_json(results_file, ConfigError)
    if not isinstance(data, dict) or not isinstance(data.get("results"), list) or "method" not in data:
        raise ConfigError(f"{results_file}: expected an object with 'method' and a 'results' list (written by "
                          "zemi-eval)")
    for number, row in enumerate(data["results"]):
        missing = [name for name in ROW_FIELDS if name not in row]
        if missing:
            raise ConfigError(f"{results_file}: results[{number}] lacks {missing}")
    settings = data.get("settings")
    architecture = data.get("architecture") or (settings or {}).get("architecture")
    return EvalDir(path, str(data["method"]), architecture, data.get("seed"), settings, data["results"])


def parse_labels(items: Sequence[str]) -> dict[str, str]:
    """--label RUN=NAME values as {RUN: NAME}."""
    labels: dict[str, str] = {}
    for item in items:
        run, separator, name = item.partition("=")
        if not separator or not run or not name:
            raise ConfigError(f"--label {item!r}: expected RUN=NAME")
        if labels.get(run, name) != name:
            raise ConfigError(f"--label gives run {run!r} two names: {labels[run]!r} and {name!r}")
        labels[run] = name
    return labels


def check_labels(labels: Mapping[str, str], eval_dirs: Sequence[EvalDir]) -> None:
    """Every label must name a run of the given directories: a label that matches nothing would silently leave the
    run under its own name."""
    runs = {item.run: item.path for item in eval_dirs}
    for run, name in labels.items():
        if run in runs:
            continue
        close = difflib.get_close_matches(run, list(runs), n=3, cutoff=0.5)
        close += [other for other in runs if (run in other or other in run) and other not in close]
        hint = f"; did you mean {' or '.join(map(repr, close))}?" if close else ""
        known = ", ".join(f"{other!r} ({path})" for other, path in sorted(runs.items()))
        raise ConfigError(f"--label {run}={name}: no evaluation directory holds a run named {run!r} (RUN is the run "
                          f"name in results.json's 'method', not a directory); the runs are {known}{hint}")


def template_means(rows: Iterable[Mapping]) -> dict[str, list[float]]:
    per_task: dict[str, list[float]] = defaultdict(list)
    for row in rows:
        per_task[row["task"]].append(row["accuracy"])
    return per_task


@dataclass(frozen=True)
class CheckpointChoice:
    step: int
    passed_over: list[str]  # checkpoints not evaluated on every template, and why


def best_checkpoint(rows: Sequence[Mapping], where: str) -> CheckpointChoice:
    """Table 1's rule: among the checkpoints evaluated on every template that any checkpoint was evaluated on, the
    one with the best mean over tasks of each task's mean over templates (ties: the earlier step)."""
    by_step: dict[int, list[Mapping]] = defaultdict(list)
    for row in rows:
        by_step[row["step"]].append(row)
    if not by_step:
        raise ConfigError(f"{where}: results.json has no result rows")
    keys = {step: {(row["task"], row["template"]) for row in step_rows} for step, step_rows in by_step.items()}
    wanted = set().union(*keys.values())
    complete = [step for step in sorted(by_step) if keys[step] == wanted]
    passed_over = [f"{where}: step_{step} was evaluated on {len(keys[step])} of the {len(wanted)} templates; not a "
                   "candidate for the best checkpoint" for step in sorted(by_step) if keys[step] != wanted]
    if not complete:
        raise ConfigError(f"{where}: no checkpoint was evaluated on all {len(wanted)} templates "
                          f"({ {f'step_{s}': len(k) for s, k in sorted(keys.items())} }): evaluate one completely")

    def average(step: int) -> float:
        return statistics.fmean(statistics.fmean(values) for values in template_means(by_step[step]).values())

    return CheckpointChoice(max(complete, key=lambda step: (average(step), -step)), passed_over)


def predictions_at(eval_dirs: Sequence[EvalDir], step: int) -> dict[tuple[str, str], Predictions] | None:
    """Every template's per-example predictions at `step`, by (task, template); None when a row has none."""
    found = {}
    for item in eval_dirs:
        for row in item.rows:
            if row["step"] != step:
                continue
            predictions = read_predictions(item.path, row)
            if predictions is None:
                return None
            found[(row["task"], row["template"])] = predictions
    return found


def task_outcomes(predictions: Mapping[tuple[str, str], Predictions]) -> dict[str, TaskOutcomes]:
    per_task: dict[str, dict] = defaultdict(dict)
    for (task, template), item in predictions.items():
        per_task[task][template] = (item.index, item.correct, item.example)
    return {task: TaskOutcomes.from_templates(templates) for task, templates in sorted(per_task.items())}
