"""The one training loop behind both training entry points (No Aug / Concat, and FiD / Zemi).

Recipe of the paper: AdamW (no decay on biases and LayerNorm weights), a warm-up then cosine schedule, per-epoch
validation loss and a checkpoint per epoch. Resumable: the full training state is saved at every epoch end (and
every `--checkpointing_steps`), and the data order of each epoch is a pure function of (seed, epoch), so a resumed
run replays exactly the batches it had not yet seen.
"""

from __future__ import annotations

import contextlib
import csv
import json
import logging
import math
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Sequence

import torch
from accelerate import Accelerator
from accelerate.utils import set_seed
from torch.utils.data import DataLoader
from tqdm.auto import tqdm
from transformers import AutoTokenizer, get_scheduler

from zemi.errors import MissingInputError
from zemi.data.collate import LABEL_PAD
from zemi.data.mixture import load_training_mixture
from zemi.data.processing import Featurizer, MaxLengths
from zemi.data.tokenized import EpochSampler, tokenize
from zemi.faults import crash_point
from zemi.io import publish, recover_interrupted_writes, step_entries, temporary_sibling, write_csv_atomic, \
    write_json_atomic
from zemi.models.modeling_t5 import build_model
from zemi.run.config import TrainConfig, parse_config
from zemi.run.cli import setup_logging
from zemi.run.loss import loss_on, unwrap
from zemi.run.method import Method, check_training_start, collator_for, method_for
from zemi.run.optim import make_optimizer
from zemi.run.run_directory import RunDirectory, save_model_atomic

logger = logging.getLogger(__name__)

STATE_DIR = "checkpoints"


@dataclass
class TrainerState:
    """What, besides model/optimizer/RNG (saved by accelerate), a resumed run needs."""

    global_step: int = 0
    epoch: int = 0  # epochs finished
    batches_done: int = 0  # micro-batches of the current epoch already trained on (this process)
    results: list[dict] = field(default_factory=list)  # one row per finished epoch (results.csv)


class Trainer:
    def __init__(self, config: TrainConfig, method: Method, accelerator: Accelerator):
        self.config, self.method, self.accelerator = config, method, accelerator
        self.output_dir = Path(config.output_dir)
        self.state = TrainerState()

    # --- set-up ----------------------------------------------------------------------------------------------

    def prepare(self) -> None:
        config, accelerator = self.config, self.accelerator
        if accelerator.is_main_process:
            self.output_dir.mkdir(parents=True, exist_ok=True)
            recover_interrupted_writes(self.output_dir)
            recover_interrupted_writes(self.output_dir / STATE_DIR)
            write_json_atomic(self.output_dir / "args.json", asdict(config))
            if self.method.perceiver_config_values is not None:
                write_json_atomic(self.output_dir / "perceiver_config.json", self.method.perceiver_config_values)
        accelerator.wait_for_everyone()

        mixture = load_training_mixture(config.dataset_root_path, config.dataset_dir_names, config.sample_n,
                                        seed=config.seed, num_shots=config.num_shots,
                                        documents_read=self.method.rules.documents_read)
        if accelerator.is_main_process:
            write_json_atomic(self.output_dir / "dataset_mixture_config.json", {
                "sample_n": config.sample_n, "sampled_list": [str(p) for p in mixture.sampled],
                "trained_list": [str(p) for p in mixture.template_dirs],
                "dataset_dir_names": list(config.dataset_dir_names), "dataset_root_path": config.dataset_root_path})
        train_raw, validation_raw = mixture.concatenated()
        if config.debug:
            train_raw = train_raw.select(range(min(100, len(train_raw))))
            validation_raw = validation_raw.select(range(min(100, len(validation_raw)))) if validation_raw else None

        self.tokenizer = AutoTokenizer.from_pretrained(config.tokenizer_name or config.lm_name)
        if accelerator.is_main_process:
            self.tokenizer.save_pretrained(self.output_dir)  # evaluation finds it beside the checkpoints
        lengths = MaxLengths(config.max_length, config.aug_max_length, config.target_max_length)
        featurizer = Featurizer(self.tokenizer, self.method.rules, lengths, input_eos=config.input_eos)
        cache_dir = Path(config.cache_dir or self.output_dir / "tokenized_cache")
        with accelerator.main_process_first():
            self.train_data = tokenize(train_raw, featurizer.train_features, cache_dir, num_proc=config.num_proc)
            self.validation_data = (tokenize(validation_raw, featurizer.train_features, cache_dir,
                                             num_proc=config.num_proc) if validation_raw is not None else None)

        self.model = self._build_model()
        collator = collator_for(self.method, MaxLengths(config.max_length, config.aug_max_length,
                                                        config.target_max_length), self.tokenizer.pad_token_id,
                                pad_to_max_length=config.pad_to_max_length,
                                pad_to_multiple_of=8 if config.mixed_precision != "no" else None)
        self.sampler = EpochSampler(self.train_data, seed=config.seed,
                                    group_by_length=config.group_by_length,
                                    batch_size=config.per_device_train_batch_size * accelerator.num_processes)
        loader_options = dict(collate_fn=collator, num_workers=config.dataloader_num_workers,
                              pin_memory=accelerator.device.type == "cuda")
        train_loader = DataLoader(self.train_data, batch_size=config.per_device_train_batch_size,
                                  sampler=self.sampler, generator=torch.Generator().manual_seed(config.seed),
                                  **loader_options)
        validation_loader = DataLoader(self.validation_data, batch_size=config.per_device_eval_batch_size,
                                       **loader_options) if self.validation_data is not None else None

        self.optimizer = make_optimizer(self.model, config, accelerator.device)
        steps_per_epoch = math.ceil(math.ceil(len(train_loader) / accelerator.num_processes)
                                    / config.gradient_accumulation_steps)
        self.total_steps = config.max_train_steps or config.num_train_epochs * steps_per_epoch
        self.num_epochs = math.ceil(self.total_steps / steps_per_epoch)
        warmup = config.num_warmup_steps or math.ceil(config.warmup_ratio * self.total_steps)
        # Stepped once per optimizer step by us (not wrapped by accelerate, which would step it once per process).
        self.scheduler = get_scheduler(config.lr_scheduler_type, self.optimizer, num_warmup_steps=warmup,
                                       num_training_steps=self.total_steps)
        self.model, self.optimizer, self.train_loader = accelerator.prepare(self.model, self.optimizer, train_loader)
        self.validation_loader = accelerator.prepare(validation_loader) if validation_loader is not None else None
        accelerator.register_for_checkpointing(self.scheduler)
        logger.info("training %s on %d examples (%d templates), %d steps of %d examples, %d warm-up",
                    self.method.architecture, len(self.train_data), len(mixture.template_dirs), self.total_steps,
                    config.per_device_train_batch_size * accelerator.num_processes * config.gradient_accumulation_steps,
                    warmup)

    def _build_model(self):
        config = self.config
        if config.saved_model_dir is not None:
            run = RunDirectory.open(config.saved_model_dir)
            model = run.load_model(run.checkpoints(config.saved_model_step)[0][1])
        else:
            model = build_model(self.method.architecture, config.lm_name, self.method.perceiver_config,
                                attn_implementation=config.attn_implementation)
        model.config._attn_implementation = config.attn_implementation
        if config.gradient_checkpointing:
            model.gradient_checkpointing_enable()
        if config.torch_compile:
            model = torch.compile(model)
        return model

    # --- resuming --------------------------------------------------------------------------------------------

    def state_dirs(self) -> list[tuple[int, Path]]:
        return step_entries(self.output_dir / STATE_DIR)

    def resume(self, where: str) -> None:
        if where == "latest":
            found = self.state_dirs()
            if not found:
                logger.info("no saved training state in %s; starting from the beginning", self.output_dir / STATE_DIR)
                return
            path = found[-1][1]
        else:
            path = Path(where)
            if not (path / "trainer_state.json").is_file():
                raise MissingInputError(f"{path} is not a training state directory (no trainer_state.json)")
        self.accelerator.load_state(str(path))
        self.state = TrainerState(**json.loads((path / "trainer_state.json").read_text()))
        if self.accelerator.is_main_process:  # steps after the saved state will be replayed: drop their log rows
            _truncate_log(self.output_dir / "train_log.csv", self.state.global_step)
        logger.info("resumed from %s: step %d, epoch %d (+%d batches)", path, self.state.global_step,
                    self.state.epoch, self.state.batches_done)

    def save_state(self) -> None:
        accelerator = self.accelerator
        final = self.output_dir / STATE_DIR / f"step_{self.state.global_step}"
        tmp = temporary_sibling(final)
        accelerator.wait_for_everyone()
        if accelerator.is_main_process:
            final.parent.mkdir(parents=True, exist_ok=True)
        accelerator.wait_for_everyone()
        accelerator.save_state(str(tmp))
        if accelerator.is_main_process:
            (tmp / "trainer_state.json").write_text(json.dumps(asdict(self.state), indent=2))
            crash_point("state_write")
            publish(tmp, final)
            for _, old in self.state_dirs()[:-1]:  # keep only the newest state: it is large (optimizer moments)
                shutil.rmtree(old)
        accelerator.wait_for_everyone()

    # --- training --------------------------------------------------------------------------------------------

    def train(self) -> None:
        config, accelerator = self.config, self.accelerator
        if config.resume_from_checkpoint:
            self.resume(config.resume_from_checkpoint)
        progress = tqdm(total=self.total_steps, initial=self.state.global_step, desc="train",
                        disable=not accelerator.is_local_main_process)
        log_path = self.output_dir / "train_log.csv"
        while self.state.epoch < self.num_epochs:
            # Through the prepared loader: it would otherwise set the sampler's epoch to its own iteration count,
            # which restarts at 0 in a resumed run.
            self.train_loader.set_epoch(self.state.epoch)
            self.model.train()
            loader = self.train_loader
            if self.state.batches_done:
                loader = accelerator.skip_first_batches(self.train_loader, self.state.batches_done)
            for micro_batches in _in_groups(loader, config.gradient_accumulation_steps):
                if self.state.global_step >= self.total_steps:
                    break
                started = time.perf_counter()
                loss = self._optimizer_step(micro_batches)
                self.state.global_step += 1
                self.state.batches_done += len(micro_batches)
                crash_point("step")
                samples = len(micro_batches) * micro_batches[0]["input_ids"].shape[0] * accelerator.num_processes
                lr = self.scheduler.get_last_lr()[0]
                progress.update(1)
                progress.set_postfix(loss=f"{loss:.4f}", lr=f"{lr:.2e}",
                                     samples_per_s=f"{samples / (time.perf_counter() - started):.1f}")
                if accelerator.is_main_process:
                    _append_log(log_path, {"step": self.state.global_step, "epoch": self.state.epoch + 1,
                                           "loss": loss, "lr": lr})
                if config.checkpointing_steps and self.state.global_step % config.checkpointing_steps == 0:
                    self.save_state()
            self._finish_epoch()
        progress.close()
        accelerator.wait_for_everyone()

    def _optimizer_step(self, micro_batches: list[dict]) -> float:
        """One optimizer step over `micro_batches`; returns the step's mean token loss over all processes."""
        accelerator, model = self.accelerator, self.model
        tokens = sum((b["labels"] != LABEL_PAD).sum() for b in micro_batches)
        global_tokens = accelerator.reduce(tokens.detach().clone(), reduction="sum").clamp(min=1)
        loss_sum = torch.zeros((), device=accelerator.device)
        for i, batch in enumerate(micro_batches):
            # Gradients are all-reduced (averaged) only on the last micro-batch of the step.
            sync = contextlib.nullcontext() if i == len(micro_batches) - 1 else accelerator.no_sync(model)
            with sync, accelerator.autocast():
                per_example, _ = loss_on(model, batch)
                summed = per_example.sum()
                if self.config.loss_reduction == "global_tokens":
                    # DDP averages gradients over processes, so scale by their number to get sum / global tokens.
                    loss = summed * accelerator.num_processes / global_tokens
                else:  # the original: each micro-batch's mean token loss, divided by the accumulation steps
                    loss = summed / (batch["labels"] != LABEL_PAD).sum().clamp(min=1) / len(micro_batches)
                accelerator.backward(loss)
            loss_sum += summed.detach()
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        return float(accelerator.reduce(loss_sum, reduction="sum") / global_tokens)

    @torch.no_grad()
    def validation_loss(self) -> float:
        if self.validation_loader is None:
            return float("nan")
        self.model.eval()
        total, tokens = torch.zeros((), device=self.accelerator.device), torch.zeros((), device=self.accelerator.device)
        for batch in self.validation_loader:
            with self.accelerator.autocast():
                per_example, counts = loss_on(self.model, batch)
            per_example, counts = self.accelerator.gather_for_metrics((per_example, counts))
            total += per_example.sum()
            tokens += counts.sum()
            crash_point("validation")
        return float(total / tokens.clamp(min=1))

    def _finish_epoch(self) -> None:
        """Validation loss, the epoch's checkpoint `step_<N>`, the results table, and the resumable state."""
        accelerator = self.accelerator
        validation_loss = self.validation_loss()
        self.state.epoch += 1
        self.state.batches_done = 0
        self.state.results.append({"epoch": self.state.epoch, "step": self.state.global_step,
                                   "dev_loss": validation_loss})
        accelerator.wait_for_everyone()
        if accelerator.is_main_process:
            model = unwrap(self.model)
            save_model_atomic(model, self.output_dir / f"step_{self.state.global_step}",
                              state_dict=accelerator.get_state_dict(self.model))
            write_csv_atomic(self.output_dir / "results.csv", self.state.results)
            logger.info("epoch %d: step %d, validation loss %.4f", self.state.epoch, self.state.global_step,
                        validation_loss)
        self.save_state()


def _in_groups(loader, size: int):
    group = []
    for batch in loader:
        group.append(batch)
        if len(group) == size:
            yield group
            group = []
    if group:
        yield group


def _append_log(path: Path, row: dict) -> None:
    new = not path.exists()
    with open(path, "a", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(row))
        if new:
            writer.writeheader()
        writer.writerow(row)


def _truncate_log(path: Path, last_step: int) -> None:
    if not path.exists():
        return
    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    write_csv_atomic(path, [row for row in rows if int(row["step"]) <= last_step])


def main(argv: Sequence[str] | None = None, *, family: str) -> Path:
    """Train one run; `family` is "baseline" (No Aug, Concat) or "xattn" (FiD, Zemi)."""
    return run(parse_config(TrainConfig, argv, f"Multitask training ({family})"), family=family)


def run(config: TrainConfig, *, family: str) -> Path:
    method = method_for(config, family=family)
    check_training_start(config, method)
    accelerator = Accelerator(mixed_precision=config.mixed_precision)
    setup_logging(accelerator)
    set_seed(config.seed)
    trainer = Trainer(config, method, accelerator)
    trainer.prepare()
    trainer.train()
    return trainer.output_dir
