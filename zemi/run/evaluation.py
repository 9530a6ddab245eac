"""Zero-shot rank classification (the T0 protocol), implemented once for every model.

Each answer choice is scored by the sum of its tokens' log-probabilities (EOS included, no length normalisation)
and the best-scoring choice is the prediction. The input and its documents are encoded once per example; all
choices of a batch are decoded in one pass against copies of their example's encoder states.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Sequence

import torch
from accelerate import Accelerator
from torch.utils.data import DataLoader
from transformers import AutoTokenizer, DynamicCache, EncoderDecoderCache
from transformers.modeling_outputs import BaseModelOutput

from zemi.data.collate import Collator
from zemi.data.mixture import DataError, EvalTemplate, scan_eval_templates
from zemi.data.processing import Featurizer, MaxLengths
from zemi.data.tokenized import tokenize
from zemi.errors import ConfigError
from zemi.io import write_csv_atomic, write_json_atomic
from zemi.models.checkpoint_files import CheckpointReadError
from zemi.models.modeling_t5 import T5WithOwnLMHead, model_inputs
from zemi.run.cli import setup_logging
from zemi.run.config import EvalConfig, parse_config
from zemi.run.method import Method, collator_for
from zemi.run.run_directory import RunDirectory

logger = logging.getLogger(__name__)

def _choice_scores(logits: torch.Tensor, choice_ids: torch.Tensor, choice_mask: torch.Tensor) -> torch.Tensor:
    log_probs = logits.float().log_softmax(-1).gather(-1, choice_ids.unsqueeze(-1)).squeeze(-1)  # (N, T)
    return (log_probs * choice_mask).sum(-1)  # (N,)


def _best_choice(scores: torch.Tensor, owner: torch.Tensor, num_choices: torch.Tensor) -> torch.Tensor:
    """Arg-max over each example's own choices (the first one on ties, like torch.argmax)."""
    position = torch.arange(len(owner), device=owner.device) - (torch.cumsum(num_choices, 0) - num_choices)[owner]
    table = scores.new_full((len(num_choices), int(num_choices.max())), float("-inf"))
    table[owner, position] = scores
    return table.argmax(-1)


def cross_attention_cache(model, states: torch.Tensor, owner: torch.Tensor) -> EncoderDecoderCache:
    """Every decoder layer's cross-attention keys and values, projected once per example and shared by its choices
    (the decoder would otherwise project the same encoder states again for every answer choice)."""
    cross = DynamicCache(config=model.decoder.config)
    for index, block in enumerate(model.decoder.block):
        attention = block.layer[1].EncDecAttention
        shape = (*states.shape[:-1], -1, attention.key_value_proj_dim)
        keys = attention.k(states).view(shape).transpose(1, 2)  # (B, heads, S, d_kv)
        values = attention.v(states).view(shape).transpose(1, 2)
        cross.update(keys.index_select(0, owner), values.index_select(0, owner), index)
    return EncoderDecoderCache(DynamicCache(config=model.decoder.config), cross)


@torch.no_grad()
def rank_choices(model, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """Predicted choice index per example: encode each example once, decode all its choices together."""
    encoded = model.encode(**model_inputs(batch))
    owner = batch["choice_owner"]
    logits = model(
        encoder_outputs=BaseModelOutput(last_hidden_state=encoded.hidden_states.index_select(0, owner)),  # (N, S, D)
        attention_mask=encoded.attention_mask.index_select(0, owner),
        decoder_input_ids=model._shift_right(batch["choice_ids"]),
        past_key_values=cross_attention_cache(model, encoded.hidden_states, owner),
        use_cache=True,
    ).logits
    return _best_choice(_choice_scores(logits, batch["choice_ids"], batch["choice_mask"]), owner, batch["num_choices"])


@torch.no_grad()
def rank_choices_reencoding(model, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """The authors' computation: the full model runs once per (example, choice), re-encoding input and documents.
    Kept as the reference for tests and for the benchmark's reference mode."""
    owner = batch["choice_owner"]
    repeated = {name: value.index_select(0, owner) for name, value in model_inputs(batch).items()}
    logits = model(**repeated, decoder_input_ids=model._shift_right(batch["choice_ids"]), use_cache=False).logits
    return _best_choice(_choice_scores(logits, batch["choice_ids"], batch["choice_mask"]), owner, batch["num_choices"])


@dataclass
class TemplateScore:
    task: str
    template: str
    accuracy: float
    num_examples: int
    gold_not_in_choices: int  # scored against choice 0, as the original does


def accuracy_of(predictions: torch.Tensor, targets: torch.Tensor) -> float:
    return int((predictions == targets).sum()) / len(targets) if len(targets) else float("nan")


# ---------------------------------------------------------------------------------------------------------------
# Evaluating checkpoints on template directories (the entry points eval_original_task_only[_xattn]).


@dataclass
class EvalSource:
    """What to evaluate: a run directory's checkpoints, or a plain T5 (no fine-tuning)."""

    name: str
    run: RunDirectory | None
    method: Method
    lengths: MaxLengths
    tokenizer_source: str

    @classmethod
    def from_config(cls, config: EvalConfig) -> EvalSource:
        path = Path(config.model_name_or_path)
        run = RunDirectory.open(path) if path.is_dir() else None
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
                                  perceiver_values=run.perceiver_config.to_dict() if run and run.perceiver_config
                                  else None)
        lengths = MaxLengths(setting("max_length", 1024), setting("aug_max_length", 256),
                             setting("target_max_length", 256))
        tokenizer_source = config.tokenizer_name or (run.tokenizer_source() if run else
                                                     (config.lm_name or config.model_name_or_path))
        name = path.name if run else config.model_name_or_path
        return cls(name, run, method, lengths, tokenizer_source)

    def checkpoints(self, step: int) -> list[tuple[int, Path | None]]:
        """The checkpoints to evaluate, each checked before any data or weights are loaded: one whose keys or
        document slots do not fit the run fails here; an unreadable one fails here unless a sweep will skip it."""
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

    def load(self, checkpoint: Path | None, model_name: str):
        return self.run.load_model(checkpoint) if self.run else T5WithOwnLMHead.from_pretrained(model_name)


class GoldNotInChoicesError(ConfigError):
    """--strict: a gold target that is not among its example's answer choices."""


def evaluate_template(model, template: EvalTemplate, featurizer: Featurizer, collator: Collator,
                      accelerator: Accelerator, config: EvalConfig, cache_dir: Path) -> TemplateScore:
    data = tokenize(template.dataset, featurizer.eval_features, cache_dir, num_proc=config.num_proc)
    if config.debug:
        data = data.select(range(min(100, len(data))))
    if config.strict and not all(data["gold_in_choices"]):
        rows = [i for i, ok in enumerate(data["gold_in_choices"]) if not ok]
        raise GoldNotInChoicesError(f"{template.path} [validation]: {len(rows)} rows {rows[:20]}: the gold target "
                                    "(targets_pretokenized, stripped) is not among answer_choices (drop --strict to "
                                    "score them against choice 0, as the original does)")
    # Longest first: similar lengths share a batch (less padding), and memory peaks at once, not at the end.
    lengths = data["length"]
    order = sorted(range(len(data)), key=lambda i: -lengths[i])
    loader = accelerator.prepare(DataLoader(data.select(order), batch_size=config.per_device_eval_batch_size,
                                            collate_fn=collator))
    predictions, targets, gold_in = [], [], []
    for batch in loader:
        with accelerator.autocast():
            predicted = rank_choices(model, batch)
        gathered = accelerator.gather_for_metrics((predicted, batch["target"], batch["gold_in_choices"]))
        for store, values in zip((predictions, targets, gold_in), gathered):
            store.append(values.cpu())
    predictions, targets, gold_in = (torch.cat(x) if x else torch.zeros(0) for x in (predictions, targets, gold_in))
    missing = int((~gold_in.bool()).sum())
    if missing:
        logger.warning("%s: %d gold targets are not among their answer choices; scored against choice 0 (as the "
                       "original does)", template.path, missing)
    return TemplateScore(template.task, template.name, accuracy_of(predictions, targets), len(targets), missing)


def run_evaluation(config: EvalConfig) -> Path:
    accelerator = Accelerator(mixed_precision=config.mixed_precision)
    setup_logging(accelerator)
    output_dir = Path(config.output_dir)
    source = EvalSource.from_config(config)
    checkpoints = source.checkpoints(config.saved_model_step)
    templates, skipped_templates = scan_eval_templates(config.processed_dataset_paths,
                                                       documents_read=source.method.rules.documents_read)
    if not templates:
        raise DataError(f"none of {config.processed_dataset_paths} is an evaluable template directory")
    tokenizer = AutoTokenizer.from_pretrained(source.tokenizer_source)
    featurizer = Featurizer(tokenizer, source.method.rules, source.lengths,
                            input_eos=bool(source.run and source.run.args.get("input_eos")))
    collator = collator_for(source.method, source.lengths, tokenizer.pad_token_id,
                            pad_to_max_length=config.pad_to_max_length)
    cache_dir = Path(config.cache_dir or output_dir / "tokenized_cache")
    rows = _previous_rows(output_dir / "results.json", source)
    done = {(row["step"], row["template_path"]) for row in rows}
    skipped = {"templates": [{"path": str(t.path), "reason": t.reason} for t in skipped_templates], "checkpoints": []}
    for step, checkpoint in checkpoints:
        todo = [t for t in templates if (step, str(t.path)) not in done]
        if not todo:
            continue
        model = _load_or_skip(source, step, checkpoint, config, skipped["checkpoints"])
        if model is None:
            continue
        model.to(accelerator.device).eval()
        for template in todo:
            score = evaluate_template(model, template, featurizer, collator, accelerator, config, cache_dir)
            rows.append({"step": step, "template_path": str(template.path), **asdict(score)})
            logger.info("step %s %s/%s: accuracy %.4f (%d examples)", step, score.task, score.template,
                        score.accuracy, score.num_examples)
        if accelerator.is_main_process:
            _write_results(output_dir, source, rows, skipped)
        del model
    if not rows:
        raise CheckpointReadError(f"no checkpoint of {config.model_name_or_path} could be read: "
                                  f"{[entry['error'] for entry in skipped['checkpoints']]}")
    if accelerator.is_main_process:
        _write_results(output_dir, source, rows, skipped)
    accelerator.wait_for_everyone()
    return output_dir


def _load_or_skip(source: EvalSource, step: int, checkpoint: Path | None, config: EvalConfig, skipped: list[dict]):
    """The checkpoint's model; in a `--saved_model_step -1` sweep an unreadable (truncated, corrupt, refused)
    checkpoint is reported, recorded in the results and skipped, so the others are still evaluated."""
    try:
        return source.load(checkpoint, config.model_name_or_path)
    except CheckpointReadError as err:
        if config.saved_model_step != -1:
            raise
        logger.warning("skipping unreadable checkpoint %s: %s", checkpoint, err)
        skipped.append({"step": step, "path": str(checkpoint), "error": str(err)})
        return None


def _previous_rows(results_file: Path, source: EvalSource) -> list[dict]:
    """Rows of an earlier, interrupted evaluation of the same model into the same directory."""
    if not results_file.is_file():
        return []
    previous = json.loads(results_file.read_text())
    return previous["results"] if previous.get("model") == _model_id(source) else []


def _model_id(source: EvalSource) -> str:
    return str(source.run.path.resolve()) if source.run else source.name


def _write_results(output_dir: Path, source: EvalSource, rows: list[dict], skipped: dict[str, list]) -> None:
    output_dir.mkdir(parents=True, exist_ok=True)
    write_json_atomic(output_dir / "results.json", {
        "model": _model_id(source), "method": source.name, "architecture": source.method.architecture,
        "results": rows, "skipped_templates": skipped["templates"], "skipped_checkpoints": skipped["checkpoints"]})
    write_csv_atomic(output_dir / "results.csv", rows)


def main(argv: Sequence[str] | None = None) -> Path:
    return run_evaluation(parse_config(EvalConfig, argv, "Zero-shot rank-classification evaluation"))
