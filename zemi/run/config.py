"""Typed, validated configuration of training and evaluation: dataclasses, and their parsing with the preset.

Every option is a dataclass field documented once (`zemi.cli.option`); what both commands take is written once in
`RunOptions`. The command line keeps the authors' flag names and short aliases, so their commands still work.
`--preset` and `--model_size` (`zemi.run.presets`) give every other option its default; a flag given explicitly
wins. Impossible values fail at start-up with the flag's name; what needs files or models to check is checked in
`zemi.run.method`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from zemi.cli import option, parse_config
from zemi.errors import ConfigError, MissingInputError
from zemi.run.presets import PAPER, PresetOptions, SizedPresetOptions, resolve

logger = logging.getLogger(__name__)

SCHEDULERS = ("linear", "cosine", "cosine_with_restarts", "polynomial", "constant", "constant_with_warmup")
# adamw_hf: the update rule of transformers.AdamW (v4.19), which the authors trained with; adamw_torch: torch's AdamW
OPTIMIZERS = ("adamw_hf", "adamw_torch")
# How Zemi's document slots are padded: max_length (ours: to --aug_max_length, a score independent of the batch) or
# longest (the authors': to the batch's longest document, which Zemi's resampler attends to)
DOCUMENT_PADDING = ("max_length", "longest")
TRACKERS = ("tensorboard", "wandb", "all", "none")
# The one architecture without document slots (No Aug, Concat): the preset's perceiver config is not its.
PLAIN_T5 = "T5"


@dataclass
class RunOptions:
    """What training and evaluation both take: where files go, the data root, how texts are read and padded,
    precision, trackers, and the authors' flags that are accepted without effect."""

    output_dir: str = option(None, "Where the run's files go (training: the run directory with its checkpoints, "
                             "args.json and results.csv; evaluation: results.json, results.csv and predictions/)",
                             "-o", required=True)
    dataset_root_path: str = option(None, "The 30aug root holding <dataset_dir>/<template>/", "-dr")
    per_device_eval_batch_size: int = option(PAPER.eval_batch_size, "Examples per batch and process in validation "
                                             "and evaluation (all of an example's answer choices together)", "-eb",
                                             minimum=1)
    concat_input_at_augmentation: bool = option(False, "FiD: prefix every document with the input (evaluation also "
                                                "reads it from the run's args.json)", "-cia")
    pad_to_max_length: bool = option(False, "Pad inputs and documents to the max lengths instead of the batch's "
                                     "longest (Zemi's documents are by default: --document_padding)", "-pml")
    document_padding: str = option(
        DOCUMENT_PADDING[0], "Zemi's document slots: max_length pads them to --aug_max_length, so a score does not "
        "depend on the batch; longest pads them to the batch's longest document, as the authors' collator does (their "
        "scores at batch 1, batch-dependent above it: the resampler attends to padding). Other methods mask padding "
        "and are unaffected", choices=DOCUMENT_PADDING)
    tokenizer_name: str | None = option(None, "Tokenizer, if not the run's (or the backbone's)", "-tk")
    cache_dir: str | None = option(None, "Tokenised-dataset cache (default: <output_dir>/tokenized_cache)")
    num_proc: int = option(1, "Processes for tokenisation", minimum=1)
    debug: bool = option(False, "Use only the first 100 examples (of the training and validation data; of each "
                         "evaluated template); also keeps the traceback of an error", "-db")
    mixed_precision: str = option("no", "no (fp32, as published), bf16 or fp16", choices=("no", "bf16", "fp16"))
    report_to: str | None = option(
        None, "Trackers: tensorboard (events in <output_dir>/tensorboard/), wandb, all (every installed one) or none; "
        "default: tensorboard when installed, plus wandb with --wandb_proj. Training tracks the per-step loss, "
        "learning rate, throughput and Zemi's gates, and the per-epoch validation loss; evaluation every template's "
        "accuracy, each task's mean and their average per checkpoint step", choices=TRACKERS)
    wandb_proj: str | None = option(None, "W&B project (alone, it turns W&B on, as in the authors' scripts)", "-wb")
    wandb_run_name: str | None = option(None, "W&B run name (default: the output directory's name)", "-wbrn")
    # accepted for the authors' commands
    config_name: str | None = option(None, "Not supported: the model's config comes from the backbone or the run "
                                     "directory", "-cf")
    filter_dataset: bool = option(False, "Not supported: needs the authors' private task list", "-ftd")
    parallelize: bool = option(False, "Ignored (model parallelism of old transformers)", "-pa")
    use_slow_tokenizer: bool = option(False, "Ignored (transformers 5 tokenizers are fast)", "-st")

    def refuse(self, unsupported: dict[str, str]) -> None:
        """A ConfigError for the first of `unsupported` (flag name -> why) that is set; a warning for each flag that
        is accepted without effect."""
        unsupported = {"filter_dataset": "it needs the authors' private P3 task list; the 30aug data holds "
                                         "original-task templates only", **unsupported}
        for name, why in unsupported.items():
            if getattr(self, name):
                raise ConfigError(f"--{name} is not supported: {why}")
        for name in ("parallelize", "use_slow_tokenizer"):
            if getattr(self, name):
                logger.warning("--%s is accepted for compatibility and has no effect", name)


@dataclass
class TrainConfig(RunOptions):
    # what to train
    lm_name: str = option(None, "Backbone T5 (hub name or directory)", "-m",
                          "--model_name_or_path")
    model_architecture: str = option(PLAIN_T5, "SharedEncoderDecoder_MultiAug[_NoTanhGate|_FrozenAugEncoder] (Zemi), "
                                     "FiD, or T5 (No Aug, Concat)")
    perceiver_config: str | None = option(None, "JSON of the fusion settings of FiD and Zemi (default: the "
                                          "preset's for the model size)")
    concat_aug_num: int = option(0, "Concat baseline: documents appended to the input (0: No Aug)", minimum=0)
    fit_aug_num: int = option(-1, "Take this many documents and fold them into the model's slots (-1: off)")
    # data
    dataset_dir_names: list[str] = option((), "Training mixture dataset dirs", "-ddn", nargs="+")
    sample_n: int = option(PAPER.recipe["sample_n"], "Templates sampled per dataset (-1: all)", "-sample_n")
    templates_from: str | None = option(
        None, "A run's dataset_mixture_config.json (ours or the authors'): train on the template dirs its sampled_list "
        "records, found under --dataset_root_path, instead of drawing --sample_n per dataset (a --num_shots subset "
        "is drawn anew: it is not recorded)")
    num_shots: int | None = option(None, "Training examples kept per template (few-shot)", "-ns", minimum=1)
    max_length: int = option(PAPER.recipe["max_length"], "Input tokens", "-il", minimum=1)
    aug_max_length: int = option(PAPER.recipe["aug_max_length"], "Tokens per document", minimum=1)
    target_max_length: int = option(PAPER.recipe["target_max_length"], "Target tokens", "-tl", minimum=1)
    input_eos: bool = option(False, "Append EOS to inputs and documents (T0 and Zemi do not)", "-ie")
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
    lr_scheduler_type: str = option(PAPER.recipe["lr_scheduler_type"], "Learning-rate schedule", "-ls",
                                    choices=SCHEDULERS)
    warmup_ratio: float = option(PAPER.recipe["warmup_ratio"], "Warm-up steps as a fraction of all steps", "-wr")
    num_warmup_steps: int = option(0, "Warm-up steps (overrides --warmup_ratio when > 0)", "-ws", minimum=0)
    num_train_epochs: int = option(PAPER.recipe["num_train_epochs"], "Epochs", "-ep", minimum=1)
    max_train_steps: int | None = option(None, "Optimizer steps (overrides --num_train_epochs)", "-ms", minimum=1)
    per_device_train_batch_size: int = option(PAPER.batch_size["base"], "Training batch per process", "-tb",
                                              minimum=1)
    gradient_accumulation_steps: int = option(PAPER.recipe["gradient_accumulation_steps"],
                                              "Micro-batches per optimizer step", "-ga", minimum=1)
    seed: int = option(42, "Seed of template sampling, data order and initialisation", "-sd")
    loss_reduction: str = option("global_tokens", "global_tokens: mean over every target token of the global batch "
                                 "(independent of processes and accumulation); per_batch: the original's per-batch mean",
                                 choices=("global_tokens", "per_batch"))
    # checkpoints
    save_model: bool = option(True, "Kept for the original commands; a checkpoint is always written per epoch")
    checkpointing_steps: int | None = option(
        PAPER.recipe["checkpointing_steps"], "Also save the resumable training state every N optimizer steps (the "
        "newest is kept; 0: only at epoch ends)", minimum=0)
    resume_from_checkpoint: str | None = option(None, "'latest' or a state directory: continue an interrupted run")
    saved_model_dir: str | None = option(None, "Start from this run directory's checkpoint (with --saved_model_step)")
    saved_model_step: int | None = option(None, "Step of --saved_model_dir to start from", minimum=0)
    # speed
    attn_implementation: str = option("sdpa", "Attention kernels of the T5 stacks", choices=("sdpa", "eager"))
    group_by_length: bool = option(False, "Batch examples of similar length together (less padding)")
    dataloader_num_workers: int = option(0, "Data-loading worker processes", minimum=0)
    torch_compile: bool = option(False, "torch.compile the model")
    gradient_checkpointing: bool = option(False, "Recompute activations in the backward pass (less memory)")
    # accepted for the original commands
    use_processed_dataset: bool = option(False, "Ignored (the 30aug data is always pre-processed)")
    do_eval: bool = option(False, "Not supported here: use zemi-eval")

    def validate(self) -> None:
        self.refuse({
            "do_eval": "the training scripts do not evaluate; run zemi-eval (or zemi.eval_original_task_only_xattn)",
            "config_name": f"the model is built from the config.json of --lm_name; pass a backbone directory that "
                           f"holds the config you want instead of {self.config_name}",
        })
        if self.use_processed_dataset:
            logger.warning("--use_processed_dataset is accepted for compatibility and has no effect")
        _check_fit_aug_num(self.fit_aug_num)
        if self.resume_from_checkpoint not in (None, "latest") and \
                not (Path(self.resume_from_checkpoint) / "trainer_state.json").is_file():
            raise ConfigError(f"--resume_from_checkpoint {self.resume_from_checkpoint} is not a training state "
                              "directory (no trainer_state.json); pass 'latest' or <output_dir>/checkpoints/step_N")
        if self.lm_name is None:
            raise ConfigError("--lm_name (or --model_name_or_path) is required: the backbone T5, e.g. google/t5-base-lm-adapt")
        if self.dataset_root_path is None:
            raise ConfigError("--dataset_root_path is required: the 30aug root")
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
        if (self.saved_model_dir is None) != (self.saved_model_step is None):
            raise ConfigError("--saved_model_dir and --saved_model_step go together")


@dataclass
class EvalConfig(RunOptions):
    processed_dataset_paths: list[str] = option(
        (), "Template dirs to evaluate, e.g. <root>/<task>/* (default: every template dir of --tasks under "
        "--dataset_root_path)", "-pdp", nargs="+")
    tasks: list[str] = option((), "Held-out dataset dirs under --dataset_root_path whose template dirs are evaluated "
                              "when --processed_dataset_paths is not given", nargs="+")
    model_name_or_path: str = option(None, "A run directory (ours or the authors' download) or a T5 name",
                                     required=True)
    saved_model_step: int = option(-1, "Checkpoint step to evaluate; -1: every step_* in the run directory",
                                   "--step_num")
    max_length: int | None = option(None, "Input tokens (default: the run's args.json, else the paper's)", minimum=1)
    aug_max_length: int | None = option(None, "Tokens per document (default: the run's args.json, else the paper's)",
                                        minimum=1)
    target_max_length: int | None = option(None, "Answer-choice tokens (default: the run's args.json, else the "
                                           "paper's)", minimum=1)
    fit_aug_num: int | None = option(None, "Fold this many documents into the slots (default: the run's value)")
    concat_aug_num: int | None = option(None, "Concat baseline's documents (default: the run's args.json)", minimum=0)
    lm_name: str | None = option(None, "Backbone (for config and tokenizer) when args.json does not say")
    strict: bool = option(False, "Fail on a gold target missing from its answer choices instead of scoring choice 0")
    error_analysis_dir: str | None = option(
        None, "Also write the authors' error-analysis files: DIR/<output_dir's name>/step_N/<task>__<template>/"
        "prediction_target_indices.json and a link `dataset` to the template's validation split (every example's "
        "scores are always in <output_dir>/predictions/)")
    # accepted for the authors' commands
    model_architecture: str | None = option(None, "Ignored, as in the authors' script: the run's args.json decides")
    eval_average: bool = option(False, "Not supported: evaluates one concatenation of all templates")
    calibrate: bool = option(False, "Not supported: the authors' calibration needs their private template table")

    def validate(self) -> None:
        """Checks the flags, and fills --processed_dataset_paths from --tasks when it is not given."""
        self.refuse({
            "config_name": "the model's config comes from the run directory (its args.json and checkpoints)",
            "eval_average": "the accuracy over the given templates' examples pooled (each template weighted by its "
                            "example count) is not written; zemi-report's task accuracy is the unweighted mean of the "
                            "templates' accuracies, the same number only where every template has as many examples",
            "calibrate": "the authors' calibration (caliberation.py) needs their private template table and is not "
                         "implemented",
        })
        if self.model_architecture:
            logger.warning("--model_architecture is ignored, as in the authors' script: the run's args.json decides")
        if self.saved_model_step < -1:
            raise ConfigError(f"--saved_model_step must be -1 (every checkpoint) or a step, got {self.saved_model_step}")
        _check_fit_aug_num(self.fit_aug_num)
        if not self.processed_dataset_paths:
            self.processed_dataset_paths = held_out_templates(self.dataset_root_path, self.tasks)


def held_out_templates(root: str | None, tasks: Sequence[str]) -> list[str]:
    """Every entry of each task's directory under the 30aug root, in name order: what the shell glob
    `<root>/<task>/*` gave the scripts."""
    if root is None or not tasks:
        raise ConfigError("--processed_dataset_paths is required without --dataset_root_path and --tasks (the "
                          "template dirs to evaluate)")
    paths = []
    for task in tasks:
        directory = Path(root) / task
        if not directory.is_dir():
            raise MissingInputError(f"--tasks {task}: {directory} does not exist (--dataset_root_path {root})")
        paths += sorted(str(directory / name) for name in _visible_entries(directory))
    return paths


def _visible_entries(directory: Path) -> list[str]:
    return [entry.name for entry in directory.iterdir() if not entry.name.startswith(".")]


def _check_fit_aug_num(fit_aug_num: int | None) -> None:
    if fit_aug_num is not None and fit_aug_num != -1 and fit_aug_num < 1:
        raise ConfigError(f"--fit_aug_num must be -1 (off) or a positive number of documents to fold into the model's "
                          f"slots, got {fit_aug_num}")


# --- the preset's defaults -----------------------------------------------------------------------------------------


def training_defaults(given: dict[str, Any]) -> dict[str, Any]:
    """TrainConfig's defaults under the preset and model size of `given` (the flags given explicitly)."""
    preset = _resolve(given, sized=True)
    defaults = {**preset.recipe, "per_device_train_batch_size": preset.per_device_train_batch_size,
                "per_device_eval_batch_size": preset.per_device_eval_batch_size, "lm_name": preset.lm_name,
                "dataset_root_path": preset.dataset_root_path, "dataset_dir_names": preset.train_tasks}
    if given.get("model_architecture", PLAIN_T5) != PLAIN_T5:
        defaults["perceiver_config"] = preset.perceiver_config
    return defaults


def evaluation_defaults(given: dict[str, Any]) -> dict[str, Any]:
    """EvalConfig's defaults under the preset of `given`: the data and its held-out tasks, the batch size. Lengths
    and method come from the evaluated run."""
    preset = _resolve(given, sized=False)
    return {"per_device_eval_batch_size": preset.per_device_eval_batch_size,
            "dataset_root_path": preset.dataset_root_path, "tasks": preset.eval_tasks}


def _resolve(given: dict[str, Any], *, sized: bool):
    options = (SizedPresetOptions if sized else PresetOptions)()
    names = ("preset", "data_root", "output_root") + (("model_size",) if sized else ())
    values = {name: given.get(name, getattr(options, name)) for name in names}
    return resolve(values["preset"], values.get("model_size", "base"), data_root=values["data_root"],
                   output_root=values["output_root"])


def parse_training(argv: Sequence[str] | None, description: str | None = None) -> TrainConfig:
    return parse_config(TrainConfig, argv, description, selector=SizedPresetOptions, defaults=training_defaults)


def parse_evaluation(argv: Sequence[str] | None, description: str | None = None) -> EvalConfig:
    return parse_config(EvalConfig, argv, description, selector=PresetOptions, defaults=evaluation_defaults)
