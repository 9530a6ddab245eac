"""Typed, validated configuration of the training and evaluation entry points: dataclasses and parsing only.

Every option is a dataclass field documented once; the command line keeps the original flag names (and their
short aliases) so the authors' commands still work. The recipe's defaults come from `zemi.run.presets.PAPER`.
Impossible values fail at start-up with the flag's name; what needs files or models to check is checked in
`zemi.run.method`.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from zemi.errors import ConfigError, MissingInputError
from zemi.run.presets import PAPER

logger = logging.getLogger(__name__)

SCHEDULERS = ("linear", "cosine", "cosine_with_restarts", "polynomial", "constant", "constant_with_warmup")
# adamw_hf: the update rule of transformers.AdamW (v4.19), which the authors trained with; adamw_torch: torch's AdamW
OPTIMIZERS = ("adamw_hf", "adamw_torch")
# How Zemi's document slots are padded: max_length (ours: to --aug_max_length, a score independent of the batch) or
# longest (the authors': to the batch's longest document, which Zemi's resampler attends to)
DOCUMENT_PADDING = ("max_length", "longest")
DOCUMENT_PADDING_HELP = (
    "Zemi's document slots: max_length pads them to --aug_max_length, so a score does not depend on the batch; "
    "longest pads them to the batch's longest document, as the authors' collator does (their scores at batch 1, "
    "batch-dependent above it: the resampler attends to padding). Other methods mask padding and are unaffected")


def option(default: Any, help: str, *flags: str, **argparse_kwargs: Any):
    """A config field with its command-line flags (the first long flag is `--<field name>` unless given)."""
    return field(default=default, metadata={"help": help, "flags": flags, "argparse": argparse_kwargs})


@dataclass
class TrainConfig:
    # what to train
    output_dir: str = option(None, "Run directory: checkpoints, args.json, results.csv", "-o", "--output_dir", required=True)
    lm_name: str = option(None, "Backbone T5 (hub name or directory), e.g. google/t5-base-lm-adapt", "-m", "--lm_name",
                          "--model_name_or_path")
    model_architecture: str = option("T5", "SharedEncoderDecoder_MultiAug[_NoTanhGate|_FrozenAugEncoder], FiD, or T5")
    perceiver_config: str | None = option(None, "JSON of the fusion settings (training/perceiver_configs/)")
    concat_input_at_augmentation: bool = option(False, "Prefix every document with the input (FiD)", "-cia")
    concat_aug_num: int = option(0, "Concat baseline: documents appended to the input (0: No Aug)")
    fit_aug_num: int = option(-1, "Take this many documents and fold them into the model's slots (-1: off)")
    # data
    dataset_root_path: str = option(None, "The 30aug root holding <dataset_dir>/<template>/", "-dr", required=True)
    dataset_dir_names: list[str] = option((), "Training mixture dataset dirs", "-ddn", nargs="+")
    sample_n: int = option(PAPER.recipe["sample_n"], "Templates sampled per dataset (-1: all)", "-sample_n")
    templates_from: str | None = option(
        None, "A run's dataset_mixture_config.json (ours or the authors'): train on the template dirs its sampled_list "
        "records, found under --dataset_root_path, instead of drawing --sample_n per dataset")
    num_shots: int | None = option(None, "Training examples kept per template (few-shot)", "-ns")
    max_length: int = option(PAPER.recipe["max_length"], "Input tokens", "-il")
    aug_max_length: int = option(PAPER.recipe["aug_max_length"], "Tokens per document")
    target_max_length: int = option(PAPER.recipe["target_max_length"], "Target tokens", "-tl")
    input_eos: bool = option(False, "Append EOS to inputs and documents (T0 and Zemi do not)", "-ie")
    pad_to_max_length: bool = option(False, "Pad to the max lengths instead of the batch's longest", "-pml")
    document_padding: str = option(DOCUMENT_PADDING[0], DOCUMENT_PADDING_HELP, choices=DOCUMENT_PADDING)
    num_proc: int = option(1, "Processes for tokenisation")
    debug: bool = option(False, "Use only the first 100 training and validation examples", "-db")
    cache_dir: str | None = option(None, "Tokenised-dataset cache (default: <output_dir>/tokenized_cache)")
    config_name: str | None = option(None, "Not supported: the model is built from the backbone's own config.json", "-cf")
    tokenizer_name: str | None = option(None, "Tokenizer, if not the backbone's", "-tk")
    # recipe
    learning_rate: float = option(PAPER.recipe["learning_rate"], "AdamW learning rate", "-lr")
    fusion_learning_rate: float | None = option(
        None, "Learning rate of Zemi's new fusion modules (Perceiver resampler, cross-attention, gates); default: "
        "--learning_rate, as in the paper")
    weight_decay: float = option(PAPER.recipe["weight_decay"], "AdamW weight decay (0 for biases; T5's norm "
                                 "weights are decayed, as in the original)", "-wd")
    optimizer: str = option(OPTIMIZERS[0], "adamw_hf: the authors' transformers.AdamW rule (eps 1e-6 before the bias "
                            "correction, weight decay after the update); adamw_torch: torch.optim.AdamW (eps 1e-8)",
                            choices=OPTIMIZERS)
    lr_scheduler_type: str = option(PAPER.recipe["lr_scheduler_type"], "Learning-rate schedule", "-ls", choices=SCHEDULERS)
    warmup_ratio: float = option(PAPER.recipe["warmup_ratio"], "Warm-up steps as a fraction of all steps", "-wr")
    num_warmup_steps: int = option(0, "Warm-up steps (overrides --warmup_ratio when > 0)", "-ws")
    num_train_epochs: int = option(PAPER.recipe["num_train_epochs"], "Epochs", "-ep")
    max_train_steps: int | None = option(None, "Optimizer steps (overrides --num_train_epochs)", "-ms")
    per_device_train_batch_size: int = option(PAPER.batch_size["base"], "Training batch per process", "-tb")
    per_device_eval_batch_size: int = option(4, "Validation batch per process", "-eb")
    gradient_accumulation_steps: int = option(PAPER.recipe["gradient_accumulation_steps"], "Micro-batches per optimizer step", "-ga")
    seed: int = option(42, "Seed of template sampling, data order and initialisation", "-sd")
    loss_reduction: str = option("global_tokens", "global_tokens: mean over every target token of the global batch "
                                 "(independent of processes and accumulation); per_batch: the original's per-batch mean",
                                 choices=("global_tokens", "per_batch"))
    # checkpoints
    save_model: bool = option(True, "Kept for the original commands; a checkpoint is always written per epoch")
    checkpointing_steps: int | None = option(
        PAPER.recipe["checkpointing_steps"], "Also save the resumable training state every N optimizer steps (the newest "
        "is kept; 0: only at epoch ends)")
    resume_from_checkpoint: str | None = option(None, "'latest' or a state directory: continue an interrupted run")
    saved_model_dir: str | None = option(None, "Start from this run directory's checkpoint (with --saved_model_step)")
    saved_model_step: int | None = option(None, "Step of --saved_model_dir to start from")
    # speed
    mixed_precision: str = option("no", "no (fp32, as published), bf16 or fp16", choices=("no", "bf16", "fp16"))
    attn_implementation: str = option("sdpa", "Attention kernels of the T5 stacks", choices=("sdpa", "eager"))
    group_by_length: bool = option(False, "Batch examples of similar length together (less padding)")
    dataloader_num_workers: int = option(0, "Data-loading worker processes")
    torch_compile: bool = option(False, "torch.compile the model")
    gradient_checkpointing: bool = option(False, "Recompute activations in the backward pass (less memory)")
    # watching the run (train_log.csv and results.csv are always written)
    report_to: str | None = option(
        None, "Trackers for the per-step loss, learning rate, throughput and Zemi's gates, and the per-epoch "
        "validation loss: tensorboard (events in <output_dir>/tensorboard/), wandb, all (every installed one) or "
        "none; default: tensorboard when installed, plus wandb with --wandb_proj",
        choices=("tensorboard", "wandb", "all", "none"))
    wandb_proj: str | None = option(None, "W&B project (alone, it turns W&B on, as in the authors' scripts)", "-wb")
    wandb_run_name: str | None = option(None, "W&B run name (default: the output directory's name)", "-wbrn")
    # accepted for the original commands
    parallelize: bool = option(False, "Ignored (model parallelism of old transformers)", "-pa")
    use_slow_tokenizer: bool = option(False, "Ignored (transformers 5 tokenizers are fast)", "-st")
    use_processed_dataset: bool = option(False, "Ignored (the 30aug data is always pre-processed)")
    filter_dataset: bool = option(False, "Not supported: needs the authors' private task list", "-ftd")
    do_eval: bool = option(False, "Not supported here: use eval_original_task_only[_xattn]")

    def validate(self) -> None:
        positive = ("max_length", "aug_max_length", "target_max_length", "num_train_epochs", "per_device_train_batch_size",
                    "per_device_eval_batch_size", "gradient_accumulation_steps", "num_proc")
        for name in positive:
            if getattr(self, name) < 1:
                raise ConfigError(f"--{name} must be a positive integer, got {getattr(self, name)}")
        _check_document_counts(self.fit_aug_num, self.concat_aug_num)
        for name in ("num_warmup_steps", "dataloader_num_workers"):
            if getattr(self, name) < 0:
                raise ConfigError(f"--{name} must be >= 0, got {getattr(self, name)}")
        if self.num_shots is not None and self.num_shots < 1:
            raise ConfigError(f"--num_shots must be a positive number of examples per template, got {self.num_shots}")
        if self.saved_model_step is not None and self.saved_model_step < 0:
            raise ConfigError(f"--saved_model_step must name one checkpoint step (>= 0), got {self.saved_model_step}")
        if self.resume_from_checkpoint not in (None, "latest") and \
                not (Path(self.resume_from_checkpoint) / "trainer_state.json").is_file():
            raise ConfigError(f"--resume_from_checkpoint {self.resume_from_checkpoint} is not a training state "
                             "directory (no trainer_state.json); pass 'latest' or <output_dir>/checkpoints/step_N")
        if self.lm_name is None:
            raise ConfigError("--lm_name (or --model_name_or_path) is required: the backbone T5, e.g. google/t5-base-lm-adapt")
        if not self.dataset_dir_names:
            raise ConfigError("--dataset_dir_names is required: the training mixture's dataset dirs")
        if self.templates_from is not None and not Path(self.templates_from).is_file():
            raise MissingInputError(f"--templates_from {self.templates_from}: no such file (a run's "
                                    "dataset_mixture_config.json)")
        if self.sample_n == 0 or self.sample_n < -1:
            raise ConfigError(f"--sample_n must be -1 (all templates) or a positive number, got {self.sample_n}")
        if not 0 <= self.warmup_ratio <= 1:
            raise ConfigError(f"--warmup_ratio must be within [0, 1], got {self.warmup_ratio}")
        if self.learning_rate <= 0 or self.weight_decay < 0:
            raise ConfigError("--learning_rate must be positive and --weight_decay non-negative")
        if self.fusion_learning_rate is not None and self.fusion_learning_rate <= 0:
            raise ConfigError(f"--fusion_learning_rate must be positive, got {self.fusion_learning_rate}")
        if self.max_train_steps is not None and self.max_train_steps < 1:
            raise ConfigError(f"--max_train_steps must be positive, got {self.max_train_steps}")
        if self.checkpointing_steps is not None and self.checkpointing_steps < 0:
            raise ConfigError(f"--checkpointing_steps must be >= 0 (0: only at epoch ends), got "
                              f"{self.checkpointing_steps}")
        if (self.saved_model_dir is None) != (self.saved_model_step is None):
            raise ConfigError("--saved_model_dir and --saved_model_step go together")
        if self.filter_dataset:
            raise ConfigError("--filter_dataset needs the authors' private P3 task list and is not supported; "
                             "the 30aug data holds original-task templates only")
        if self.do_eval:
            raise ConfigError("--do_eval is not supported by the training scripts; run zemi.eval_original_task_only_xattn")
        if self.config_name:
            raise ConfigError(f"--config_name {self.config_name} is not supported: the model is built from the config.json "
                              "of --lm_name; pass a backbone directory that holds the config you want")
        for name in ("parallelize", "use_slow_tokenizer", "use_processed_dataset"):
            if getattr(self, name):
                logger.warning("--%s is accepted for compatibility and has no effect", name)


@dataclass
class EvalConfig:
    processed_dataset_paths: list[str] = option((), "Template dirs to evaluate (a shell glob of <root>/<task>/*)",
                                                "-pdp", nargs="+")
    model_name_or_path: str = option(None, "A run directory (ours or the authors' download) or a T5 name",
                                     required=True)
    saved_model_step: int = option(-1, "Checkpoint step to evaluate; -1: every step_* in the run directory",
                                   "--step_num")
    output_dir: str = option(None, "Where results.json and results.csv go", required=True)
    per_device_eval_batch_size: int = option(8, "Examples per batch and process (all their choices together)")
    max_length: int | None = option(None, "Input tokens (default: the run's args.json, else the paper's)")
    aug_max_length: int | None = option(None, "Tokens per document (default: the run's args.json, else the paper's)")
    target_max_length: int | None = option(None, "Answer-choice tokens (default: the run's args.json, else the paper's)")
    concat_input_at_augmentation: bool = option(False, "FiD: prefix documents with the input (also read from args.json)",
                                                "-cia")
    fit_aug_num: int | None = option(None, "Fold this many documents into the slots (default: the run's value)")
    concat_aug_num: int | None = option(None, "Concat baseline's documents (default: the run's args.json)")
    lm_name: str | None = option(None, "Backbone (for config and tokenizer) when args.json does not say")
    strict: bool = option(False, "Fail on a gold target missing from its answer choices instead of scoring choice 0")
    pad_to_max_length: bool = option(False, "Pad inputs and documents to the max lengths instead of the batch's "
                                     "longest (Zemi's documents are by default: --document_padding)")
    document_padding: str = option(DOCUMENT_PADDING[0], DOCUMENT_PADDING_HELP, choices=DOCUMENT_PADDING)
    mixed_precision: str = option("no", "no (fp32), bf16 or fp16", choices=("no", "bf16", "fp16"))
    cache_dir: str | None = option(None, "Tokenised-dataset cache (default: <output_dir>/tokenized_cache)")
    num_proc: int = option(1, "Processes for tokenisation")
    debug: bool = option(False, "Evaluate only the first 100 examples of each template")
    report_to: str | None = option(
        None, "Trackers for every template's accuracy, each task's mean and their average per checkpoint step: "
        "tensorboard (events in <output_dir>/tensorboard/), wandb, all (every installed one) or none; default: "
        "tensorboard when installed, plus wandb with --wandb_proj", choices=("tensorboard", "wandb", "all", "none"))
    wandb_proj: str | None = option(None, "W&B project (alone, it turns W&B on)", "-wb")
    wandb_run_name: str | None = option(None, "W&B run name (default: the output directory's name)", "-wbrn")
    tokenizer_name: str | None = option(None, "Tokenizer, if not the run's (or the backbone's)")
    # accepted for the authors' commands
    model_architecture: str | None = option(None, "Ignored, as in the authors' script: the run's args.json decides")
    use_slow_tokenizer: bool = option(False, "Ignored (transformers 5 tokenizers are fast)")
    parallelize: bool = option(False, "Ignored (model parallelism of old transformers)")
    config_name: str | None = option(None, "Not supported: the model's config comes from the run directory")
    filter_dataset: bool = option(False, "Not supported: needs the authors' private task list", "-ftd")
    error_analysis_dir: str | None = option(
        None, "Also write the authors' error-analysis files: DIR/<output_dir's name>/step_N/<task>__<template>/"
        "prediction_target_indices.json and a link `dataset` to the template's validation split (every example's "
        "scores are always in <output_dir>/predictions/)")
    eval_average: bool = option(False, "Not supported: evaluates one concatenation of all templates")
    calibrate: bool = option(False, "Not supported: the authors' calibration needs their private template table")

    def validate(self) -> None:
        unsupported = {
            "config_name": "the model's config comes from the run directory (its args.json and checkpoints)",
            "filter_dataset": "it needs the authors' private P3 task list; the 30aug data holds original-task "
                              "templates only",
            "eval_average": "the accuracy of a task's templates concatenated is not written; it equals the mean over "
                            "the task's templates (same examples in each) that zemi.report computes",
            "calibrate": "the authors' calibration (caliberation.py) needs their private template table and is not "
                         "implemented",
        }
        for name, why in unsupported.items():
            if getattr(self, name):
                raise ConfigError(f"--{name} is not supported: {why}")
        for name in ("use_slow_tokenizer", "parallelize"):
            if getattr(self, name):
                logger.warning("--%s is accepted for compatibility and has no effect", name)
        if self.model_architecture:
            logger.warning("--model_architecture is ignored, as in the authors' script: the run's args.json decides")
        if not self.processed_dataset_paths:
            raise ConfigError("--processed_dataset_paths is required: the template dirs to evaluate")
        if self.per_device_eval_batch_size < 1:
            raise ConfigError(f"--per_device_eval_batch_size must be positive, got {self.per_device_eval_batch_size}")
        for name in ("max_length", "aug_max_length", "target_max_length"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ConfigError(f"--{name} must be positive, got {value}")
        if self.num_proc < 1:
            raise ConfigError(f"--num_proc must be a positive integer, got {self.num_proc}")
        if self.saved_model_step < -1:
            raise ConfigError(f"--saved_model_step must be -1 (every checkpoint) or a step, got {self.saved_model_step}")
        _check_document_counts(self.fit_aug_num, self.concat_aug_num)


def _check_document_counts(fit_aug_num: int | None, concat_aug_num: int | None) -> None:
    if fit_aug_num is not None and fit_aug_num != -1 and fit_aug_num < 1:
        raise ConfigError(f"--fit_aug_num must be -1 (off) or a positive number of documents to fold into the model's "
                         f"slots, got {fit_aug_num}")
    if concat_aug_num is not None and concat_aug_num < 0:
        raise ConfigError(f"--concat_aug_num must be >= 0 (0: No Aug), got {concat_aug_num}")


def build_parser(config_class: type, description: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=description)
    for f in dataclasses.fields(config_class):
        meta = f.metadata
        flags = [flag for flag in meta["flags"]]
        if f"--{f.name}" not in flags:
            flags.insert(0, f"--{f.name}")
        kwargs = dict(meta["argparse"], dest=f.name, help=meta["help"])
        if f.default not in (None, (), False) and "default" not in meta["help"]:
            kwargs["help"] += " (default: %(default)s)"  # --help shows every default
        if isinstance(f.default, bool):
            kwargs.update(action="store_true", default=f.default)
        else:
            kwargs.setdefault("type", _parse_type(f.type))
            if "required" not in kwargs:
                kwargs["default"] = list(f.default) if isinstance(f.default, tuple) else f.default
        parser.add_argument(*flags, **kwargs)
    return parser


def _parse_type(annotation: str):
    base = annotation.replace(" | None", "").replace("list[", "").rstrip("]")
    return {"str": str, "int": int, "float": float}[base]


def parse_config(config_class: type, argv: Sequence[str] | None, description: str):
    args = build_parser(config_class, description).parse_args(argv)
    config = config_class(**vars(args))
    config.validate()
    return config
