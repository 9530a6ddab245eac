"""How sure a zero-shot accuracy is: the per-example prediction files that evaluation writes, read back, and a
vectorised bootstrap over examples (and over seeds) that gives intervals and paired tests (docs/statistics.md).

Examples are resampled per task, the same indices in every template and every method (so that methods are paired);
a method with several seeds also resamples its seeds, the same draw for every task. Every resample is seeded by the
report's seed and the task's or method's name, so a report is reproducible and one method's interval does not move
when another method is added.
"""

from __future__ import annotations

import json
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from zemi.errors import ConfigError, MissingInputError

LEVEL = 0.95
RESAMPLES = 2000
SEED = 0
_CHUNK = 256  # resamples drawn at once: a (256, examples) count matrix stays small for 10k examples
PREDICTION_FIELDS = ("task", "template", "template_path", "step", "index", "gold", "gold_in_choices", "predicted",
                     "scores")


@dataclass(frozen=True)
class Predictions:
    """One template's per-example file: which choice the model picked for each example of the validation split."""

    path: Path
    task: str
    template: str
    template_path: str
    step: int
    index: np.ndarray  # (N,) rows of the template's validation split, ascending
    gold: np.ndarray  # (N,)
    gold_in_choices: np.ndarray  # (N,) bool
    predicted: np.ndarray  # (N,)
    scores: list[list[float]]  # every choice's summed log-probability, per example

    @property
    def correct(self) -> np.ndarray:
        return self.predicted == self.gold


def read_predictions(eval_dir: Path, row: Mapping) -> Predictions | None:
    """The per-example file of one results.json row, checked against the row; None for a row without one (an older
    evaluation, or the authors')."""
    if not row.get("predictions"):
        return None
    path = Path(eval_dir) / row["predictions"]
    if not path.is_file():
        raise MissingInputError(f"{path} does not exist: {eval_dir}/results.json names it as the predictions of "
                                f"step {row['step']} {row['task']}/{row['template']}")
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ConfigError(f"{path} is not valid JSON ({err})") from None
    missing = [name for name in PREDICTION_FIELDS if name not in data]
    if missing:
        raise ConfigError(f"{path} lacks {missing}: not a per-example predictions file")
    arrays = {name: np.asarray(data[name]) for name in ("index", "gold", "gold_in_choices", "predicted")}
    lengths = {name: len(value) for name, value in arrays.items()} | {"scores": len(data["scores"])}
    if len(set(lengths.values())) != 1:
        raise ConfigError(f"{path}: its lists differ in length ({lengths})")
    index = arrays["index"].astype(np.int64)
    if len(index) and (index.min() < 0 or np.any(np.diff(index) <= 0)):
        raise ConfigError(f"{path}: 'index' must hold distinct validation rows in ascending order")
    for name in ("task", "template", "step"):
        if data[name] != row[name]:
            raise ConfigError(f"{path} holds {name} {data[name]!r} but {eval_dir}/results.json's row that names it "
                              f"says {row[name]!r}")
    predictions = Predictions(path, data["task"], data["template"], data["template_path"], int(data["step"]), index,
                              arrays["gold"].astype(np.int64), arrays["gold_in_choices"].astype(bool),
                              arrays["predicted"].astype(np.int64), data["scores"])
    accuracy = float(predictions.correct.mean()) if len(index) else float("nan")
    if len(index) != row["num_examples"] or not np.isclose(accuracy, row["accuracy"], rtol=0, atol=1e-9,
                                                            equal_nan=True):
        raise ConfigError(f"{path}: {len(index)} examples with accuracy {accuracy:.6f}, but results.json says "
                          f"{row['num_examples']} examples with accuracy {row['accuracy']:.6f}: the file does not "
                          "belong to this evaluation")
    return predictions


@dataclass(frozen=True)
class TaskOutcomes:
    """Which examples one model got right on one task: a row per template, a column per example (the union of the
    templates' example indices)."""

    templates: tuple[str, ...]
    index: np.ndarray  # (N,) example indices, ascending
    correct: np.ndarray  # (T, N) float32, 1 right; 0 wrong or not in that template
    present: np.ndarray  # (T, N) float32, 1 where the template has the example

    @classmethod
    def from_templates(cls, per_template: Mapping[str, tuple[np.ndarray, np.ndarray]]) -> "TaskOutcomes":
        """From {template: (example indices, correct)}."""
        templates = tuple(sorted(per_template))
        index = np.unique(np.concatenate([np.asarray(per_template[t][0], np.int64) for t in templates]))
        correct, present = (np.zeros((len(templates), len(index)), np.float32) for _ in range(2))
        for row, template in enumerate(templates):
            where, right = per_template[template]
            columns = np.searchsorted(index, where)
            present[row, columns] = 1.0
            correct[row, columns] = np.asarray(right, dtype=float)
        return cls(templates, index, correct, present)

    def accuracy(self) -> float:
        """The task's accuracy: the mean over its templates of each template's accuracy."""
        return float(np.mean(self.correct.sum(axis=1, dtype=np.float64) / self.present.sum(axis=1, dtype=np.float64)))

    def on(self, index: np.ndarray) -> "TaskOutcomes":
        """The same outcomes on a larger example index (every example of `self.index` must be in it)."""
        columns = np.searchsorted(index, self.index)
        if np.any(columns >= len(index)) or np.any(index[np.minimum(columns, len(index) - 1)] != self.index):
            raise ValueError("the new index must contain every example")
        correct, present = (np.zeros((len(self.templates), len(index)), np.float32) for _ in range(2))
        correct[:, columns], present[:, columns] = self.correct, self.present
        return TaskOutcomes(self.templates, index, correct, present)

    def resampled(self, counts: np.ndarray) -> np.ndarray:
        """(B,) task accuracies for (B, N) example counts; a template none of whose examples were drawn counts as
        its full-sample accuracy (it cannot happen with more than a handful of examples)."""
        right, drawn = (counts @ self.correct.T).astype(np.float64), (counts @ self.present.T).astype(np.float64)
        full = self.correct.sum(axis=1, dtype=np.float64) / self.present.sum(axis=1, dtype=np.float64)  # (T,)
        per_template = np.divide(right, drawn, out=np.broadcast_to(full, right.shape).copy(), where=drawn > 0)
        return per_template.mean(axis=1)


def example_counts(rng: np.random.Generator, size: int, resamples: int) -> np.ndarray:
    """(resamples, size) how often each example is drawn, `size` draws with replacement per resample."""
    draws = rng.integers(0, size, (resamples, size))
    draws += size * np.arange(resamples)[:, None]  # one bincount counts every resample
    # float32 holds counts and their sums over up to 2**24 examples exactly, and halves the matrix products' work
    return np.bincount(draws.ravel(), minlength=resamples * size).reshape(resamples, size).astype(np.float32)


def _rng(seed: int, name: str) -> np.random.Generator:
    return np.random.default_rng([seed, zlib.crc32(name.encode())])


def bootstrap(methods: Mapping[str, Mapping[str, Sequence[TaskOutcomes]]], *, resamples: int = RESAMPLES,
              seed: int = SEED) -> dict[str, dict[str, np.ndarray]]:
    """Bootstrap replicates of each method's accuracy per task: `methods[method][task]` lists the method's seeds'
    outcomes (the same seeds, in the same order, for every task); returns `[method][task]` -> (resamples,) seed-mean
    accuracies. Examples are drawn per task and shared by all methods; seeds are drawn per method and shared by all
    tasks."""
    seed_weights = {}
    for method, tasks in methods.items():
        counts = {len(seeds) for seeds in tasks.values()}
        if len(counts) > 1:
            raise ValueError(f"{method}: every task needs the same seeds")
        num_seeds = counts.pop() if counts else 1
        draws = _rng(seed, f"seeds/{method}").integers(0, num_seeds, (resamples, num_seeds))
        seed_weights[method] = np.stack([(draws == s).sum(axis=1) for s in range(num_seeds)], axis=1) / num_seeds
    replicates: dict[str, dict[str, np.ndarray]] = {method: {} for method in methods}
    for task in sorted({task for tasks in methods.values() for task in tasks}):
        users = {method: tasks[task] for method, tasks in methods.items() if task in tasks}
        index = np.unique(np.concatenate([o.index for seeds in users.values() for o in seeds]))
        aligned = {method: [o.on(index) for o in seeds] for method, seeds in users.items()}
        rng = _rng(seed, f"examples/{task}")
        chunks: dict[str, list[np.ndarray]] = {method: [] for method in users}
        for start in range(0, resamples, _CHUNK):
            counts = example_counts(rng, len(index), min(_CHUNK, resamples - start))
            for method, seeds in aligned.items():
                per_seed = np.stack([o.resampled(counts) for o in seeds], axis=1)  # (b, S)
                weights = seed_weights[method][start : start + len(counts)]
                chunks[method].append((per_seed * weights).sum(axis=1))
        for method, parts in chunks.items():
            replicates[method][task] = np.concatenate(parts)
    return replicates


def interval(replicates: np.ndarray, level: float = LEVEL) -> tuple[float, float]:
    """The percentile interval of bootstrap replicates."""
    tail = 100 * (1 - level) / 2
    low, high = np.percentile(replicates, [tail, 100 - tail])
    return float(low), float(high)


def paired_p_value(differences: np.ndarray) -> float:
    """Two-sided p-value of "no difference" from paired bootstrap replicates of a difference: twice the smaller
    share of replicates on either side of 0 (0 itself counts on both sides), with one added to each count so that it
    is never 0 (the usual Monte Carlo correction). The test rejects at level a exactly when the (1 - a) percentile
    interval excludes 0."""
    resamples = len(differences)
    below, above = int((differences <= 0).sum()), int((differences >= 0).sum())
    return min(1.0, 2 * (min(below, above) + 1) / (resamples + 1))
