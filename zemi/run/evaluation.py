"""Zero-shot rank classification (the T0 protocol), implemented once for every model.

Each answer choice is scored by the sum of its tokens' log-probabilities (EOS included, no length normalisation)
and the best-scoring choice is the prediction. The input and its documents are encoded once per example; all
choices of a batch are decoded in one pass against copies of their example's encoder states, and only the choice
tokens' log-probabilities are computed (never the (choices, tokens, vocabulary) logits).
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Sequence

import torch
from accelerate import Accelerator
from torch.utils.data import DataLoader
from tqdm.auto import tqdm
from transformers import AutoTokenizer, DynamicCache, EncoderDecoderCache, T5Config

from zemi.data.collate import Collator
from zemi.data.mixture import DataError, EvalTemplate, scan_eval_templates
from zemi.data.processing import Featurizer, MaxLengths
from zemi.data.tokenized import tokenize
from zemi.errors import ConfigError, MissingInputError
from zemi.io import write_csv_atomic, write_json_atomic
from zemi.models.checkpoint_files import CheckpointReadError, check_weights_fit, checkpoint_shapes
from zemi.models.modeling_t5 import T5WithOwnLMHead, model_inputs
from zemi.run.cli import setup_logging
from zemi.run.config import EvalConfig, parse_config
from zemi.run.method import Method, collator_for
from zemi.run.presets import PAPER
from zemi.run.run_directory import RunDirectory
from zemi.run.tracking import end_tracking, log_metrics, make_accelerator, start_tracking

logger = logging.getLogger(__name__)

# Elements of one (choice tokens, vocabulary slice) block of logits in the fused head: bounds its memory.
FUSED_BLOCK_ELEMENTS = 2**22


def _choice_scores(logits: torch.Tensor, choice_ids: torch.Tensor, choice_mask: torch.Tensor) -> torch.Tensor:
    """The reference head: log-softmax over the whole vocabulary at every position, then the choice tokens'."""
    log_probs = logits.float().log_softmax(-1).gather(-1, choice_ids.unsqueeze(-1)).squeeze(-1)  # (N, T)
    return (log_probs * choice_mask).sum(-1)  # (N,)


def fused_choice_scores(hidden: torch.Tensor, lm_head: torch.Tensor, choice_ids: torch.Tensor,
                        choice_mask: torch.Tensor, *, block_elements: int = FUSED_BLOCK_ELEMENTS) -> torch.Tensor:
    """`_choice_scores(hidden @ lm_head.T, ...)` without the (N, T, V) logits: only the real (unpadded) choice
    tokens are scored, against vocabulary slices of at most `block_elements` logits at a time; each slice gives
    its share of the log-softmax normaliser (a logsumexp) and the logits of the targets that fall in it."""
    keep = choice_mask.bool()
    states, targets = hidden[keep], choice_ids[keep]  # (K, D), (K,): the choice tokens only
    width = max(1, block_elements // max(len(states), 1))
    chosen = states.new_zeros(len(states), dtype=torch.float32)  # (K,)
    normalisers = []
    for start in range(0, lm_head.shape[0], width):
        logits = (states @ lm_head[start:start + width].T).float()  # (K, width)
        normalisers.append(logits.logsumexp(-1))
        inside = (targets >= start) & (targets < start + width)
        chosen[inside] = logits[inside, targets[inside] - start]
    token_scores = chosen - torch.stack(normalisers, -1).logsumexp(-1)  # (K,)
    owner = torch.arange(len(choice_ids), device=hidden.device).unsqueeze(1).expand_as(choice_ids)[keep]
    return token_scores.new_zeros(len(choice_ids)).index_add_(0, owner, token_scores)  # (N,)


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
def choice_scores(model, batch: dict[str, torch.Tensor], *, fused: bool = True) -> torch.Tensor:
    """Summed log-probability of every answer choice (N,): each example encoded once, all its choices decoded
    together; `fused=False` computes the full-vocabulary logits first (the reference head)."""
    encoded = model.encode(**model_inputs(batch))
    owner = batch["choice_owner"]
    states = encoded.hidden_states.index_select(0, owner)  # (N, S, D)
    decoded = model.decoder(
        input_ids=model._shift_right(batch["choice_ids"]),
        encoder_hidden_states=states,
        encoder_attention_mask=encoded.attention_mask.index_select(0, owner),
        past_key_values=cross_attention_cache(model, encoded.hidden_states, owner),
        use_cache=True,
    ).last_hidden_state  # (N, T, D)
    if model.config.scale_decoder_outputs:  # tied embeddings (original T5), as T5ForConditionalGeneration does
        decoded = decoded * model.model_dim**-0.5
    if fused:
        return fused_choice_scores(decoded, model.lm_head.weight, batch["choice_ids"], batch["choice_mask"])
    return _choice_scores(model.lm_head(decoded), batch["choice_ids"], batch["choice_mask"])


@torch.no_grad()
def rank_choices(model, batch: dict[str, torch.Tensor], *, fused: bool = True) -> torch.Tensor:
    """Predicted choice index per example: encode each example once, decode all its choices together."""
    scores = choice_scores(model, batch, fused=fused)
    return _best_choice(scores, batch["choice_owner"], batch["num_choices"])


@torch.no_grad()
def rank_choices_reencoding(model, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """The authors' computation: the full model runs once per (example, choice), re-encoding input and documents,
    and scores the full-vocabulary logits. Kept as the reference for tests and for the benchmark's reference mode."""
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
    chance: float  # accuracy of guessing: the mean over the examples of 1 / their number of answer choices


def accuracy_of(predictions: torch.Tensor, targets: torch.Tensor) -> float:
    return int((predictions == targets).sum()) / len(targets) if len(targets) else float("nan")


# ---------------------------------------------------------------------------------------------------------------
# Evaluating checkpoints on template directories (the entry points eval_original_task_only[_xattn]).


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
                          "zemi.convert_original_checkpoint")
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
                                  perceiver_values=run.perceiver_config.to_dict() if run and run.perceiver_config
                                  else None)
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


def evaluate_template(model, template: EvalTemplate, featurizer: Featurizer, collator: Collator,
                      accelerator: Accelerator, config: EvalConfig, cache_dir: Path) -> TemplateScore:
    """Accuracy of rank classification on one template directory's validation split."""
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
    gathered: tuple[list[torch.Tensor], ...] = ([], [], [], [])
    batches = tqdm(loader, desc=f"{template.task}/{template.name}", unit="batch", leave=False,
                   disable=not accelerator.is_local_main_process)
    for batch in batches:
        with accelerator.autocast():
            predicted = rank_choices(model, batch)
        values = accelerator.gather_for_metrics((predicted, batch["target"], batch["gold_in_choices"],
                                                 batch["num_choices"]))
        for store, value in zip(gathered, values):
            store.append(value.cpu())
    predictions, targets, gold_in, num_choices = (torch.cat(x) if x else torch.zeros(0) for x in gathered)
    missing = int((~gold_in.bool()).sum())
    if missing:
        logger.warning("%s: %d gold targets are not among their answer choices; scored against choice 0 (as the "
                       "original does)", template.path, missing)
    chance = float((1 / num_choices.double()).mean()) if len(num_choices) else float("nan")
    return TemplateScore(template.task, template.name, accuracy_of(predictions, targets), len(targets), missing,
                         chance)


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
    tokenizer = load_tokenizer(source.tokenizer_source)
    featurizer = Featurizer(tokenizer, source.method.rules, source.lengths,
                            input_eos=bool(source.run and source.run.args.get("input_eos")))
    collator = collator_for(source.method, source.lengths, tokenizer.pad_token_id,
                            pad_to_max_length=config.pad_to_max_length, document_padding=config.document_padding)
    cache_dir = Path(config.cache_dir or output_dir / "tokenized_cache")
    rows = _previous_rows(output_dir / "results.json", source)
    done = {(row["step"], row["template_path"]) for row in rows}
    skipped = {"templates": [{"path": str(t.path), "reason": t.reason} for t in skipped_templates], "checkpoints": []}
    start_tracking(accelerator, {"model": _model_id(source), "method": source.name,
                                 "architecture": source.method.architecture, **asdict(config)})
    todo = {step: [t for t in templates if (step, str(t.path)) not in done] for step, _ in checkpoints}
    progress = tqdm(total=sum(map(len, todo.values())), desc="evaluating", unit="template",
                    disable=not accelerator.is_local_main_process)
    for step, checkpoint in checkpoints:
        if not todo[step]:
            continue
        model = _load_or_skip(source, step, checkpoint, config, skipped["checkpoints"])
        if model is None:
            progress.update(len(todo[step]))
            continue
        model.to(accelerator.device).eval()
        for template in todo[step]:
            start = time.perf_counter()
            score = evaluate_template(model, template, featurizer, collator, accelerator, config, cache_dir)
            rows.append({"step": step, "template_path": str(template.path), **asdict(score)})
            rate = score.num_examples / (time.perf_counter() - start)
            progress.set_postfix(step=step, template=f"{score.task}/{score.template}", examples_per_s=f"{rate:.1f}")
            progress.update()
            logger.info("step %s %s/%s: accuracy %.4f (chance %.4f, %d examples, %.1f examples/s)", step, score.task,
                        score.template, score.accuracy, score.chance, score.num_examples, rate)
        log_metrics(accelerator, tracked_scores([row for row in rows if row["step"] == step]), step)
        if accelerator.is_main_process:
            _write_results(output_dir, source, rows, skipped)
        del model
    progress.close()
    if not rows:
        raise CheckpointReadError(f"no checkpoint of {config.model_name_or_path} could be read: "
                                  f"{[entry['error'] for entry in skipped['checkpoints']]}")
    if accelerator.is_main_process:
        _write_results(output_dir, source, rows, skipped)
    accelerator.wait_for_everyone()
    end_tracking(accelerator)
    return output_dir


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


def _previous_rows(results_file: Path, source: EvalSource) -> list[dict]:
    """Rows of an earlier, interrupted evaluation of the same model into the same directory."""
    if not results_file.is_file():
        return []
    previous = json.loads(results_file.read_text())
    return previous["results"] if previous.get("model") == _model_id(source) else []


def _model_id(source: EvalSource) -> str:
    if source.run:
        return str(source.run.path.resolve())
    return source.name if source.kind == "hub" else str(Path(source.location).resolve().parent / source.name)


def _write_results(output_dir: Path, source: EvalSource, rows: list[dict], skipped: dict[str, list]) -> None:
    output_dir.mkdir(parents=True, exist_ok=True)
    write_json_atomic(output_dir / "results.json", {
        "model": _model_id(source), "method": source.name, "architecture": source.method.architecture,
        "results": rows, "skipped_templates": skipped["templates"], "skipped_checkpoints": skipped["checkpoints"]})
    write_csv_atomic(output_dir / "results.csv", rows)


def main(argv: Sequence[str] | None = None) -> Path:
    return run_evaluation(parse_config(EvalConfig, argv, "Zero-shot rank-classification evaluation"))
