"""Where two evaluated runs differ, example by example: per task, how many examples each got right that the other
got wrong, with the examples themselves (prompt, gold answer, both predictions, and the documents the augmented run
read), from the per-example prediction files and the template datasets.

    zemi-compare output/eval/no_aug_base output/eval/zemi_base --output_dir output/compare

RUN_A and RUN_B are evaluation directories (zemi-eval's --output_dir). Each is read at its best checkpoint by
Table 1's rule, or at --step_a / --step_b. Examples are matched by template and validation row. The summary gives,
per task, the counts (the discordant pairs a McNemar test would use) and B − A with its 95 % paired-bootstrap interval
and p-value (docs/statistics.md). --output_dir writes compare.md and compare.json (every differing example's id; the
texts of those shown).
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from zemi.cli import argument, option, parse_config, setup_logging
from zemi.data.mixture import open_template_dir
from zemi.data.processing import document_texts  # both forms of chosen_examples that datasets writes
from zemi.errors import ConfigError, MissingInputError
from zemi.io import write_json_atomic, write_text_atomic
from zemi.tools.evaluations import NO_PREDICTIONS, EvalDir, best_checkpoint, predictions_at, read_eval_dir
from zemi.tools.uncertainty import (LEVEL, RESAMPLES, SEED, Predictions, TaskOutcomes, bootstrap, interval,
                                    paired_p_value)

logger = logging.getLogger(__name__)


@dataclass
class Side:
    """One of the two runs, at the checkpoint compared."""

    name: str
    eval_dir: EvalDir
    step: int
    predictions: dict[tuple[str, str], Predictions]

    @property
    def documents_read(self) -> int | None:
        return self.eval_dir.documents_read


@dataclass
class Example:
    template: str
    index: int
    gold: int
    predicted_a: int
    predicted_b: int
    template_path: str


@dataclass
class TaskComparison:
    task: str
    examples: int = 0  # (template, example) pairs both runs predicted
    a_right: int = 0
    b_right: int = 0
    only_a: list[Example] = field(default_factory=list)  # A right, B wrong
    only_b: list[Example] = field(default_factory=list)
    difference: float | None = None  # B - A, the mean over templates
    low: float | None = None
    high: float | None = None
    p: float | None = None


def side(name: str, eval_dir: EvalDir, step: int | None, flag: str) -> Side:
    steps = sorted({row["step"] for row in eval_dir.rows})
    if step is None:
        step = best_checkpoint(eval_dir.rows, str(eval_dir.path)).step
    elif step not in steps:
        raise ConfigError(f"{flag} {step}: {eval_dir.path} has results for steps {steps} only")
    predictions = predictions_at([eval_dir], step)
    if predictions is None:
        raise ConfigError(f"{eval_dir.path}: {NO_PREDICTIONS}; re-evaluate it with the current zemi-eval to "
                          "compare it example by example")
    return Side(name, eval_dir, step, predictions)


def compare(a: Side, b: Side, *, resamples: int = RESAMPLES, seed: int = SEED
            ) -> tuple[list[TaskComparison], list[str]]:
    """Per task (sorted), the examples on which A and B differ in correctness; and notes on what was left out."""
    notes = []
    for one, other in ((a, b), (b, a)):
        alone = sorted(set(one.predictions) - set(other.predictions))
        if alone:
            notes.append(f"only {one.name} was evaluated on {[f'{task}/{template}' for task, template in alone]}")
    outcomes: dict[str, dict[str, dict]] = {"a": defaultdict(dict), "b": defaultdict(dict)}
    tasks: dict[str, TaskComparison] = {}
    for key in sorted(set(a.predictions) & set(b.predictions)):
        task, template = key
        first, second = a.predictions[key], b.predictions[key]
        index, at_a, at_b = np.intersect1d(first.index, second.index, assume_unique=True, return_indices=True)
        if len(index) < max(len(first.index), len(second.index)):
            notes.append(f"{task}/{template}: {len(first.index)} examples in {a.name}, {len(second.index)} in "
                         f"{b.name}; the {len(index)} in both are compared")
        gold = first.gold[at_a]
        if not np.array_equal(gold, second.gold[at_b]):
            row = int(index[np.flatnonzero(gold != second.gold[at_b])[0]])
            raise ConfigError(f"{first.path} and {second.path} disagree on the gold answer of example {row}: the two "
                              "evaluations did not read the same data")
        keys = None
        if first.example is not None and second.example is not None:
            keys = first.example[at_a]
            if not np.array_equal(keys, second.example[at_b]):
                row = int(index[np.flatnonzero(keys != second.example[at_b])[0]])
                raise ConfigError(f"{first.path} and {second.path} disagree on which raw example row {row} of "
                                  f"{template} prompts (its 'example' key): the two evaluations did not read the "
                                  "same data")
        right_a, right_b = first.correct[at_a], second.correct[at_b]
        item = tasks.setdefault(task, TaskComparison(task))
        item.examples += len(index)
        item.a_right += int(right_a.sum())
        item.b_right += int(right_b.sum())
        for where, bucket in ((right_a & ~right_b, item.only_a), (right_b & ~right_a, item.only_b)):
            bucket += [Example(template, int(index[i]), int(gold[i]), int(first.predicted[at_a][i]),
                               int(second.predicted[at_b][i]), first.template_path) for i in np.flatnonzero(where)]
        outcomes["a"][task][template] = (index, right_a, keys)
        outcomes["b"][task][template] = (index, right_b, keys)
    unkeyed = sorted(task for task, templates in outcomes["a"].items() if any(t[2] is None for t in templates.values()))
    if unkeyed:
        notes.append(f"{unkeyed}: resampled template by template, not by raw example (a per-example file without "
                     "raw example keys, from an older evaluation): the interval treats the templates as independent")
    replicates = bootstrap({side_: {task: [TaskOutcomes.from_templates(per_template)]
                                    for task, per_template in by_task.items()} for side_, by_task in outcomes.items()},
                           resamples=resamples, seed=seed) if tasks else {}
    for task, item in tasks.items():
        point = [TaskOutcomes.from_templates(outcomes[s][task]).accuracy() for s in ("a", "b")]
        differences = replicates["b"][task] - replicates["a"][task]
        item.difference, (item.low, item.high), item.p = point[1] - point[0], interval(differences), \
            paired_p_value(differences)
    return [tasks[task] for task in sorted(tasks)], notes


def example_texts(example: Example, documents: int, data_root: Path | None, cache: dict) -> dict:
    """The example's prompt, answer choices and first `documents` documents, read from its template directory."""
    path = Path(example.template_path)
    if data_root is not None:
        path = data_root / path.parent.name / path.name
    if path not in cache:
        if not path.is_dir():
            raise MissingInputError(f"{path} does not exist: the template directory the predictions were made on "
                                    "(pass --data_root DIR to read <DIR>/<task>/<template> instead)")
        cache[path] = open_template_dir(path)["validation"]
    row = cache[path][example.index]
    choices = [choice.strip() for choice in row["answer_choices"]]
    target = row["targets_pretokenized"].strip()
    if target in choices and choices.index(target) != example.gold:
        raise ConfigError(f"{path}, validation row {example.index}: the gold answer is choice {choices.index(target)} "
                          f"({target!r}) but the predictions say {example.gold}: they were made on other data")
    chosen = row["chosen_examples"]
    scores = chosen.get("score") or [] if isinstance(chosen, dict) else [doc["score"] for doc in chosen or []]
    texts = document_texts(chosen)[:documents]
    return {"template": example.template, "index": example.index, "prompt": row["inputs_pretokenized"].strip(),
            "choices": choices, "gold": target, "predicted_a": _choice(choices, example.predicted_a),
            "predicted_b": _choice(choices, example.predicted_b),
            "documents": [{"rank": rank, "score": score, "text": text}
                          for rank, (score, text) in enumerate(zip(scores, texts))]}


def _choice(choices: list[str], number: int) -> str:
    return choices[number] if 0 <= number < len(choices) else f"<choice {number}>"


def documents_shown(a: Side, b: Side, notes: list[str]) -> int:
    read = [s.documents_read for s in (a, b)]
    for s in (a, b):
        if s.documents_read is None:
            notes.append(f"{s.name}: how many documents it reads is not recorded (an older results.json)")
    return max((n for n in read if n is not None), default=0)


def summary(a: Side, b: Side, tasks: list[TaskComparison]) -> list[str]:
    lines = [f"A: {a.name} ({a.eval_dir.path}, step_{a.step}, reads {_reads(a)})",
             f"B: {b.name} ({b.eval_dir.path}, step_{b.step}, reads {_reads(b)})", "",
             f"| task | examples | A right | B right | only A right | only B right | B − A (points) "
             f"[{LEVEL:.0%} interval] |", "|---|---|---|---|---|---|---|"]
    for t in tasks:
        lines.append(f"| {t.task} | {t.examples} | {t.a_right} | {t.b_right} | {len(t.only_a)} | {len(t.only_b)} | "
                     f"{100 * t.difference:+.2f} [{100 * t.low:+.1f}, {100 * t.high:+.1f}] "
                     f"{'p<0.001' if t.p < 0.001 else f'p={t.p:.3f}'} |")
    lines += ["", "examples: (template, example) pairs both runs predicted; B − A: the difference of the mean over "
              "templates, with a paired bootstrap over examples (docs/statistics.md)."]
    return lines


def _reads(s: Side) -> str:
    return "? documents" if s.documents_read is None else f"{s.documents_read} documents"


def example_markdown(a: Side, b: Side, tasks: list[TaskComparison], shown: dict[str, dict[str, list[dict]]]
                     ) -> list[str]:
    lines = []
    for task in tasks:
        if not any(shown[task.task].values()):
            continue
        lines += ["", f"## {task.task}"]
        for which, items in shown[task.task].items():
            right, wrong = (a, b) if which == "only_a" else (b, a)
            lines += ["", f"### {right.name} right, {wrong.name} wrong: {len(items)} of {len(getattr(task, which))} "
                      "shown"]
            for item in items:
                verdicts = [f"{s.name}: {item[key]} {'✓' if item[key] == item['gold'] else '✗'}"
                            for s, key in ((a, "predicted_a"), (b, "predicted_b"))]
                lines += ["", f"#### {item['template']}, example {item['index']}", "", "Prompt:", "",
                          *_quoted(item["prompt"]), "", " · ".join([f"Gold: **{item['gold']}**", *verdicts])]
                if item["documents"]:
                    readers = ", ".join(f"{s.name} the first {s.documents_read}" for s in (a, b) if s.documents_read)
                    lines += ["", f"Documents ({readers}):"]
                    for document in item["documents"]:
                        lines += ["", f"Document {document['rank'] + 1} (BM25 {document['score']:.2f}):", "",
                                  *_quoted(document["text"])]
    return lines


def _quoted(text: str) -> list[str]:
    return [f"> {line}".rstrip() for line in text.splitlines() or [""]]


def run_compare(args: CompareOptions) -> str:
    first, second = read_eval_dir(args.run_a), read_eval_dir(args.run_b)
    names = (first.run, second.run) if first.run != second.run else (f"{first.run} (A)", f"{second.run} (B)")
    a = side(names[0], first, args.step_a, "--step_a")
    b = side(names[1], second, args.step_b, "--step_b")
    tasks, notes = compare(a, b, resamples=args.resamples, seed=args.bootstrap_seed)
    if not tasks:
        raise ConfigError(f"{args.run_a} and {args.run_b} share no evaluated template (by task and template name)")
    documents = documents_shown(a, b, notes)
    data_root = Path(args.data_root) if args.data_root else None
    cache: dict = {}
    shown = {t.task: {which: [example_texts(e, documents, data_root, cache) for e in getattr(t, which)[:args.examples]]
                      for which in ("only_a", "only_b")} for t in tasks}
    lines = summary(a, b, tasks) + [f"- {note}" for note in notes]
    text = "\n".join(lines) + "\n"
    full = "\n".join(["# Example by example", "", *lines, *example_markdown(a, b, tasks, shown)]) + "\n"
    if args.output_dir:
        output = Path(args.output_dir)
        output.mkdir(parents=True, exist_ok=True)
        write_text_atomic(output / "compare.md", full)
        write_json_atomic(output / "compare.json", compare_json(a, b, tasks, shown, notes))
        return text + f"\nwrote {output / 'compare.md'} and {output / 'compare.json'}\n"
    return full


def compare_json(a: Side, b: Side, tasks: list[TaskComparison], shown: dict, notes: list[str]) -> dict:
    def run(s: Side) -> dict:
        return {"name": s.name, "eval_dir": str(s.eval_dir.path), "run": s.eval_dir.run, "step": s.step,
                "documents_read": s.documents_read}

    return {"a": run(a), "b": run(b), "notes": notes, "statistics": {"level": LEVEL, "test": "paired bootstrap"},
            "tasks": {t.task: {"examples": t.examples, "a_right": t.a_right, "b_right": t.b_right,
                               "difference": t.difference, "interval": [t.low, t.high], "p": t.p,
                               "only_a": [{"template": e.template, "index": e.index} for e in t.only_a],
                               "only_b": [{"template": e.template, "index": e.index} for e in t.only_b],
                               "shown": shown[t.task]} for t in tasks}}


@dataclass
class CompareOptions:
    run_a: str = argument("an evaluation directory (with results.json), e.g. No Aug's", metavar="RUN_A")
    run_b: str = argument("another evaluation directory, e.g. Zemi's", metavar="RUN_B")
    step_a: int | None = option(None, "checkpoint of RUN_A (default: its best)")
    step_b: int | None = option(None, "checkpoint of RUN_B (default: its best)")
    output_dir: str | None = option(None, "write compare.md and compare.json here")
    examples: int = option(10, "examples shown per task and direction (the counts and compare.json's ids cover all)",
                           minimum=0)
    data_root: str | None = option(None, "read the templates from <DIR>/<task>/<template> instead of the paths in "
                                   "the files")
    resamples: int = option(RESAMPLES, "bootstrap resamples for the interval and p-value")
    bootstrap_seed: int = option(SEED, "seed of the bootstrap, so that a comparison is reproducible")


def main(argv: Sequence[str] | None = None) -> str:
    setup_logging()
    text = run_compare(parse_config(CompareOptions, argv, __doc__))
    print(text, end="")
    return text
