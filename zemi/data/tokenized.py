"""Tokenised datasets cached on disk, and the epoch-seeded training order.

Tokenisation runs once per (data, tokenizer, text settings) and is reused by later runs and epochs. The training
order of an epoch depends only on (seed, epoch), which is what lets an interrupted run resume on the exact batch.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Callable, Iterator

import torch
from datasets import Dataset
from torch.utils.data import Sampler

from zemi.data import MEGABATCH_FACTOR


def tokenize(dataset: Dataset, featurize: Callable, cache_dir: Path, *, num_proc: int = 1) -> Dataset:
    """`dataset.map(featurize)` with its result cached in `cache_dir` under a key of the data and the settings."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    owner = featurize.__self__  # a bound Featurizer method
    key = hashlib.sha1(f"{dataset._fingerprint}|{featurize.__name__}|{owner.fingerprint()}".encode()).hexdigest()[:20]
    return dataset.map(
        featurize,
        batched=True,
        remove_columns=dataset.column_names,
        num_proc=num_proc if num_proc > 1 else None,
        cache_file_name=str(cache_dir / f"{key}.arrow"),
        load_from_cache_file=True,
        new_fingerprint=key,
        desc=f"tokenising ({featurize.__name__})",
    )


class EpochSampler(Sampler[int]):
    """A permutation of the dataset seeded by (seed, epoch); with `group_by_length`, windows of batches are sorted
    by length so a batch holds examples of similar length (less padding), the windows staying in random order."""

    def __init__(self, dataset: Dataset, *, seed: int, group_by_length: bool = False, batch_size: int = 1):
        self.size = len(dataset)
        self.seed = seed
        self.epoch = 0
        self.lengths = dataset["length"] if group_by_length else None
        self.window = batch_size * MEGABATCH_FACTOR

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.size

    def __iter__(self) -> Iterator[int]:
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        order = torch.randperm(self.size, generator=generator).tolist()
        if self.lengths is not None:
            windows = [order[i : i + self.window] for i in range(0, self.size, self.window)]
            order = [index for window in windows for index in sorted(window, key=lambda j: -self.lengths[j])]
        return iter(order)
