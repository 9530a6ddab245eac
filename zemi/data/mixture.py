"""Reading the "30aug" layout: `<root>/<dataset_dir>/<dataset>_<template>/` DatasetDicts written with save_to_disk.

Template sampling reproduces the original exactly (`random.sample(sorted(entries), n)` after seeding with 42), so
the same template directories are trained on. Every split is schema-checked when it is opened.
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

import datasets
from datasets import Dataset, DatasetDict, concatenate_datasets, load_from_disk

logger = logging.getLogger(__name__)

TRAINING_MIXTURE = ("cos_e_v1.11", "cosmos_qa", "dream", "qasc", "quartz", "sciq", "social_i_qa", "wiqa")
HELD_OUT_TASKS = (
    "openbookqa_main", "piqa", "super_glue_wic", "super_glue_cb", "super_glue_copa", "rotten_tomatoes", "hellaswag",
)
SCORE_EVAL_MARK = "_score_eval"
SAMPLED_SUFFIX = "_sampled"


class DataError(ValueError):
    """A dataset on disk that does not have the 30aug layout or schema; the message names path, split and field."""


def _is_string(feature) -> bool:
    return isinstance(feature, datasets.Value) and feature.dtype in ("string", "large_string")


def _is_number(feature) -> bool:
    return isinstance(feature, datasets.Value) and feature.dtype.startswith(("float", "int"))


def _list_item(feature):
    return feature.feature if isinstance(feature, datasets.List) else None


def _is_string_list(feature) -> bool:
    return _is_string(_list_item(feature))


def _is_document_list(feature) -> bool:
    # Written by datasets >= 4 as List({...}); older files declare Sequence({...}), which datasets decodes as a
    # dict of lists. Both store the same arrow list<struct>; `processing.document_texts` reads both.
    item = _list_item(feature)
    if isinstance(item, datasets.Value) and item.dtype == "null":
        return True  # every row has an empty list: nothing retrieved in this split
    if isinstance(item, dict):
        text, score = item.get("inputs_pretokenized"), item.get("score")
    elif isinstance(feature, dict):
        text, score = (_list_item(feature.get(k)) for k in ("inputs_pretokenized", "score"))
    else:
        return False
    return _is_string(text) and _is_number(score)


@dataclass(frozen=True)
class FieldRule:
    name: str
    expected: str  # said in error messages
    check: Callable[[object], bool]


TRAIN_FIELDS = (
    FieldRule("inputs_pretokenized", "string", _is_string),
    FieldRule("targets_pretokenized", "string", _is_string),
    FieldRule("chosen_examples", "list of {inputs_pretokenized: string, score: number}", _is_document_list),
)
EVAL_FIELDS = TRAIN_FIELDS + (FieldRule("answer_choices", "list of strings", _is_string_list),)


def check_schema(dataset: Dataset, rules: Iterable[FieldRule], *, where: str) -> None:
    """Fail with the path, split and field when a field is missing or has the wrong type."""
    for rule in rules:
        if rule.name not in dataset.features:
            raise DataError(f"{where}: missing field {rule.name!r} (expected {rule.expected}); "
                            f"fields present: {sorted(dataset.features)}")
        if not rule.check(dataset.features[rule.name]):
            raise DataError(f"{where}: field {rule.name!r} has type {dataset.features[rule.name]}, "
                            f"expected {rule.expected}")


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
    root: str | Path, dataset_dir_names: Iterable[str], sample_n: int, *, seed: int = 42, num_shots: int | None = None
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
        elif "train" in splits:
            train, where = splits["train"], f"{path} [train]"
        else:
            raise DataError(f"{path}: no 'train' split (splits: {sorted(splits)})")
        check_schema(train, TRAIN_FIELDS, where=where)
        if num_shots is not None:
            train = train.select(rng.sample(range(len(train)), k=min(num_shots, len(train))))
        mixture.train.append(train)
        mixture.template_dirs.append(path)
        held_out_split = "validation" if "validation" in splits else "test" if "test" in splits else None
        if held_out_split is not None:
            check_schema(splits[held_out_split], TRAIN_FIELDS, where=f"{path} [{held_out_split}]")
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


def load_eval_templates(paths: Iterable[str | Path]) -> list[EvalTemplate]:
    """The original's evaluation set: every given template dir except `_score_eval` ones, its `validation`
    split, which must have `answer_choices`. A template dir without them is reported and skipped, as before."""
    templates = []
    for raw in paths:
        path = Path(raw)
        if SCORE_EVAL_MARK in path.name or path.name.endswith(SAMPLED_SUFFIX):
            continue
        splits = open_template_dir(path)
        if "validation" not in splits:
            logger.warning("%s: no validation split (splits: %s); skipping this template", path, sorted(splits))
            continue
        validation = splits["validation"]
        if "answer_choices" not in validation.features:
            logger.warning("%s [validation]: no answer_choices field; skipping this template", path)
            continue
        check_schema(validation, EVAL_FIELDS, where=f"{path} [validation]")
        templates.append(EvalTemplate(path=path, task=path.parent.name, dataset=validation))
    return templates
