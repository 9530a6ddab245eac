"""How sure a zero-shot accuracy is: the per-example prediction files that evaluation writes, read back, and a
vectorised bootstrap over examples (and over seeds) that gives intervals and paired tests (docs/statistics.md).

A task's resample draws its raw examples (each file's `example` keys; template by template for files without them)
and every method that has the task is scored on that draw (paired); a method with several seeds also resamples its
seeds, the same draw for every task. Every draw is seeded by the report's seed and the task's or method's name, so a
report is reproducible, and adding a method evaluated on the same examples leaves the others' intervals as they
were.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from zemi.errors import ConfigError, MissingInputError
from zemi.io import read_json

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
    example: np.ndarray | None = None  # (N,) the raw example each row prompts (16 hex digits); None in older files

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
    data = read_json(path, ConfigError)
    missing = [name for name in PREDICTION_FIELDS if name not in data]
    if missing:
        raise ConfigError(f"{path} lacks {missing}: not a per-example predictions file")
    arrays = {name: np.asarray(data[name]) for name in ("index", "gold", "gold_in_choices", "predicted")}
    lengths = {name: len(value) for name, value in arrays.items()} | {"scores": len(data["scores"])}
    if len(set(lengths.values())) != 1:
        raise ConfigError(f"{path}: its lists differ in length ({lengths})")
    index = arrays["index"].astype(np.int64)
    example = data.get("example")
    if example is not None and (not isinstance(example, list) or len(example) != len(index)
                                or not all(isinstance(key, str) and len(key) == 16 for key in example)):
        raise ConfigError(f"{path}: 'example' must be a list of {len(index)} raw example keys (16 hex digits), "
                          "one per entry of 'index'")
    if len(index) and (index.min() < 0 or np.any(np.diff(index) <= 0)):
        raise ConfigError(f"{path}: 'index' must hold distinct validation rows in ascending order")
    for name in ("task", "template", "step"):
        if data[name] != row[name]:
            raise ConfigError(f"{path} holds {name} {data[name]!r} but {eval_dir}/results.json's row that names it "
                              f"says {row[name]!r}")
    predictions = Predictions(path, data["task"], data["template"], data["template_path"], int(data["step"]), index,
                              arrays["gold"].astype(np.int64), arrays["gold_in_choices"].astype(bool),
                              arrays["predicted"].astype(np.int64), data["scores"],
                              None if example is None else np.asarray(example, str))
    accuracy = float(predictions.correct.mean()) if len(index) else float("nan")
    if len(index) != row["num_examples"] or not np.isclose(accuracy, row["accuracy"], rtol=0, atol=1e-9,
                                                            equal_nan=True):
        raise ConfigError(f"{path}: {len(index)} examples with accuracy {accuracy:.6f}, but results.json says "
                          f"{row['num_examples']} examples with accuracy {row['accuracy']:.6f}: the file does not "
                          "belong to this evaluation")
    return predictions


@dataclass(frozen=True)
class TemplateOutcomes:
    """Which rows of one template a model got right, and the raw example each row prompts."""

    index: np.ndarray  # (n,) rows of the template's validation split
    correct: np.ndarray  # (n,) bool
    example: np.ndarray | None  # (n,) raw example keys; None: an older file without them

    def accuracy(self) -> float:
        return float(self.correct.mean())


@dataclass(frozen=True)
class TaskOutcomes:
    """One model's outcomes on one task's templates: the task's accuracy is the mean of its templates' accuracies."""

    templates: Mapping[str, TemplateOutcomes]

    @classmethod
    def from_templates(cls, per_template: Mapping[str, tuple]) -> "TaskOutcomes":
        """From {template: (rows, correct)} or {template: (rows, correct, raw example keys)}."""
        built = {}
        for name in sorted(per_template):
            index, correct, *example = per_template[name]
            keys = example[0] if example else None
            built[name] = TemplateOutcomes(np.asarray(index, np.int64), np.asarray(correct, bool),
                                           None if keys is None else np.asarray(keys, str))
        return cls(built)

    @property
    def keyed(self) -> bool:
        return all(item.example is not None for item in self.templates.values())

    def accuracy(self) -> float:
        return float(np.mean([item.accuracy() for item in self.templates.values()]))

    def examples(self, by_key: bool) -> dict[str, np.ndarray]:
        """Per template, its examples sorted: raw example keys (`by_key`) or validation rows."""
        return {name: np.sort(item.example if by_key else item.index) for name, item in self.templates.items()}


@dataclass(frozen=True)
class Layout:
    """What a task's resample draws: blocks of units, each block drawn on its own (as many draws as units). Keyed:
    one block, the raw examples of every template (a cluster bootstrap: all rows of a raw example, in every template,
    move together). Not keyed: a block per template, its validation rows (templates resampled independently)."""

    by_key: bool
    blocks: list[tuple[str | None, np.ndarray]]  # (the template a block belongs to, or None for all; its units)

    @classmethod
    def of(cls, outcomes: Sequence[TaskOutcomes]) -> "Layout":
        by_key = all(o.keyed for o in outcomes)
        if by_key:
            return cls(True, [(None, np.unique(np.concatenate([item.example for o in outcomes
                                                                 for item in o.templates.values()])))])
        names = sorted({name for o in outcomes for name in o.templates})
        return cls(False, [(name, np.unique(np.concatenate([o.templates[name].index for o in outcomes
                                                              if name in o.templates]))) for name in names])

    def matrices(self, outcomes: TaskOutcomes) -> list[tuple[np.ndarray, np.ndarray]]:
        """Per block, (T, units) float32 matrices: how many of a template's rows each unit has, and how many of
        them are right (a raw example a template prompts twice counts twice)."""
        names = sorted(outcomes.templates)
        found = []
        for template, units in self.blocks:
            right, rows = (np.zeros((len(names), len(units)), np.float32) for _ in range(2))
            for number, name in enumerate(names):
                if template is not None and name != template:
                    continue
                item = outcomes.templates[name]
                columns = np.searchsorted(units, item.example if self.by_key else item.index)
                np.add.at(rows[number], columns, 1.0)
                np.add.at(right[number], columns, item.correct.astype(np.float32))
            found.append((right, rows))
        return found


def resampled_accuracy(matrices: list[tuple[np.ndarray, np.ndarray]], counts: list[np.ndarray]) -> np.ndarray:
    """(B,) task accuracies for per-block (B, units) draw counts: per template, the mean over its rows weighted by
    how often each row's unit was drawn; a template none of whose units was drawn (possible only when it holds few of
    the task's raw examples) counts as its full-sample accuracy."""
    right = sum(block @ r.T for block, (r, _) in zip(counts, matrices)).astype(np.float64)  # (B, T)
    drawn = sum(block @ n.T for block, (_, n) in zip(counts, matrices)).astype(np.float64)
    full = sum(r.sum(axis=1, dtype=np.float64) for r, _ in matrices) / sum(n.sum(axis=1, dtype=np.float64)
                                                                          for _, n in matrices)  # (T,)
    per_template = np.divide(right, drawn, out=np.broadcast_to(full, right.shape).copy(), where=drawn > 0)
    return per_template.mean(axis=1)


def same_examples(outcomes: Sequence[TaskOutcomes]) -> bool:
    """Whether every outcome holds the same templates with the same examples (by raw example key when all have
    keys, else by validation row): the condition for a paired difference."""
    by_key = all(o.keyed for o in outcomes)
    first = outcomes[0].examples(by_key)
    return all(o.examples(by_key).keys() == first.keys() and all(np.array_equal(first[name], units)
                                                               for name, units in o.examples(by_key).items())
               for o in outcomes[1:])


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
    accuracies. A task's draw (`Layout`) is made over the examples of every method and seed that has the task and
    shared by them (paired); seeds are drawn per method and shared by all its tasks."""
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
        layout = Layout.of([o for seeds in users.values() for o in seeds])
        matrices = {method: [layout.matrices(o) for o in seeds] for method, seeds in users.items()}
        rng = _rng(seed, f"examples/{task}")
        chunks: dict[str, list[np.ndarray]] = {method: [] for method in users}
        for start in range(0, resamples, _CHUNK):
            size = min(_CHUNK, resamples - start)
            counts = [example_counts(rng, len(units), size) for _, units in layout.blocks]
            for method, seeds in matrices.items():
                per_seed = np.stack([resampled_accuracy(m, counts) for m in seeds], axis=1)  # (b, S)
                weights = seed_weights[method][start : start + size]
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
    is never 0 (the usual Monte Carlo correction). It agrees with the percentile interval up to one resample: with
    2000 resamples, p < 0.05 implies that the 95 % interval excludes 0, but an interval that excludes 0 may come with
    p up to 0.051 (tests/test_uncertainty.py)."""
    resamples = len(differences)
    below, above = int((differences <= 0).sum()), int((differences >= 0).sum())
    return min(1.0, 2 * (min(below, above) + 1) / (resamples + 1))
