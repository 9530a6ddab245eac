"""What an evaluation leaves in its --output_dir and when a rerun may reuse it: results.json (the run's settings, each
row's checkpoint and data fingerprints), one per-example predictions file per (step, template), and the authors'
`--error_analysis_dir` layout.

A rerun into a used directory resumes: rows computed under the same settings, from the same checkpoint and template
files, are kept; any difference is a `StaleResultsError`, so a number is never reported under settings it was not
computed with and nothing written before is overwritten. Rows of checkpoints or templates the rerun does not evaluate
are dropped with their predictions files: the directory ends as a fresh evaluation of the same sweep leaves it.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from datasets import Dataset

from zemi.data.processing import document_texts
from zemi.errors import ConfigError
from zemi.io import publish, read_json, temporary_sibling, write_csv_atomic, write_json_atomic, write_text_atomic

RESULTS_FILE = "results.json"
PREDICTIONS_DIR = "predictions"
AUTHORS_PREDICTIONS_FILE = "prediction_target_indices.json"  # the name their eval_original_task_only_xattn.py wrote
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".ckpt")


class StaleResultsError(ConfigError):
    """--output_dir holds results computed under other settings, or from a checkpoint or template since changed."""


# --- fingerprints ---------------------------------------------------------------------------------------------------


def _digest(parts: list[str]) -> str:
    return hashlib.sha1("\n".join(parts).encode()).hexdigest()[:16]


def _stat(path: Path, name: str) -> str:
    stat = path.stat()
    return f"{name}:{stat.st_size}:{stat.st_mtime_ns}"


def files_fingerprint(path: Path) -> str:
    """A checkpoint's identity: the size and modification time (ns) of its weight files and config.json (of the
    file itself for the authors' `torch.save` checkpoints). Statting is instant where hashing would read every
    checkpoint of a sweep again (gigabytes) on each rerun; training replaces a checkpoint by writing a new file and
    renaming it, which always gives it a new modification time, so a retrained step is never taken for the old."""
    if path.is_file():
        return _digest([_stat(path, path.name)])
    files = sorted(item for item in path.iterdir() if item.is_file() and (
        item.suffix in WEIGHT_SUFFIXES or item.name == "config.json" or item.name.endswith(".index.json")))
    return _digest([_stat(item, item.name) for item in files])


def data_fingerprint(dataset: Dataset) -> str:
    """A template's identity: its validation split's row count, the datasets fingerprint saved with it (state.json;
    a hash of the content it was built from and of the transforms that made it, on which the tokenised-data cache
    keys too) and the sizes of its Arrow files. A copy on another disk or machine has the same; rewriting the
    template with other content gives another (file times are left out: a copy has new ones)."""
    files = [Path(entry["filename"]) for entry in dataset.cache_files]
    return _digest([str(len(dataset)), dataset._fingerprint] + [f"{item.name}:{item.stat().st_size}" for item in files])


def tokenizer_fingerprint(tokenizer) -> str:
    """A loaded tokenizer's identity: its whole serialised state (vocabulary, added tokens, normaliser,
    post-processor) and its padding id, i.e. everything that decides the token ids and padding a score is computed
    from, wherever its files came from (a directory, --tokenizer_name, the hub cache)."""
    return _digest([tokenizer.backend_tokenizer.to_str(), f"pad:{tokenizer.pad_token_id}"])


# --- reusing an earlier run's rows ----------------------------------------------------------------------------------


@dataclass
class Sweep:
    """What this run evaluates, keyed as its rows are: the fingerprint of each checkpoint step and template path."""

    checkpoints: dict[int, str]  # step -> fingerprint
    checkpoint_paths: dict[int, str]  # step -> what to name in a message
    templates: dict[str, str]  # absolute template path -> fingerprint


def template_key(path: str | Path) -> str:
    """The template path as given, made absolute (not following links): rows are matched on it across reruns."""
    return os.path.abspath(path)


def reusable_rows(output_dir: Path, settings: dict[str, Any], sweep: Sweep) -> tuple[list[dict], list[str]]:
    """The rows of an earlier evaluation into `output_dir` (none when it has no results.json), checked to have been
    computed under `settings` and, for every step and template of this sweep, from the same files; and the
    predictions files of the rows left out. Rows of steps or templates this run does not evaluate are left out, as
    a fresh run of this sweep has none (their checkpoints are not checked, so they may no longer hold for them). A
    row of this sweep whose predictions file is missing is left out, so that it is computed again."""
    results_file = output_dir / RESULTS_FILE
    if not results_file.is_file():
        return [], []
    fix = f"pass another --output_dir, or delete {output_dir} to evaluate from scratch"
    previous = read_json(results_file, lambda message: StaleResultsError(f"{message}; {fix}"))
    if not isinstance(previous, dict) or "settings" not in previous:
        raise StaleResultsError(f"{results_file} records no settings (written by an older zemi), so its rows cannot "
                                f"be checked against this run's; {fix}")
    old = previous["settings"]
    differing = [_difference(name, old, settings)
                 for name in sorted(set(old) | set(settings)) if old.get(name) != settings.get(name)]
    if differing:
        raise StaleResultsError(f"{results_file} holds results computed with other settings ({'; '.join(differing)}); "
                                f"they cannot be mixed with this run's: {fix}")
    kept, dropped, changed = [], [], []
    for row in previous.get("results", []):
        step, template = row.get("step"), template_key(row.get("template_path", ""))
        if step not in sweep.checkpoints or template not in sweep.templates:
            dropped.append(row.get("predictions", ""))
            continue
        if row.get("checkpoint_fingerprint") != sweep.checkpoints[step]:
            changed.append(f"checkpoint {sweep.checkpoint_paths[step]} (step {step})")
        if row.get("data_fingerprint") != sweep.templates[template]:
            changed.append(f"template {row['template_path']} [validation]")
        if (output_dir / row.get("predictions", "")).is_file():
            kept.append(row)
    if changed:
        names = "; ".join(dict.fromkeys(changed))
        raise StaleResultsError(f"{results_file} holds rows computed from files that have changed since: {names}; "
                                f"{fix}")
    return kept, [path for path in dropped if path]


def remove_unreferenced(output_dir: Path, paths: list[str], rows: list[dict]) -> None:
    """Deletes the predictions files of dropped rows that no row of `rows` names (called once results.json no
    longer names them either), and the step directories this leaves empty."""
    referenced = {row["predictions"] for row in rows}
    for relative in paths:
        if relative in referenced:
            continue
        path = output_dir / relative
        path.unlink(missing_ok=True)
        if path.parent.is_dir() and not any(path.parent.iterdir()):
            path.parent.rmdir()


def _difference(name: str, old: dict[str, Any], new: dict[str, Any]) -> str:
    then, now = old.get(name), new.get(name)
    if name not in old:  # a setting recorded since, or one recorded only under some settings
        return f"{name}: not recorded there, {now!r} now"
    if name not in new:
        return f"{name}: {then!r} there, not recorded now"
    if isinstance(then, list) and isinstance(now, list):
        gone, new = [v for v in then if v not in now], [v for v in now if v not in then]
        return f"{name}: {len(gone)} no longer given {gone[:3]}, {len(new)} new {new[:3]}"
    return f"{name}: {then!r} there, {now!r} now"


def write_results(output_dir: Path, summary: dict[str, Any], rows: list[dict]) -> None:
    output_dir.mkdir(parents=True, exist_ok=True)
    write_json_atomic(output_dir / RESULTS_FILE, {**summary, "results": rows})
    write_csv_atomic(output_dir / "results.csv", rows)


# --- per-example predictions ----------------------------------------------------------------------------------------


@dataclass
class TemplatePredictions:
    """Every example of one template at one checkpoint, by its row of the validation split (ascending)."""

    index: list[int]
    gold: list[int]  # the gold choice; 0 when the gold target is not among the choices (as the original scores it)
    gold_in_choices: list[bool]
    predicted: list[int]
    scores: list[list[float]]  # summed log-probability of every choice, in choice order
    example: list[str] | None = None  # each row's raw-example key (`example_key`); None without retrieved documents

    def accuracy(self) -> float:
        hits = sum(p == g for p, g in zip(self.predicted, self.gold))
        return hits / len(self.gold) if self.gold else float("nan")


def predictions_path(step: int, task: str, template: str) -> str:
    """Where a (step, template)'s predictions go, relative to --output_dir (as each row records it)."""
    return f"{PREDICTIONS_DIR}/step_{step}/{task}__{template}.json"


def write_predictions(output_dir: Path, relative: str, *, task: str, template: str, template_path: str, step: int,
                      predictions: TemplatePredictions) -> None:
    path = output_dir / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    document = {"task": task, "template": template, "template_path": template_key(template_path), "step": step,
                "index": predictions.index, "gold": predictions.gold, "gold_in_choices": predictions.gold_in_choices,
                "predicted": predictions.predicted,
                # 9 significant digits give back every float32 score exactly
                "scores": [[float(f"{s:.9g}") for s in row] for row in predictions.scores]}
    if predictions.example is not None:
        document["example"] = predictions.example
    write_text_atomic(path, json.dumps(document, separators=(",", ":")) + "\n")


def read_predictions(output_dir: Path, relative: str) -> TemplatePredictions:
    document = json.loads((output_dir / relative).read_text())
    return TemplatePredictions(document["index"], document["gold"], document["gold_in_choices"],
                               document["predicted"], document["scores"], document.get("example"))


def example_key(documents: list[str]) -> str:
    """A raw example's key: retrieval is per raw example and shared by all its templates, so its retrieved
    documents (their texts, in stored order) pair its rows across templates whose rows differ (COPA's templates
    drop examples). Examples with the same documents (none, or duplicates) share a key."""
    return hashlib.sha1(json.dumps(documents, ensure_ascii=False).encode()).hexdigest()[:16]


def example_keys(dataset: Dataset, *, rows: int | None = None, batch_size: int = 1000) -> list[str] | None:
    """`example_key` of the first `rows` rows (all by default), or None for a split without `chosen_examples`.
    Read in batches: a split's documents can take gigabytes (30 per example of up to 256 words)."""
    if "chosen_examples" not in dataset.column_names:
        return None
    documents = dataset.select_columns(["chosen_examples"])
    if rows is not None:
        documents = documents.select(range(min(rows, len(documents))))
    return [example_key(document_texts(row)) for batch in documents.iter(batch_size=batch_size)
            for row in batch["chosen_examples"]]


# --- the authors' --error_analysis_dir ------------------------------------------------------------------------------


def write_error_analysis(directory: Path, output_dir: Path, checkpoint_name: str, task: str, template: str,
                         validation: Dataset, predictions: TemplatePredictions) -> Path:
    """What their eval_original_task_only_xattn.py wrote for `--error_analysis_dir DIR`:
    `DIR/<--output_dir's name>/<checkpoint name>/<task>__<template>/prediction_target_indices.json` with the
    predicted choice, the gold choice and the validation row of each example (in row order, as their single-process
    run wrote them), plus the `dataset` their error_analysis.py loads there (their save_to_disk is commented out):
    a link to the template's saved validation split, whose rows the indices name."""
    target = directory / Path(os.path.abspath(output_dir)).name / checkpoint_name / f"{task}__{template}"
    target.mkdir(parents=True, exist_ok=True)
    write_json_atomic(target / AUTHORS_PREDICTIONS_FILE, {"predictions": predictions.predicted,
                                                          "targets": predictions.gold, "indices": predictions.index})
    _place_dataset(validation, target / "dataset")
    return target


def _place_dataset(validation: Dataset, destination: Path) -> None:
    """A link to the split's save_to_disk directory (no copy of a large split per checkpoint), or a saved copy when
    the split has no directory of its own."""
    folders = {Path(entry["filename"]).parent for entry in validation.cache_files}
    temporary = temporary_sibling(destination)
    if len(folders) == 1 and (source := folders.pop()).joinpath("state.json").is_file():
        if destination.is_dir() and not destination.is_symlink():
            return  # a copy saved by an earlier run
        temporary.unlink(missing_ok=True)
        temporary.symlink_to(source, target_is_directory=True)
        os.replace(temporary, destination)
        return
    if destination.is_symlink():
        destination.unlink()
    validation.save_to_disk(str(temporary))
    publish(temporary, destination)
