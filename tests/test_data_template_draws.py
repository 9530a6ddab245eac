"""Which templates training reads, on a root shaped like the authors' download (`<template>_sampled` train subsets
and `_score_eval` dirs beside the templates): the draws are those of their loop, written out here; `--templates_from`
replays a recorded draw (their `dataset_mixture_config.json` or ours) on a root whose listing differs."""

from __future__ import annotations

import json
import os
import random
from glob import glob
from pathlib import Path

import pytest
from datasets import Dataset, DatasetDict

from tests.helpers import logged
from zemi.data.mixture import load_training_mixture
from zemi.errors import ConfigError, MissingInputError
from zemi.run.config import parse_training

pytestmark = pytest.mark.unit

# dataset dir -> its entries, as `sorted(glob(dir/*))` lists them in the authors' layout
LAYOUT = {
    "ds_a": ["ds_a_t1", "ds_a_t2", "ds_a_t2_sampled", "ds_a_t3", "ds_a_t3_score_eval", "ds_a_t4"],
    "ds_b": ["ds_b_x", "ds_b_x_score_eval", "ds_b_y", "ds_b_z", "ds_b_z_sampled"],
}
TRAIN_ROWS, SAMPLED_ROWS = 6, 2


def split(rows: int, tag: str) -> Dataset:
    return Dataset.from_list([{"inputs_pretokenized": f"{tag} question {i}", "targets_pretokenized": "yes",
                               "answer_choices": ["yes", "no"],
                               "chosen_examples": [{"inputs_pretokenized": f"document {i}", "score": 1.0}]}
                              for i in range(rows)])


@pytest.fixture(scope="module")
def authors_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("authors_download") / "30aug"
    for dataset, entries in LAYOUT.items():
        for name in entries:
            if name.endswith("_sampled"):  # a plain Dataset: the train subset that replaces the template's train split
                split(SAMPLED_ROWS, name).save_to_disk(str(root / dataset / name))
            else:
                DatasetDict({"train": split(TRAIN_ROWS, name), "validation": split(3, name)}).save_to_disk(
                    str(root / dataset / name))
    return root


def authors_draws(root: Path, dataset_dir_names: list[str], sample_n: int, seed: int) -> list[str]:
    """The authors' loop (multi_task_fine_tune_xattn.py), written out: set_seed(seed) seeds Python's `random` (a
    `random.Random(seed)` draws the same stream), then per dataset dir `random.sample(sorted(glob(dir/*)), n)`, where
    a sample_n of -1 or above the entry count is overwritten with that count for this and every later dataset."""
    rng = random.Random(seed)
    drawn = []
    for name in dataset_dir_names:
        all_paths = sorted(glob(os.path.join(root, name, "*")))
        if sample_n < 0 or sample_n > len(all_paths):
            sample_n = len(all_paths)
        drawn += rng.sample(all_paths, sample_n)
    return drawn


def trained_by_them(drawn: list[str]) -> list[str]:
    """Their loop skips `_score_eval` draws; a drawn `_sampled` entry crashes it (ours skips that draw alone)."""
    return [path for path in drawn if "_score_eval" not in os.path.basename(path) and not path.endswith("_sampled")]


@pytest.mark.parametrize("seed", range(12))
def test_draws_on_their_layout_are_theirs(authors_root, seed):
    names = list(LAYOUT)
    with logged("zemi.data.mixture"):
        mixture = load_training_mixture(authors_root, names, 2, seed=seed)
    drawn = authors_draws(authors_root, names, 2, seed)
    assert [str(path) for path in mixture.sampled] == drawn
    assert [str(path) for path in mixture.template_dirs] == trained_by_them(drawn)
    for path, train in zip(mixture.template_dirs, mixture.train):
        has_subset = (path.parent / f"{path.name}_sampled").is_dir()
        assert len(train) == (SAMPLED_ROWS if has_subset else TRAIN_ROWS)


def test_the_seeds_above_draw_every_kind_of_entry(authors_root):
    """The check above has teeth: over its seeds the draws include `_score_eval` and `_sampled` entries, and
    templates with a `_sampled` train subset."""
    drawn = [os.path.basename(p) for seed in range(12) for p in authors_draws(authors_root, list(LAYOUT), 2, seed)]
    assert any(name.endswith("_score_eval") for name in drawn)
    assert any(name.endswith("_sampled") for name in drawn)
    assert {"ds_a_t2", "ds_b_z"} & set(drawn)


def test_sample_n_minus_one_takes_every_entry_of_every_dataset(authors_root):
    """Ours: -1 is "all" for each dataset. Theirs keeps the first dataset's count for the later ones: with ds_b (5
    entries) first, they draw 5 of ds_a's 6 (docs/fidelity.md)."""
    names = ["ds_b", "ds_a"]
    with logged("zemi.data.mixture"):
        mixture = load_training_mixture(authors_root, names, -1, seed=42)
    assert sorted(str(p) for p in mixture.sampled) == sorted(str(authors_root / n / e) for n in names for e in LAYOUT[n])
    theirs = authors_draws(authors_root, names, -1, 42)
    assert sum(Path(p).parent.name == "ds_a" for p in theirs) == 5


def recorded(tmp_path: Path, sampled_list) -> Path:
    path = tmp_path / "dataset_mixture_config.json"
    path.write_text(json.dumps({"sample_n": 2, "sampled_list": sampled_list, "dataset_dir_names": list(LAYOUT),
                                "dataset_root_path": "/cephfs/user/someone/data/30aug"}))
    return path


def test_templates_from_replays_a_draw_recorded_on_another_machine(authors_root, tmp_path):
    theirs = ["/cephfs/user/someone/data/30aug/ds_a/ds_a_t4", "/cephfs/user/someone/data/30aug/ds_a/ds_a_t2",
              "/cephfs/user/someone/data/30aug/ds_b/ds_b_q_score_eval", "/cephfs/user/someone/data/30aug/ds_b/ds_b_y"]
    mixture = load_training_mixture(authors_root, list(LAYOUT), 2, seed=42, templates_from=recorded(tmp_path, theirs))
    local = [authors_root / Path(p).parent.name / Path(p).name for p in theirs]
    assert mixture.sampled == local
    assert mixture.template_dirs == [local[0], local[1], local[3]]  # the `_score_eval` draw is skipped, as theirs
    assert [len(train) for train in mixture.train] == [TRAIN_ROWS, SAMPLED_ROWS, TRAIN_ROWS]
    assert mixture.sampled != load_training_mixture(authors_root, list(LAYOUT), 2, seed=42).sampled


def test_our_recorded_draw_replays_itself(authors_root, tmp_path):
    with logged("zemi.data.mixture"):
        drawn = load_training_mixture(authors_root, list(LAYOUT), 2, seed=3)
        replayed = load_training_mixture(authors_root, list(LAYOUT), 2, seed=42,
                                         templates_from=recorded(tmp_path, [str(p) for p in drawn.sampled]))
    assert replayed.sampled == drawn.sampled and replayed.template_dirs == drawn.template_dirs


@pytest.mark.parametrize("sampled_list, error, facts", [
    (None, ConfigError, ["sampled_list"]),
    (["/x/30aug/ds_c/ds_c_t1", "/x/30aug/ds_a/ds_a_t1", "/x/30aug/ds_b/ds_b_x"], ConfigError,
     ["ds_c_t1", "--dataset_dir_names"]),
    (["/x/30aug/ds_a/ds_a_t9", "/x/30aug/ds_b/ds_b_x"], MissingInputError, ["ds_a_t9", "--dataset_root_path"]),
    (["/x/30aug/ds_a/ds_a_t1"], ConfigError, ["ds_b"]),
])
def test_a_recorded_draw_that_does_not_fit_is_refused(authors_root, tmp_path, sampled_list, error, facts):
    path = recorded(tmp_path, sampled_list)
    with pytest.raises(error) as refused:
        load_training_mixture(authors_root, list(LAYOUT), 2, templates_from=path)
    for fact in [str(path), "--templates_from", *facts]:
        assert fact in str(refused.value)


def test_the_training_flag_names_a_missing_file(tmp_path):
    required = ["--output_dir", "o", "--lm_name", "t5", "--dataset_root_path", "d", "--dataset_dir_names", "ds_a"]
    missing = tmp_path / "nowhere.json"
    with pytest.raises(MissingInputError, match=str(missing)):
        parse_training(required + ["--templates_from", str(missing)])
    assert parse_training(required).templates_from is None
