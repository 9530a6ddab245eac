"""The paper's shuffled-document ablations (the authors' data/get_shuffled_augmentation_dataset.py): a copy of a 30aug
root in the same layout in which every example reads the retrieved documents of another example.

    zemi-shuffle --input_root <30aug> --output_root <30aug_shuffled> --mode within_task --seed 42

within_task: each row of a template's split takes the `chosen_examples` of a uniformly drawn other row (another
index, never its own) of the same split, with replacement, drawn anew for every template. cross_task: each row takes
those of a uniformly drawn row of a uniformly drawn other task (dataset dir) of the root, read from that task's first
template dir, from the split of the same name (else validation for test, else train). Every other field is kept.
Draws come from one `random.Random(seed)` in the authors' order (tasks, templates, splits train/validation/test,
rows; a split of another name is copied unchanged, as their loop skips it), over sorted directory names; the authors
seed 42. A `<template>_sampled` dir (a plain train Dataset) is copied unchanged, as theirs leaves it (their loop
finds no split names in a plain Dataset); `--shuffle_sampled` shuffles it too.
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from datasets import Dataset, DatasetDict, concatenate_datasets, load_from_disk

from zemi.cli import option, parse_config, setup_logging
from zemi.data.mixture import list_entries, open_template_dir
from zemi.data.validation import DataError
from zemi.io import publish, temporary_sibling

logger = logging.getLogger(__name__)

MODES = ("within_task", "cross_task")
SPLITS = ("train", "validation", "test")
DOCUMENTS = "chosen_examples"


def other_rows(num_rows: int, rng: random.Random, *, where: str) -> list[int]:
    """For each row i, a uniformly drawn index j != i (the authors' `random.choice` over the indices without i)."""
    if num_rows < 2:
        raise DataError(f"{where}: {num_rows} row(s); shuffling needs at least 2 so that a row reads another's documents")
    picks = []
    for i in range(num_rows):
        k = rng.choice(range(num_rows - 1))
        picks.append(k + (k >= i))
    return picks


def with_documents_of(split: Dataset, sources: list[tuple[Dataset, int]]) -> Dataset:
    """`split` whose row i holds the documents of row `sources[i][1]` of dataset `sources[i][0]`."""
    feature = split.features[DOCUMENTS]
    by_source: dict[int, tuple[Dataset, list[int], list[int]]] = {}
    for position, (source, row) in enumerate(sources):
        entry = by_source.setdefault(id(source), (source, [], []))
        entry[1].append(row)
        entry[2].append(position)
    parts, positions = [], []
    for source, rows, at in by_source.values():
        parts.append(source.select(rows).select_columns([DOCUMENTS]).cast_column(DOCUMENTS, feature))
        positions += at
    gathered = concatenate_datasets(parts) if len(parts) > 1 else parts[0]
    order = sorted(range(len(positions)), key=positions.__getitem__)
    documents = gathered.select(order).flatten_indices()
    kept = split.remove_columns([DOCUMENTS])
    return concatenate_datasets([kept, documents], axis=1).select_columns(split.column_names)


def _load(path: Path) -> Dataset | DatasetDict:
    try:
        return load_from_disk(str(path))
    except (FileNotFoundError, ValueError) as err:
        raise DataError(f"{path}: cannot be read as a saved dataset ({err})") from err


def _splits(loaded: Dataset | DatasetDict) -> dict[str, Dataset]:
    return dict(loaded) if isinstance(loaded, DatasetDict) else {"train": loaded}


def source_split(splits: DatasetDict, name: str, *, where: Path) -> Dataset:
    """The split of another task that a row of split `name` reads from (the authors' fallbacks, then any)."""
    for candidate in (name, "validation" if name == "test" else "train", "validation", "train"):
        if candidate in splits and len(splits[candidate]):
            return splits[candidate]
    raise DataError(f"{where}: no non-empty split to draw documents from (splits: {sorted(splits)})")


def first_template(task: Path) -> tuple[Path, DatasetDict]:
    for entry in list_entries(task):
        if entry.is_dir() and isinstance(_load(entry), DatasetDict):
            return entry, open_template_dir(entry)
    raise DataError(f"{task}: no template directory (a DatasetDict written with save_to_disk)")


def shuffle_root(input_root: str | Path, output_root: str | Path, *, mode: str, seed: int = 42,
                 shuffle_sampled: bool = False) -> Path:
    input_root, output_root = Path(input_root), Path(output_root)
    if mode not in MODES:
        raise DataError(f"--mode must be one of {MODES}, got {mode!r}")
    tasks = [entry for entry in list_entries(input_root) if entry.is_dir()]
    if not tasks:
        raise DataError(f"--input_root {input_root}: no dataset dirs (expected <root>/<dataset_dir>/<template>/)")
    if output_root.resolve() == input_root.resolve() or input_root.resolve() in output_root.resolve().parents:
        raise DataError(f"--output_root {output_root} must lie outside --input_root {input_root}")
    if output_root.exists() and any(output_root.iterdir()):
        raise DataError(f"--output_root {output_root} exists and is not empty; pass a new directory")
    if mode == "cross_task" and len(tasks) < 2:
        raise DataError(f"--mode cross_task needs at least 2 dataset dirs under {input_root}, found {len(tasks)}")
    rng = random.Random(seed)
    sources = {task.name: first_template(task) for task in tasks} if mode == "cross_task" else {}
    for task in tasks:
        others = [t.name for t in tasks if t != task]
        for template in list_entries(task):
            loaded = _load(template)
            target = output_root / task.name / template.name
            if isinstance(loaded, Dataset) and not shuffle_sampled:
                logger.warning("%s is a plain Dataset (a `_sampled` train split): copied unchanged, as the authors' "
                               "script leaves it (--shuffle_sampled shuffles it too)", template)
                _save(loaded, target)
                continue
            splits = _splits(loaded)
            shuffled = dict(splits)  # a split the authors' loop does not name stays as it is
            for name in (name for name in SPLITS if name in splits):  # their order fixes which draw goes where
                split = splits[name]
                where = f"{template} [{name}]"
                if mode == "within_task":
                    picked = [(split, j) for j in other_rows(len(split), rng, where=where)]
                else:
                    picked = []
                    for _ in range(len(split)):
                        other_path, other_splits = sources[rng.choice(others)]
                        source = source_split(other_splits, name, where=other_path)
                        picked.append((source, rng.choice(range(len(source)))))
                shuffled[name] = with_documents_of(split, picked) if len(split) else split
            _save(DatasetDict(shuffled) if isinstance(loaded, DatasetDict) else shuffled["train"], target)
            logger.info("%s -> %s (%s)", template, target, mode)
    return output_root


def _save(dataset: Dataset | DatasetDict, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_sibling(target)
    dataset.save_to_disk(str(tmp))
    publish(tmp, target)


@dataclass
class ShuffleOptions:
    input_root: str = option(None, "The 30aug root: <root>/<dataset_dir>/<template>/", required=True)
    output_root: str = option(None, "Where the shuffled copy goes (new or empty)", required=True)
    mode: str = option(None, "Documents of another example of the same template (within_task) or of an example of "
                       "another task (cross_task)", required=True, choices=MODES)
    seed: int = option(42, "Seed of the draws (the authors': 42)")
    shuffle_sampled: bool = option(False, "Also shuffle `<template>_sampled` train splits (the authors' script copies "
                                   "them)")


def main(argv: Sequence[str] | None = None) -> Path:
    setup_logging()
    options = parse_config(ShuffleOptions, argv, __doc__)
    return shuffle_root(options.input_root, options.output_root, mode=options.mode, seed=options.seed,
                        shuffle_sampled=options.shuffle_sampled)
