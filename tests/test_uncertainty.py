"""The bootstrap behind the report's intervals and paired tests: degenerate and covering intervals, templates and
seeds resampled as documented, the p-value's two ends, its speed, and reading the per-example files."""

from __future__ import annotations

import itertools
import json
import time

import numpy as np
import pytest

from tests.evaluation_files import Template, write_eval_dir
from zemi.errors import ConfigError, MissingInputError
from zemi.tools.evaluations import predictions_at, read_eval_dir, task_outcomes
from zemi.tools.uncertainty import TaskOutcomes, bootstrap, interval, paired_p_value, read_predictions

pytestmark = pytest.mark.unit


def keys(rows) -> list[str]:
    return [f"{row:016x}" for row in rows]


def outcomes(*templates: np.ndarray, keyed: bool = True) -> TaskOutcomes:
    """Templates whose row i prompts raw example i (keyed), or files without keys."""
    return TaskOutcomes.from_templates({f"t{i}": (np.arange(len(c)), c, keys(range(len(c))) if keyed else None)
                                        for i, c in enumerate(templates)})


def one_interval(task: TaskOutcomes, resamples: int = 1000, seed: int = 0) -> tuple[float, float]:
    return interval(bootstrap({"m": {"task": [task]}}, resamples=resamples, seed=seed)["m"]["task"])


def test_a_predictor_that_is_always_right_or_always_wrong_has_a_point_interval():
    assert one_interval(outcomes(np.ones(50, bool))) == (1.0, 1.0)
    assert one_interval(outcomes(np.zeros(50, bool))) == (0.0, 0.0)
    # One template always right, the other always wrong: every resample's task mean is 0.5.
    assert one_interval(outcomes(np.ones(50, bool), np.zeros(50, bool))) == (0.5, 0.5)


def test_the_interval_covers_the_true_accuracy_about_95_percent_of_the_time():
    true_accuracy, examples, repetitions = 0.7, 200, 400
    rng = np.random.default_rng(12345)
    covered = 0
    for repetition in range(repetitions):
        low, high = one_interval(outcomes(rng.random(examples) < true_accuracy), seed=repetition)
        covered += low <= true_accuracy <= high
    # Seeded, so the same count every run; the band is +-3 standard errors of a 95 % coverage over 400 repetitions.
    assert 0.917 <= covered / repetitions <= 0.983, covered


def test_templates_of_a_task_are_resampled_on_the_same_raw_examples_or_apart_without_keys():
    rng = np.random.default_rng(0)
    right = rng.random(300) < 0.6
    single = one_interval(outcomes(right))
    # Two templates answering alike: drawn together, the task's spread is the single template's.
    assert one_interval(outcomes(right, right.copy())) == pytest.approx(single)
    # Without keys each template is drawn apart: the mean of two independent draws is narrower by about 1/sqrt(2).
    apart = one_interval(outcomes(right, right.copy(), keyed=False))
    assert np.ptp(apart) == pytest.approx(np.ptp(single) / np.sqrt(2), rel=0.15)
    # Templates over different raw examples each keep their own accuracy in every resample.
    task = TaskOutcomes.from_templates({"a": (np.arange(0, 100), np.ones(100, bool), keys(range(0, 100))),
                                        "b": (np.arange(0, 100), np.zeros(100, bool), keys(range(50, 150)))})
    assert task.accuracy() == 0.5 and one_interval(task) == (0.5, 0.5)


def test_seeds_add_their_spread_and_identical_seeds_add_none():
    rng = np.random.default_rng(1)
    base = outcomes(rng.random(400) < 0.6)
    alone = bootstrap({"m": {"task": [base]}}, resamples=1000)["m"]["task"]
    three = bootstrap({"m": {"task": [base, base, base]}}, resamples=1000)["m"]["task"]
    assert np.allclose(alone, three, rtol=0, atol=1e-12)
    others = [outcomes(rng.random(400) < p) for p in (0.45, 0.6, 0.75)]
    spread = bootstrap({"m": {"task": others}}, resamples=1000)["m"]["task"]
    assert np.ptp(interval(spread)) > 1.5 * np.ptp(interval(alone))
    assert np.mean(spread) == pytest.approx(np.mean([o.accuracy() for o in others]), abs=0.01)


def test_paired_p_is_one_for_identical_predictions_and_small_for_a_clear_improvement():
    rng = np.random.default_rng(2)
    a = rng.random(500) < 0.6
    same = bootstrap({"a": {"task": [outcomes(a)]}, "b": {"task": [outcomes(a.copy())]}})
    assert paired_p_value(same["a"]["task"] - same["b"]["task"]) == 1.0
    errors = np.flatnonzero(~a)
    better = a.copy()
    better[errors[: int(0.6 * len(errors))]] = True  # right on 60 % of a's errors, the same elsewhere
    pair = bootstrap({"a": {"task": [outcomes(a)]}, "b": {"task": [outcomes(better)]}})
    difference = pair["b"]["task"] - pair["a"]["task"]
    assert paired_p_value(difference) < 0.005 and interval(difference)[0] > 0
    # As many fixed as broken: no evidence either way.
    mixed = a.copy()
    mixed[errors[:30]] = True
    mixed[np.flatnonzero(a)[:30]] = False
    pair = bootstrap({"a": {"task": [outcomes(a)]}, "b": {"task": [outcomes(mixed)]}})
    assert paired_p_value(pair["b"]["task"] - pair["a"]["task"]) > 0.5


def test_thousands_of_resamples_of_ten_thousand_examples_take_well_under_a_second():
    task = outcomes(np.random.default_rng(3).random(10_000) < 0.7)
    bootstrap({"m": {"task": [task]}}, resamples=200)  # warm-up
    elapsed = min(_timed(lambda: bootstrap({"m": {"task": [task]}}, resamples=2000)) for _ in range(2))
    assert elapsed < 1.0, elapsed


def _timed(function) -> float:
    start = time.perf_counter()
    function()
    return time.perf_counter() - start


def test_per_example_files_are_checked_against_their_row(tmp_path):
    directory = write_eval_dir(tmp_path / "eval", "run", [Template("copa", "a", [0, 1, 1, 0], [0, 1, 0, 0])])
    row = json.loads((directory / "results.json").read_text())["results"][0]
    predictions = read_predictions(directory, row)
    assert predictions.correct.tolist() == [True, True, False, True] and predictions.index.tolist() == [0, 1, 2, 3]
    file = directory / row["predictions"]
    with pytest.raises(ConfigError, match=str(file)) as error:
        read_predictions(directory, {**row, "accuracy": 0.5})
    assert "0.750000" in str(error.value) and "0.500000" in str(error.value)
    with pytest.raises(MissingInputError, match=str(directory / "predictions/elsewhere.json")):
        read_predictions(directory, {**row, "predictions": "predictions/elsewhere.json"})
    data = json.loads(file.read_text())
    file.write_text(json.dumps({**data, "index": [0, 2, 1, 3]}))
    with pytest.raises(ConfigError, match="ascending"):
        read_predictions(directory, row)
    assert read_predictions(directory, {key: value for key, value in row.items() if key != "predictions"}) is None


def task_from_files(tmp_path, templates: dict[str, tuple[list[int], list[bool]]], *, keyed: bool = True
                    ) -> TaskOutcomes:
    """One task's outcomes read back from evaluation files: {template: (the raw example each row prompts, right)}."""
    items = [Template("copa", name, [0] * len(right), [0 if r else 1 for r in right], raw=raw)
             for name, (raw, right) in templates.items()]
    directory = write_eval_dir(tmp_path / f"eval{len(list(tmp_path.iterdir()))}", "run", items, keyed=keyed)
    return task_outcomes(predictions_at([read_eval_dir(directory)], 1))["copa"]


def exact_bootstrap_over_raw_examples(templates: dict[str, tuple[list[int], list[bool]]]) -> np.ndarray:
    """Every equally likely draw of the raw examples (with replacement, as many as there are), enumerated: each
    template's accuracy is the mean over its rows of the drawn raw examples, each row counted as often as its raw
    example was drawn (its full accuracy when none was); the task's, their mean."""
    raws = sorted({r for raw, _ in templates.values() for r in raw})
    draws = np.array(list(itertools.product(range(len(raws)), repeat=len(raws))))  # (K**K, K)
    counts = np.stack([(draws == k).sum(axis=1) for k in range(len(raws))], axis=1)  # (K**K, K)
    per_template = []
    for raw, right in templates.values():
        weight = counts[:, [raws.index(r) for r in raw]]  # (K**K, rows)
        drawn = weight.sum(axis=1)
        full = np.mean(right)
        per_template.append(np.where(drawn > 0, (weight * np.asarray(right)).sum(axis=1) / np.maximum(drawn, 1), full))
    return np.mean(per_template, axis=0)


def test_templates_holding_different_raw_examples_are_resampled_by_raw_example(tmp_path):
    # Template b drops raw example 0 (as P3's COPA templates drop rows), so its row i is raw example i + 1, and it
    # prompts raw example 5 twice (a duplicate key is one raw example). Both templates are right on the same raw
    # examples: resampled together they move together; coupled by row index they would cancel out.
    right_by_raw = [True, False, True, False, True, False]
    templates = {"a": ([0, 1, 2, 3, 4, 5], right_by_raw),
                 "b": ([1, 2, 3, 4, 5, 5], [right_by_raw[r] for r in (1, 2, 3, 4, 5, 5)])}
    exact = exact_bootstrap_over_raw_examples(templates)
    by_index = exact_bootstrap_over_raw_examples({name: (list(range(len(right))), right)
                                                  for name, (_, right) in templates.items()})
    assert np.std(by_index) < 0.7 * np.std(exact)  # the construction tells the two couplings apart
    task = task_from_files(tmp_path, templates)
    replicates = bootstrap({"m": {"copa": [task]}}, resamples=20_000, seed=3)["m"]["copa"]
    assert task.accuracy() == pytest.approx(np.mean([3 / 6, 2 / 6]))
    assert np.mean(replicates) == pytest.approx(np.mean(exact), abs=0.005)
    assert np.std(replicates) == pytest.approx(np.std(exact), rel=0.03)


def test_the_p_value_and_the_interval_agree_up_to_one_resample():
    resamples = 2000
    rng = np.random.default_rng(4)
    for shift in np.linspace(0, 4, 200):
        differences = rng.normal(shift, 1, resamples).round(1)  # rounded: some replicates are exactly 0
        p, (low, high) = paired_p_value(differences), interval(differences)
        excludes = low > 0 or high < 0
        if p < 0.05:
            assert excludes, (shift, p, low, high)
        if excludes:
            assert p <= 2 * (int(0.025 * (resamples - 1)) + 2) / (resamples + 1), (shift, p)  # 0.051
    # Where they part: 50 of 2000 replicates at 0 and the rest above it.
    boundary = np.r_[np.zeros(50), np.ones(resamples - 50)]
    assert interval(boundary)[0] > 0 and paired_p_value(boundary) == pytest.approx(102 / 2001) and 102 / 2001 > 0.05


def test_adding_a_method_on_the_same_examples_leaves_the_others_intervals_and_other_examples_move_them():
    rng = np.random.default_rng(5)
    a, b = (outcomes(rng.random(200) < p, rng.random(200) < p) for p in (0.6, 0.7))
    alone = bootstrap({"a": {"task": [a]}})["a"]["task"]
    assert np.array_equal(bootstrap({"a": {"task": [a]}, "b": {"task": [b]}})["a"]["task"], alone)
    more = outcomes(rng.random(250) < 0.7, rng.random(250) < 0.7)  # 50 raw examples a was not evaluated on
    assert not np.array_equal(bootstrap({"a": {"task": [a]}, "c": {"task": [more]}})["a"]["task"], alone)
