"""Reading the "30aug" layout: `<root>/<dataset_dir>/<dataset>_<template>/` DatasetDicts written with save_to_disk.

Template sampling reproduces the original's rule (`random.sample(sorted(entries), n)` after seeding with 42, over
every entry of a dataset dir); on a root whose listing differs from theirs it draws other templates, and a run's
recorded `dataset_mixture_config.json` (`templates_from`) replays their draw instead. Every split is checked when it
is opened (`validation.validate_split`): `documents_read` is how many documents per example the run reads.
"""

from __future__ import annotations

import json
import logging
import random
from dataclasses import dataclass, field
from pathlib import Path, PurePath
from typing import Iterable

from datasets import Dataset, DatasetDict, concatenate_datasets, load_from_disk

from zemi.data.validation import EVAL_FIELDS, TRAIN_FIELDS, DataError, check_schema, validate_split
from zemi.errors import ConfigError, MissingInputError

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
    """`sample_n` template dirs per dataset (all of them when sample_n is -1 or too large), drawn like the original.
    (The original overwrites sample_n with a dataset's entry count when it is -1 or too large, and keeps that
    count for the datasets after it; here each dataset is drawn on its own: docs/fidelity.md.)"""
    chosen: list[Path] = []
    for name in dataset_dir_names:
        entries = list_entries(Path(root) / name)
        n = len(entries) if sample_n < 0 or sample_n > len(entries) else sample_n
        chosen += rng.sample(entries, n)
    return chosen


def recorded_template_dirs(path: str | Path, root: str | Path, dataset_dir_names: Iterable[str]) -> list[Path]:
    """The template dirs that a run's `dataset_mixture_config.json` (ours or the authors') records as drawn, in its
    `sampled_list` order, found under `root` by their last two path parts (`<dataset_dir>/<template>`), so a list
    written on another machine names the same templates here. `_score_eval` entries may be missing (never read)."""
    path, wanted = Path(path), list(dataset_dir_names)
    where = f"--templates_from {path}"
    try:
        recorded = json.loads(path.read_text())
    except FileNotFoundError:
        raise MissingInputError(f"{where}: no such file (a run's dataset_mixture_config.json)") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ConfigError(f"{where}: not a JSON file ({err})") from None
    entries = recorded.get("sampled_list") if isinstance(recorded, dict) else None
    if not entries or not isinstance(entries, list) or not all(isinstance(entry, str) for entry in entries):
        raise ConfigError(f"{where}: expected its 'sampled_list' field to be a non-empty list of template dir paths")
    chosen = []
    for entry in entries:
        parts = PurePath(entry).parts
        if len(parts) < 2 or parts[-2] not in wanted:
            raise ConfigError(f"{where}: {entry!r} is not a template dir of one of --dataset_dir_names {wanted}")
        local = Path(root) / parts[-2] / parts[-1]
        if not local.exists() and SCORE_EVAL_MARK not in local.name:
            raise MissingInputError(f"{where}: {entry!r} has no counterpart {local} under --dataset_root_path")
        chosen.append(local)
    missing = [name for name in wanted if name not in {p.parent.name for p in chosen}]
    if missing:
        raise ConfigError(f"{where} records no template of --dataset_dir_names {missing}")
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
    documents_read: int | None = None, templates_from: str | Path | None = None,
) -> Mixture:
    """The templates drawn as the original draws them (or those `templates_from` records), their train splits
    (a `<template>_sampled` subset where there is one) and their validation (else test) splits."""
    rng = random.Random(seed)
    mixture = Mixture()
    if templates_from is None:
        mixture.sampled = sample_template_dirs(root, dataset_dir_names, sample_n, rng)
    else:
        mixture.sampled = recorded_template_dirs(templates_from, root, dataset_dir_names)
        logger.info("training on the %d template dirs recorded in %s (sample_n is not used)", len(mixture.sampled),
                    templates_from)
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
