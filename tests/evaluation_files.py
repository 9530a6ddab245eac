"""Evaluation directories as zemi-eval writes them (results.json and the per-example prediction files), built
from predictions a test chooses: the report, zemi-compare and the browser read them like real ones."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

ZEMI = "SharedEncoderDecoder_MultiAug"


@dataclass
class Template:
    """One template's predictions at one checkpoint."""

    task: str
    template: str
    gold: Sequence[int]
    predicted: Sequence[int]
    step: int = 1
    index: Sequence[int] | None = None  # default: 0..N-1
    num_choices: int | Sequence[int] = 2
    gold_in_choices: Sequence[bool] | None = None
    template_path: str | None = None
    raw: Sequence[int] | None = None  # the raw example each row prompts (default: its index), keyed in the file
    extra: dict = field(default_factory=dict)  # overrides of the results.json row


def example_key(documents: Sequence[str]) -> str:
    """As zemi.run.results_files.example_key: a raw example is known by the documents retrieved for it, which all its
    templates share."""
    return hashlib.sha1(json.dumps(list(documents)).encode()).hexdigest()[:16]


def raw_key(task: str, raw: int) -> str:
    """The key of the fixture's raw example `raw` of `task` (its one document names it)."""
    return example_key([f"{task}: raw example {raw}"])


def settings_for(architecture: str = "T5", documents_read: int = 0, **more) -> dict:
    return {"architecture": architecture, "documents_read": documents_read, "max_length": 1024,
            "aug_max_length": 256, "target_max_length": 256, **more}


def write_eval_dir(path: Path, run: str, templates: Sequence[Template], *, seed: int | None = None,
                   settings: dict | None = None, architecture: str = "T5", per_example: bool = True,
                   keyed: bool = True, legacy: bool = False) -> Path:
    """`keyed`: per-example files with each row's raw example key (`example`), which earlier evaluations lack;
    `legacy`: a results.json as older evaluations (and the authors') wrote it, without settings, seed and
    per-example files."""
    path.mkdir(parents=True, exist_ok=True)
    rows = []
    for item in templates:
        gold, predicted = np.asarray(item.gold), np.asarray(item.predicted)
        index = np.arange(len(gold)) if item.index is None else np.asarray(item.index)
        choices = np.broadcast_to(np.asarray(item.num_choices), gold.shape)
        template_path = item.template_path or f"/data/30aug/{item.task}/{item.template}"
        row = {"step": item.step, "template_path": template_path, "task": item.task, "template": item.template,
               "accuracy": float((gold == predicted).mean()), "num_examples": len(gold),
               "gold_not_in_choices": 0 if item.gold_in_choices is None else int(len(gold) - sum(item.gold_in_choices)),
               "chance": float((1 / choices).mean())}
        if per_example and not legacy:
            relative = f"predictions/step_{item.step}/{item.task}__{item.template}.json"
            scores = [[0.0 if c == p else -1.0 - c for c in range(n)] for p, n in zip(predicted.tolist(), choices)]
            (path / relative).parent.mkdir(parents=True, exist_ok=True)
            (path / relative).write_text(json.dumps({
                "task": item.task, "template": item.template, "template_path": template_path, "step": item.step,
                "index": index.tolist(), "gold": gold.tolist(),
                "gold_in_choices": [True] * len(gold) if item.gold_in_choices is None else list(item.gold_in_choices),
                "predicted": predicted.tolist(), "scores": scores,
                **({"example": [raw_key(item.task, int(r)) for r in (index if item.raw is None else item.raw)]}
                   if keyed else {})}))
            row["predictions"] = relative
        rows.append({**row, **item.extra})
    data = {"model": f"/runs/{run}", "method": run, "architecture": architecture, "results": rows,
            "skipped_templates": [], "skipped_checkpoints": []}
    if not legacy:
        data["seed"] = seed
        # As zemi-eval records them: the model evaluated and the template directories are settings too.
        data["settings"] = {"model": data["model"], "processed_dataset_paths": sorted({r["template_path"] for r in rows}),
                            **(settings if settings is not None else settings_for(architecture))}
    else:
        del data["architecture"], data["skipped_templates"], data["skipped_checkpoints"]
    (path / "results.json").write_text(json.dumps(data))
    return path


def gold_of(example: dict) -> int:
    """The gold answer's position among a 30aug example's answer choices (the first when it is not one)."""
    choices = [c.strip() for c in example["answer_choices"]]
    target = example["targets_pretokenized"].strip()
    return choices.index(target) if target in choices else 0


def wrong_of(example: dict) -> int:
    return (gold_of(example) + 1) % len(example["answer_choices"])


def from_template_dir(template_dir: Path, predict: Callable[[int, dict], int], *, step: int = 1) -> Template:
    """A template's predictions on its real validation split: gold is the target's position among the answer
    choices (the first choice when it is not one, as the evaluation scores it), predicted is `predict(row, example)`."""
    from datasets import load_from_disk

    validation = load_from_disk(str(template_dir))["validation"]
    gold, gold_in, predicted, choices = [], [], [], []
    for number, example in enumerate(validation):
        options = [choice.strip() for choice in example["answer_choices"]]
        gold.append(gold_of(example))
        gold_in.append(example["targets_pretokenized"].strip() in options)
        predicted.append(predict(number, example))
        choices.append(len(options))
    return Template(template_dir.parent.name, template_dir.name, gold, predicted, step=step, num_choices=choices,
                    gold_in_choices=gold_in, template_path=str(template_dir.resolve()))
