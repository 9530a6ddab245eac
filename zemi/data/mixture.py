"""Reading the "30aug" layout: `<root>/<dataset_dir>/<dataset>_<template>/` DatasetDicts written with save_to_disk.

Template sampling reproduces the original exactly (`random.sample(sorted(entries), n)` after seeding with 42), so
the same template directories are trained on. Every split is checked when it is opened (`validation.validate_split`):
`documents_read` is how many documents per example the run reads, so only those are scanned.
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

from datasets import Dataset, DatasetDict, concatenate_datasets, load_from_disk

from zemi.data.validation import EVAL_FIELDS, TRAIN_FIELDS, DataError, check_schema, validate_split

__all__ = ["DataError", "check_schema", "load_training_mixture", "load_eval_templates", "scan_eval_templates"]

logger = logging.getLogger(__name__)

SCORE_EVAL_MARK = "_score_eval"
SAMPLED_SUFFIX = "_sampled"


def open_template_dir(path: str | Path) -> DatasetDict:
    path = Path(path)
    if not path.is_dir():
        raise DataError(f"{path}: not a directory (expected a DatasetDict written with save_to_disk)")
    try:
        loaded = load_from_disk(str(path))
    except (FileNotFoundError, ValueError) as err:
        raise DataError(f"{path}: cannot be read as a saved dataset ({err})") from err
    if not isinstance(loaded, DatasetDict):
        raise DataError(f"{path}: holds a single Dataset; expected a DatasetDict with train/validation splits")
    return loaded


def list_entries(dataset_dir: Path) -> list[Path]:
    """What the original's `sorted(glob(dataset_dir/*))` sees: every non-hidden entry, sorted by path."""
    if not dataset_dir.is_dir():
        raise DataError(f"dataset directory {dataset_dir} does not exist (expected <root>/<dataset_dir>/<template>/)")
    return sorted((p for p in dataset_dir.iterdir() if not p.name.startswith(".")), key=lambda p: str(p))


def sample_template_dirs(root: str | Path, dataset_dir_names: Iterable[str], sample_n: int, rng: random.Random) -> list[Path]:
    """`sample_n` template dirs per dataset (all of them when sample_n is -1 or too large), drawn like the original."""
    chosen: list[Path] = []
    for name in dataset_dir_names:
        entries = list_entries(Path(root) / name)
        n = len(entries) if sample_n < 0 or sample_n > len(entries) else sample_n
        chosen += rng.sample(entries, n)
    return chosen


@dataclass
class Mixture:
    """The training mixture: one Dataset per chosen template, for training and for the per-epoch validation loss."""

    train: list[Dataset] = field(default_factory=list)
    validation: list[Dataset] = field(default_factory=list)
    template_dirs: list[Path] = field(default_factory=list)  # the templates trained on
    sampled: list[Path] = field(default_factory=list)  # every draw, `_score_eval` ones included (as the original logs)

    def concatenated(self) -> tuple[Dataset, Dataset | None]:
        validation = concatenate_datasets(self.validation) if self.validation else None
        return concatenate_datasets(self.train), validation


def load_training_mixture(
    root: str | Path, dataset_dir_names: Iterable[str], sample_n: int, *, seed: int = 42, num_shots: int | None = None,
    documents_read: int | None = None,
) -> Mixture:
    rng = random.Random(seed)
    mixture = Mixture()
    mixture.sampled = sample_template_dirs(root, dataset_dir_names, sample_n, rng)
    for path in mixture.sampled:
        if SCORE_EVAL_MARK in path.name:
            continue
        if path.name.endswith(SAMPLED_SUFFIX):
            # The original would crash opening it as a DatasetDict; skipping keeps the other draws identical.
            logger.warning("sampled %s, which is a `_sampled` train split of another template; skipping it", path)
            continue
        splits = open_template_dir(path)
        sampled = path.with_name(path.name + SAMPLED_SUFFIX)
        if sampled.is_dir():
            train = load_from_disk(str(sampled))
            where = f"{sampled}"
            if not isinstance(train, Dataset):
                raise DataError(f"{sampled}: holds a {type(train).__name__}; expected the single train Dataset that "
                                f"replaces {path.name}'s train split")
        elif "train" in splits:
            train, where = splits["train"], f"{path} [train]"
        else:
            raise DataError(f"{path}: no 'train' split (splits: {sorted(splits)})")
        validate_split(train, TRAIN_FIELDS, where=where, documents_read=documents_read)
        if num_shots is not None:
            train = train.select(rng.sample(range(len(train)), k=min(num_shots, len(train))))
        mixture.train.append(train)
        mixture.template_dirs.append(path)
        held_out_split = "validation" if "validation" in splits else "test" if "test" in splits else None
        if held_out_split is not None:
            validate_split(splits[held_out_split], TRAIN_FIELDS, where=f"{path} [{held_out_split}]",
                           documents_read=documents_read)
            mixture.validation.append(splits[held_out_split])
    if not mixture.train:
        raise DataError(f"no training templates found under {root} for {list(dataset_dir_names)}")
    return mixture


@dataclass(frozen=True)
class EvalTemplate:
    """One evaluation template: its validation split, and the task (dataset dir) it belongs to."""

    path: Path
    task: str
    dataset: Dataset

    @property
    def name(self) -> str:
        return self.path.name


@dataclass(frozen=True)
class SkippedTemplate:
    """A template directory given for evaluation that has nothing to evaluate; recorded in the results."""

    path: Path
    reason: str


def scan_eval_templates(paths: Iterable[str | Path], *, documents_read: int | None = None,
                        ) -> tuple[list[EvalTemplate], list[SkippedTemplate]]:
    """The original's evaluation set: every given template dir except `_score_eval` ones, its `validation` split,
    which must have `answer_choices`. A template dir without them is skipped with a warning and returned as skipped
    (the original would stop there), so a task's mean over templates never silently covers fewer templates."""
    templates, skipped = [], []
    for raw in paths:
        path = Path(raw)
        if SCORE_EVAL_MARK in path.name or path.name.endswith(SAMPLED_SUFFIX):
            continue
        splits = open_template_dir(path)
        reason = None
        if "validation" not in splits:
            reason = f"no validation split (splits: {sorted(splits)})"
        elif "answer_choices" not in splits["validation"].features:
            reason = "[validation] has no answer_choices field"
        if reason is not None:
            logger.warning("%s: %s; skipping this template", path, reason)
            skipped.append(SkippedTemplate(path, reason))
            continue
        validation = splits["validation"]
        validate_split(validation, EVAL_FIELDS, where=f"{path} [validation]", documents_read=documents_read)
        templates.append(EvalTemplate(path=path, task=path.parent.name, dataset=validation))
    return templates, skipped


def load_eval_templates(paths: Iterable[str | Path], *, documents_read: int | None = None) -> list[EvalTemplate]:
    """`scan_eval_templates` without the list of skipped directories."""
    return scan_eval_templates(paths, documents_read=documents_read)[0]
