"""The zero-shot evaluation sweep (the T0 protocol): for a run directory's checkpoints, or a plain T5, and the given
template directories, the rank-classification accuracy of every (step, template) in results.json, with every
example's prediction beside it. The scoring itself is `zemi.run.objectives`; the files `zemi.run.results_files`.
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Sequence

import torch
from accelerate import Accelerator
from huggingface_hub import hf_hub_download
from huggingface_hub.errors import EntryNotFoundError
from torch.utils.data import DataLoader
from transformers import AutoTokenizer, T5Config

from zemi.data.collate import Collator
from zemi.data.mixture import DataError, EvalTemplate, scan_eval_templates
from zemi.data.processing import Featurizer, MaxLengths
from zemi.data.tokenized import tokenize
from zemi.errors import ConfigError, MissingInputError
from zemi.faults import crash_point
from zemi.io import step_of
from zemi.models.checkpoint_files import CheckpointReadError, check_weights_fit, checkpoint_shapes
from zemi.models.modeling_t5 import T5WithOwnLMHead
from zemi.cli import progress, setup_logging
from zemi.run.config import EvalConfig, parse_evaluation
from zemi.run.method import Method, collator_for
from zemi.run.objectives import choice_scores, choice_table
from zemi.run.presets import PAPER
from zemi.run.results_files import (
    Sweep,
    TemplatePredictions,
    data_fingerprint,
    example_keys,
    files_fingerprint,
    predictions_path,
    read_predictions,
    remove_unreferenced,
    reusable_rows,
    template_key,
    tokenizer_fingerprint,
    write_error_analysis,
    write_predictions,
    write_results,
)
from zemi.run.run_directory import RunDirectory
from zemi.run.tracking import end_tracking, log_metrics, make_accelerator, start_tracking

logger = logging.getLogger(__name__)

DEBUG_EXAMPLES = 100  # --debug evaluates each template's first rows only


@dataclass
class TemplateScore:
    task: str
    template: str
    accuracy: float
    num_examples: int
    gold_not_in_choices: int  # scored against choice 0, as the original does
    chance: float  # accuracy of guessing: the mean over the examples of 1 / their number of answer choices


def model_kind(model_name_or_path: str) -> str:
    """What --model_name_or_path names: "run" (a training run directory: args.json and step_* checkpoints, ours or
    the authors'), "t5" (a save_pretrained T5 directory: config.json and weights, e.g. a downloaded
    t5-base-lm-adapt or T0), or "hub" (anything else: a model name for from_pretrained)."""
    path = Path(model_name_or_path)
    if not path.is_dir():
        # A hub name is "name" or "namespace/name"; anything else can only be a local path.
        if path.exists() or model_name_or_path.startswith(("/", ".", "~")) or model_name_or_path.count("/") > 1:
            raise MissingInputError(f"--model_name_or_path {model_name_or_path}: no such directory (expected a "
                                    "training run directory, a T5 saved with save_pretrained, or a hub name)")
        return "hub"
    if (path / "args.json").is_file():
        return "run"
    config_file = path / "config.json"
    if not config_file.is_file():
        raise MissingInputError(f"--model_name_or_path {path}: neither a training run directory (args.json) nor a "
                                "model directory (config.json)")
    try:
        model_type = json.loads(config_file.read_text()).get("model_type")
    except (json.JSONDecodeError, AttributeError) as err:
        raise ConfigError(f"{config_file}: not a JSON object of a model config ({err})") from None
    if model_type in ("zemi", "zemi_fid"):  # e.g. a step_N copied out of its run
        raise ConfigError(f"{path}: a {model_type} model without the args.json of its run (the text rules it was "
                          "trained with); pass its run directory, or a directory written by "
                          "zemi-convert")
    if model_type != "t5":
        raise ConfigError(f"{config_file}: model_type {model_type!r}; a model directory without args.json is "
                          "evaluated as a plain T5 (No Aug, or Concat with --concat_aug_num), so it must be 't5'")
    return "t5"


@dataclass
class EvalSource:
    """What to evaluate: a run directory's checkpoints, or a plain T5 (no fine-tuning; No Aug or Concat) by hub name
    or directory."""

    name: str
    run: RunDirectory | None
    method: Method
    lengths: MaxLengths
    tokenizer_source: str
    kind: str  # model_kind: "run", "t5" or "hub"
    location: str  # --model_name_or_path

    @classmethod
    def from_config(cls, config: EvalConfig) -> EvalSource:
        kind = model_kind(config.model_name_or_path)
        path = Path(config.model_name_or_path)
        run = RunDirectory.open(path) if kind == "run" else None
        args = run.args if run else {}

        def setting(name, default):
            value = getattr(config, name)
            return value if value is not None else args.get(name, default)

        # The authors' FiD scripts pass the flag rather than relying on args.json; either turns it on.
        overrides = {name: value for name in ("concat_aug_num", "fit_aug_num")
                     if (value := getattr(config, name)) is not None}
        if config.concat_input_at_augmentation:
            overrides["concat_input_at_augmentation"] = True
        # A run's fusion settings are its perceiver_config.json, never the training-time path in its args.json.
        settings = {name: value for name, value in args.items() if name != "perceiver_config"}
        method = Method.from_args({**settings, **overrides}, source=f"{path}/args.json" if run else "--model_name_or_path",
                                  perceiver_config=run.perceiver_config if run else None)
        lengths = MaxLengths(*(setting(name, PAPER.recipe[name])
                               for name in ("max_length", "aug_max_length", "target_max_length")))
        tokenizer_source = config.tokenizer_name or (run.tokenizer_source() if run else
                                                     (config.lm_name or config.model_name_or_path))
        name = path.name if kind != "hub" else config.model_name_or_path
        if not run and method.rules.concat_aug_num:  # the same T5 as No Aug and as Concat: two methods
            name += f"_concat{method.rules.concat_aug_num}"
        return cls(name, run, method, lengths, tokenizer_source, kind, config.model_name_or_path)

    def checkpoints(self, step: int) -> list[tuple[int, Path | None]]:
        """The checkpoints to evaluate, each checked before any data or weights are loaded: one whose keys or
        document slots do not fit the run fails here; an unreadable one fails here unless a sweep will skip it."""
        if self.kind == "t5":
            path = Path(self.location)
            check_weights_fit(_expected_t5(path), checkpoint_shapes(path), source=path)
        if self.run is None:
            return [(0, None)]
        found = self.run.checkpoints(step)
        for _, checkpoint in found:
            try:
                self.run.check_checkpoint(checkpoint, self.method.rules,
                                          fix=str(self.run.path / "perceiver_config.json"))
            except CheckpointReadError:
                if step != -1:
                    raise
        return found

    def load(self, checkpoint: Path | None):
        if self.run:
            return self.run.load_model(checkpoint)
        try:
            return T5WithOwnLMHead.from_pretrained(self.location)
        except OSError as err:
            raise MissingInputError(f"--model_name_or_path {self.location}: neither a local directory nor a model "
                                    f"that from_pretrained can load ({err})") from None

    @property
    def input_eos(self) -> bool:
        return bool(self.run and self.run.args.get("input_eos"))

    @property
    def model_id(self) -> str:
        if self.run:
            return str(self.run.path.resolve())
        return self.name if self.kind == "hub" else str(Path(self.location).resolve().parent / self.name)

    def settings(self, config: EvalConfig, mixed_precision: str, num_processes: int, tokenizer) -> dict[str, Any]:
        """Everything that can change a score or what is averaged, as one flat object, so that two evaluations
        compare key by key: the model, its tokenizer (by name and by content), text rules and lengths (null where the
        method has no use for them), the template directories, precision and padding. Not where files go, trackers,
        --strict (it fails or scores alike), nor the batch size and process count: scores do not depend on them
        (tests/test_batch_independence.py, tests/test_evaluation_outputs.py) unless documents are padded per batch."""
        rules, padding = self.method.rules, getattr(config, "document_padding", None)
        settings = {
            "model": self.model_id, "architecture": self.method.architecture,
            "tokenizer": _absolute_if_local(self.tokenizer_source),
            "tokenizer_fingerprint": tokenizer_fingerprint(tokenizer),
            "processed_dataset_paths": sorted(template_key(path) for path in config.processed_dataset_paths),
            "max_length": self.lengths.input, "aug_max_length": self.lengths.document if rules.num_documents else None,
            "target_max_length": self.lengths.target,
            "num_documents": rules.num_documents, "documents_read": rules.documents_read,
            "fit_aug_num": rules.fit_aug_num, "concat_aug_num": rules.concat_aug_num,
            "concat_input_at_augmentation": rules.concat_input_at_augmentation, "input_eos": self.input_eos,
            "mixed_precision": mixed_precision, "pad_to_max_length": config.pad_to_max_length,
            "document_padding": padding, "debug": config.debug,
        }
        if padding == "longest":  # a document's padding, which Zemi's resampler reads, then depends on its batch
            settings["per_device_eval_batch_size"] = config.per_device_eval_batch_size
            # and so on the process count: accelerate fills the processes' last batches with examples from the start
            settings["num_processes"] = num_processes
        if self.method.perceiver_config is not None:
            settings.update({f"fusion.{name}": value for name, value in self.method.perceiver_config.to_dict().items()})
        return settings

    def fingerprint(self, checkpoint: Path | None) -> str:
        """Identifies the weights a row was computed from (`results_files.files_fingerprint`); a hub model by its
        name and the commit that from_pretrained will load: its config.json resolved as from_pretrained resolves
        it (downloaded when not cached; from the cache's refs offline), so a first run, which downloads the model,
        and later runs, which find it cached, record the same commit."""
        if checkpoint is not None:
            return files_fingerprint(checkpoint)
        if self.kind == "t5":
            return files_fingerprint(Path(self.location))
        try:
            config_file = hf_hub_download(self.location, "config.json")
        except (OSError, EntryNotFoundError) as err:
            raise MissingInputError(f"--model_name_or_path {self.location}: neither a local directory nor a model on "
                                    f"the hub or in its cache ({err})") from None
        return f"{self.location}@{Path(config_file).parent.name}"  # snapshots/<commit>/config.json

    def checkpoint_name(self, step: int, checkpoint: Path | None, config: EvalConfig) -> str:
        """The checkpoint as the authors' --error_analysis_dir layout names it: its `step_N` entry; a plain T5,
        which their baseline script evaluates once, as `step_<--step_num>` (step_-1 by default), as they did."""
        if checkpoint is not None and step_of(checkpoint) is not None:
            return checkpoint.name
        return f"step_{step}" if self.run else f"step_{config.saved_model_step}"


def _expected_t5(path: Path) -> T5WithOwnLMHead:
    """A plain T5 of the directory's config, without weights: what its weight file must match."""
    try:
        config = T5Config.from_pretrained(path)
    except (OSError, ValueError) as err:
        raise CheckpointReadError(f"{path}: no readable config.json ({err})") from None
    with torch.device("meta"):
        return T5WithOwnLMHead(config)


class GoldNotInChoicesError(ConfigError):
    """--strict: a gold target that is not among its example's answer choices."""


@dataclass
class IndexedCollator:
    """The collator's batch plus each example's row of the template's validation split, which the predictions
    file is written by: evaluation batches the examples longest first."""

    collator: Collator

    def __call__(self, features: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        return {**self.collator(features), "index": torch.tensor([f["index"] for f in features])}


def evaluate_template(model, template: EvalTemplate, featurizer: Featurizer, collator: Collator,
                      accelerator: Accelerator, config: EvalConfig, cache_dir: Path, examples: list[str] | None = None,
                      ) -> tuple[TemplateScore, TemplatePredictions]:
    """Rank classification of every example of one template directory's validation split, gathered from all
    processes (each example once), in row order; `examples`: the rows' raw-example keys, written beside them."""
    data = tokenize(template.dataset, featurizer.eval_features, cache_dir, num_proc=config.num_proc)
    if config.debug:
        data = data.select(range(min(DEBUG_EXAMPLES, len(data))))
    if config.strict and not all(data["gold_in_choices"]):
        rows = [i for i, ok in enumerate(data["gold_in_choices"]) if not ok]
        raise GoldNotInChoicesError(f"{template.path} [validation]: {len(rows)} rows {rows[:20]}: the gold target "
                                    "(targets_pretokenized, stripped) is not among answer_choices (drop --strict to "
                                    "score them against choice 0, as the original does)")
    data = data.add_column("index", list(range(len(data))))
    # Longest first: similar lengths share a batch (less padding), and memory peaks at once, not at the end.
    lengths = data["length"]
    order = sorted(range(len(data)), key=lambda i: -lengths[i])
    loader = accelerator.prepare(DataLoader(data.select(order), batch_size=config.per_device_eval_batch_size,
                                            collate_fn=IndexedCollator(collator)))
    columns: dict[str, list] = {"index": [], "gold": [], "gold_in_choices": [], "predicted": [], "scores": []}
    batches = progress(loader, desc=f"{template.task}/{template.name}", unit="batch", leave=False,
                   disable=not accelerator.is_local_main_process)
    for batch in batches:
        with accelerator.autocast():
            scores = choice_scores(model, batch)
        table = choice_table(scores, batch["choice_owner"], batch["num_choices"])  # (B, most choices), -inf after
        predicted = table.argmax(-1)
        table = accelerator.pad_across_processes(table, dim=1, pad_index=float("-inf"))  # processes' widths may differ
        gathered = accelerator.gather_for_metrics((batch["index"], batch["target"], batch["gold_in_choices"],
                                                   predicted, batch["num_choices"], table))
        index, gold, gold_in, predicted, num_choices, table = (value.cpu() for value in gathered)
        for name, value in zip(columns, (index, gold, gold_in, predicted)):
            columns[name] += value.tolist()
        columns["scores"] += [row[:count].tolist() for row, count in zip(table, num_choices.tolist())]
    by_row = sorted(range(len(columns["index"])), key=columns["index"].__getitem__)
    predictions = TemplatePredictions(**{name: [values[i] for i in by_row] for name, values in columns.items()},
                                      example=examples)
    if predictions.index != list(range(len(data))):
        raise RuntimeError(f"{template.path}: gathered {len(by_row)} predictions, not one for each of the "
                           f"{len(data)} examples")
    missing = predictions.gold_in_choices.count(False)
    if missing:
        logger.warning("%s: %d gold targets are not among their answer choices; scored against choice 0 (as the "
                       "original does)", template.path, missing)
    count = len(predictions.index)
    chance = sum(1 / len(choices) for choices in predictions.scores) / count if count else float("nan")
    score = TemplateScore(template.task, template.name, predictions.accuracy(), count, missing, chance)
    return score, predictions


def run_evaluation(config: EvalConfig) -> Path:
    output_dir = Path(config.output_dir)
    accelerator = make_accelerator(config)
    setup_logging(accelerator)
    source = EvalSource.from_config(config)
    checkpoints = source.checkpoints(config.saved_model_step)
    templates, skipped_templates = scan_eval_templates(config.processed_dataset_paths,
                                                       documents_read=source.method.rules.documents_read)
    if not templates:
        reasons = "; ".join(f"{t.path}: {t.reason}" for t in skipped_templates)
        raise DataError(f"none of {config.processed_dataset_paths} is an evaluable template directory ({reasons})")
    check_file_names(templates)
    tokenizer = load_tokenizer(source.tokenizer_source)
    settings = source.settings(config, accelerator.mixed_precision, accelerator.num_processes, tokenizer)
    sweep = Sweep({step: source.fingerprint(checkpoint) for step, checkpoint in checkpoints},
                  {step: str(checkpoint or source.location) for step, checkpoint in checkpoints},
                  {template_key(t.path): data_fingerprint(t.dataset) for t in templates})
    rows, dropped = reusable_rows(output_dir, settings, sweep)
    featurizer = Featurizer(tokenizer, source.method.rules, source.lengths, input_eos=source.input_eos)
    collator = collator_for(source.method, source.lengths, tokenizer.pad_token_id,
                            pad_to_max_length=config.pad_to_max_length, document_padding=config.document_padding)
    cache_dir = Path(config.cache_dir or output_dir / "tokenized_cache")
    done = {(row["step"], template_key(row["template_path"])) for row in rows}
    skipped = {"templates": [{"path": str(t.path), "reason": t.reason} for t in skipped_templates], "checkpoints": []}
    summary = {"model": source.model_id, "method": source.name, "architecture": source.method.architecture,
               "seed": source.run.args.get("seed") if source.run else None}
    start_tracking(accelerator, {**asdict(config), **summary, **settings})
    summary["settings"] = settings

    def write() -> None:
        if accelerator.is_main_process:
            write_results(output_dir, {**summary, "skipped_templates": skipped["templates"],
                                       "skipped_checkpoints": skipped["checkpoints"]}, rows)
            remove_unreferenced(output_dir, dropped, rows)  # only now does results.json no longer name them

    todo = {step: [t for t in templates if (step, template_key(t.path)) not in done] for step, _ in checkpoints}
    keys: dict[str, list[str] | None] = {}  # per template, computed once for all steps
    bar = progress(total=sum(map(len, todo.values())), desc="evaluating", unit="template",
                    disable=not accelerator.is_local_main_process)
    for step, checkpoint in checkpoints:
        if not todo[step]:
            continue
        model = _load_or_skip(source, step, checkpoint, config, skipped["checkpoints"])
        if model is None:
            bar.update(len(todo[step]))
            continue
        model.to(accelerator.device).eval()
        for template in todo[step]:
            start = time.perf_counter()
            key = template_key(template.path)
            if key not in keys:
                keys[key] = example_keys(template.dataset, rows=DEBUG_EXAMPLES if config.debug else None)
            score, predictions = evaluate_template(model, template, featurizer, collator, accelerator, config,
                                                   cache_dir, keys[key])
            relative = predictions_path(step, template.task, template.name)
            if accelerator.is_main_process:  # the file first: a row in results.json always has its predictions
                write_predictions(output_dir, relative, task=template.task, template=template.name,
                                  template_path=str(template.path), step=step, predictions=predictions)
            rows.append({"step": step, "template_path": str(template.path), **asdict(score), "predictions": relative,
                         "checkpoint_fingerprint": sweep.checkpoints[step],
                         "data_fingerprint": sweep.templates[template_key(template.path)]})
            write()
            crash_point("evaluation_row")
            rate = score.num_examples / (time.perf_counter() - start)
            bar.set_postfix(step=step, template=f"{score.task}/{score.template}", examples_per_s=f"{rate:.1f}")
            bar.update()
            logger.info("step %s %s/%s: accuracy %.4f (chance %.4f, %d examples, %.1f examples/s)", step, score.task,
                        score.template, score.accuracy, score.chance, score.num_examples, rate)
        log_metrics(accelerator, tracked_scores([row for row in rows if row["step"] == step]), step)
        del model
    bar.close()
    if not rows:
        raise CheckpointReadError(f"no checkpoint of {config.model_name_or_path} could be read: "
                                  f"{[entry['error'] for entry in skipped['checkpoints']]}")
    write()
    if config.error_analysis_dir and accelerator.is_main_process:
        write_authors_error_analysis(Path(config.error_analysis_dir), output_dir, source, config, checkpoints,
                                     templates, rows)
    accelerator.wait_for_everyone()
    end_tracking(accelerator)
    return output_dir


def check_file_names(templates: list[EvalTemplate]) -> None:
    """Each template's predictions file is named `<task>__<template>`: two directories of one name would share it."""
    seen: dict[tuple[str, str], Path] = {}
    for template in templates:
        other = seen.setdefault((template.task, template.name), template.path)
        if template_key(other) != template_key(template.path):
            raise ConfigError(f"--processed_dataset_paths names two templates {template.task}/{template.name}: "
                              f"{other} and {template.path}; evaluate them into separate --output_dir")


def write_authors_error_analysis(directory: Path, output_dir: Path, source: EvalSource, config: EvalConfig,
                                 checkpoints: list[tuple[int, Path | None]], templates: list[EvalTemplate],
                                 rows: list[dict]) -> None:
    """--error_analysis_dir: every (checkpoint, template) of this sweep in the authors' layout, from the predictions
    files (so that rows resumed from an earlier run are written too)."""
    by_key = {(row["step"], template_key(row["template_path"])): row for row in rows}
    for step, checkpoint in checkpoints:
        for template in templates:
            row = by_key.get((step, template_key(template.path)))
            if row is None:  # a checkpoint the sweep skipped
                continue
            written = write_error_analysis(directory, output_dir, source.checkpoint_name(step, checkpoint, config),
                                           template.task, template.name, template.dataset,
                                           read_predictions(output_dir, row["predictions"]))
            logger.info("error analysis: %s", written)


def tracked_scores(rows: list[dict]) -> dict[str, float]:
    """One checkpoint's scores for the trackers: every template's accuracy, each task's mean over its templates
    (as the report averages them) and the mean over the tasks."""
    scores = {f"accuracy/{row['task']}/{row['template']}": row["accuracy"] for row in rows}
    by_task: dict[str, list[float]] = {}
    for row in rows:
        by_task.setdefault(row["task"], []).append(row["accuracy"])
    means = {task: sum(values) / len(values) for task, values in sorted(by_task.items())}
    scores.update({f"task_mean/{task}": mean for task, mean in means.items()})
    if means:
        scores["average"] = sum(means.values()) / len(means)
    return scores


def load_tokenizer(source: str):
    try:
        return AutoTokenizer.from_pretrained(source)
    except (OSError, ValueError) as err:
        raise MissingInputError(f"cannot load a tokenizer from {source}: neither a directory with tokenizer files "
                                f"nor a model name from_pretrained can load ({err}); pass --lm_name") from None


def _load_or_skip(source: EvalSource, step: int, checkpoint: Path | None, config: EvalConfig, skipped: list[dict]):
    """The checkpoint's model; in a `--saved_model_step -1` sweep an unreadable (truncated, corrupt, refused)
    checkpoint is reported, recorded in the results and skipped, so the others are still evaluated."""
    try:
        return source.load(checkpoint)
    except CheckpointReadError as err:
        if config.saved_model_step != -1:
            raise
        logger.warning("skipping unreadable checkpoint %s: %s", checkpoint, err)
        skipped.append({"step": step, "path": str(checkpoint), "error": str(err)})
        return None


def _absolute_if_local(name_or_path: str) -> str:
    return os.path.abspath(name_or_path) if Path(name_or_path).exists() else name_or_path


DESCRIPTION = """Zero-shot rank-classification evaluation of a run directory (ours or the authors' download, any method:
it is read from the run's args.json) or of a plain T5, on the held-out tasks of --preset (the paper's by default)
or the template dirs of --processed_dataset_paths.

    zemi-eval --model_name_or_path output/p3_finetuning/zemi_base --output_dir output/eval/zemi_base
"""


def main(argv: Sequence[str] | None = None, *, description: str = DESCRIPTION) -> Path:
    return run_evaluation(parse_evaluation(argv, description))
