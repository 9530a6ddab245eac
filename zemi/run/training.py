"""The one training loop behind both training entry points (No Aug / Concat, and FiD / Zemi).

Recipe of the paper: AdamW (no decay on biases and LayerNorm weights), a warm-up then cosine schedule, per-epoch
validation loss and a checkpoint per epoch. Resumable: the full training state is saved at every epoch end (and
every `--checkpointing_steps`), and the data order of each epoch is a pure function of (seed, epoch), so a resumed
run replays exactly the batches it had not yet seen. Each step's loss, learning rate, throughput and (Zemi) gates go
to train_log.csv and to the trackers of `--report_to` (zemi.run.tracking).
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
from accelerate.utils import broadcast_object_list, set_seed
from torch.utils.data import DataLoader
from transformers import AutoTokenizer, get_scheduler

from zemi.errors import MissingInputError
from zemi.data.collate import LABEL_PAD
from zemi.data.mixture import load_training_mixture
from zemi.data.processing import Featurizer, MaxLengths
from zemi.data.tokenized import EpochSampler, tokenize
from zemi.faults import crash_point, slow_point
from zemi.io import publish, recover_interrupted_writes, step_entries, temporary_sibling, write_csv_atomic, \
    write_json_atomic
from zemi.models.registry import build_model
from zemi.run.config import TrainConfig, parse_training
from zemi.cli import progress, setup_logging
from zemi.run.loss import loss_on, unwrap
from zemi.run.method import Method, check_training_start, collator_for, method_for
from zemi.run.optim import make_optimizer
from zemi.run.run_directory import RunDirectory, save_model_atomic
from zemi.run.tied_weights import drop_declared_ties_before_save_state
from zemi.run.tracking import end_tracking, fusion_gates, log_metrics, make_accelerator, start_tracking

logger = logging.getLogger(__name__)

STATE_DIR = "checkpoints"
LOG_FILE = "train_log.csv"  # one row per optimizer step (the plots read it; trackers get the same values)


@dataclass
class TrainerState:
    """What, besides model/optimizer/RNG (saved by accelerate), a resumed run needs."""

    global_step: int = 0
    epoch: int = 0  # epochs finished
    batches_done: int = 0  # micro-batches of the current epoch already trained on (this process)
    results: list[dict] = field(default_factory=list)  # one row per finished epoch (results.csv)


@dataclass
class StepStats:
    """One optimizer step, summed over every process and micro-batch."""

    loss: float  # mean token loss of the step
    examples: int
    tokens: int  # input + target tokens, padding excluded (documents not counted)


class Trainer:
    """`prepare()` builds the run (directory, data, loaders, model, optimizer and schedule); `train()` runs it."""

    def __init__(self, config: TrainConfig, method: Method, accelerator: Accelerator):
        self.config, self.method, self.accelerator = config, method, accelerator
        self.output_dir = Path(config.output_dir)
        self.state = TrainerState()

    # --- set-up ----------------------------------------------------------------------------------------------

    def prepare(self) -> None:
        self.start_run_directory()
        self.load_data()
        self.model = self.build_model()
        train_loader, validation_loader = self.make_loaders()
        self.optimizer, self.scheduler = self.make_optimizer_and_schedule(train_loader)
        self.distribute(train_loader, validation_loader)

    def start_run_directory(self) -> None:
        """The run directory with the run's settings (args.json, perceiver_config.json), interrupted writes undone."""
        accelerator = self.accelerator
        if accelerator.is_main_process:
            self.output_dir.mkdir(parents=True, exist_ok=True)
            recover_interrupted_writes(self.output_dir)
            recover_interrupted_writes(self.output_dir / STATE_DIR)
            write_json_atomic(self.output_dir / "args.json", asdict(self.config))
            if self.method.perceiver_config is not None:
                write_json_atomic(self.output_dir / "perceiver_config.json", self.method.perceiver_config.to_dict())
        accelerator.wait_for_everyone()

    def load_data(self) -> None:
        """The training mixture (recorded in dataset_mixture_config.json), tokenised once by the main process."""
        config, accelerator = self.config, self.accelerator
        mixture = load_training_mixture(config.dataset_root_path, config.dataset_dir_names, config.sample_n,
                                        seed=config.seed, num_shots=config.num_shots,
                                        documents_read=self.method.rules.documents_read,
                                        templates_from=config.templates_from)
        self.num_templates = len(mixture.template_dirs)
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

    def build_model(self) -> torch.nn.Module:
        """The method's model from the backbone, or from --saved_model_dir's checkpoint."""
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

    def make_loaders(self) -> tuple[DataLoader, DataLoader | None]:
        """Training batches in an order that is a pure function of (seed, epoch); validation in dataset order."""
        config, accelerator = self.config, self.accelerator
        collator = collator_for(self.method, MaxLengths(config.max_length, config.aug_max_length,
                                                        config.target_max_length), self.tokenizer.pad_token_id,
                                pad_to_max_length=config.pad_to_max_length, document_padding=config.document_padding,
                                pad_to_multiple_of=8 if config.mixed_precision != "no" else None)
        self.sampler = EpochSampler(self.train_data, seed=config.seed, group_by_length=config.group_by_length,
                                    batch_size=config.per_device_train_batch_size * accelerator.num_processes)
        options = dict(collate_fn=collator, num_workers=config.dataloader_num_workers,
                       pin_memory=accelerator.device.type == "cuda")
        train_loader = DataLoader(self.train_data, batch_size=config.per_device_train_batch_size, sampler=self.sampler,
                                  generator=torch.Generator().manual_seed(config.seed), **options)
        validation_loader = (DataLoader(self.validation_data, batch_size=config.per_device_eval_batch_size, **options)
                             if self.validation_data is not None else None)
        return train_loader, validation_loader

    def make_optimizer_and_schedule(self, train_loader: DataLoader):
        """AdamW and the warm-up + decay schedule over the run's optimizer steps (--max_train_steps or epochs)."""
        config, accelerator = self.config, self.accelerator
        optimizer = make_optimizer(self.model, config, accelerator.device)
        steps_per_epoch = math.ceil(math.ceil(len(train_loader) / accelerator.num_processes)
                                    / config.gradient_accumulation_steps)
        self.total_steps = config.max_train_steps or config.num_train_epochs * steps_per_epoch
        self.num_epochs = math.ceil(self.total_steps / steps_per_epoch)
        self.warmup_steps = config.num_warmup_steps or math.ceil(config.warmup_ratio * self.total_steps)
        # Stepped once per optimizer step by us (not wrapped by accelerate, which would step it once per process).
        scheduler = get_scheduler(config.lr_scheduler_type, optimizer, num_warmup_steps=self.warmup_steps,
                                  num_training_steps=self.total_steps)
        return optimizer, scheduler

    def distribute(self, train_loader: DataLoader, validation_loader: DataLoader | None) -> None:
        """accelerate's wrappers (DDP, FSDP or DeepSpeed, as launched), and the schedule in the resumable state."""
        config, accelerator = self.config, self.accelerator
        self.model, self.optimizer, self.train_loader = accelerator.prepare(self.model, self.optimizer, train_loader)
        self.validation_loader = accelerator.prepare(validation_loader) if validation_loader is not None else None
        accelerator.register_for_checkpointing(self.scheduler)
        accelerator.register_save_state_pre_hook(drop_declared_ties_before_save_state)
        logger.info("training %s on %d examples (%d templates), %d steps of %d examples, %d warm-up",
                    self.method.architecture, len(self.train_data), self.num_templates, self.total_steps,
                    config.per_device_train_batch_size * accelerator.num_processes * config.gradient_accumulation_steps,
                    self.warmup_steps)

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
            _truncate_log(self.output_dir / LOG_FILE, self.state.global_step)
        logger.info("resumed from %s: step %d, epoch %d (+%d batches)", path, self.state.global_step,
                    self.state.epoch, self.state.batches_done)

    def save_state(self) -> None:
        accelerator = self.accelerator
        final = self.output_dir / STATE_DIR / f"step_{self.state.global_step}"
        # One temporary for all processes (its name holds the main process's id): each writes its own files into it.
        tmp = Path(broadcast_object_list([str(temporary_sibling(final))])[0])
        accelerator.wait_for_everyone()
        if accelerator.is_main_process:
            final.parent.mkdir(parents=True, exist_ok=True)
        accelerator.wait_for_everyone()
        slow_point("state_save")
        accelerator.save_state(str(tmp))
        accelerator.wait_for_everyone()  # every process's part (its RNG states) is written before the rename
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
        start_tracking(accelerator, asdict(config))
        bar = progress(total=self.total_steps, initial=self.state.global_step, desc="train", unit="step",
                        disable=not accelerator.is_local_main_process)
        while self.state.epoch < self.num_epochs:
            last_step_end = time.perf_counter()
            for micro_batches in self.epoch_batches():
                if self.state.global_step >= self.total_steps:
                    break
                stats = self._optimizer_step(micro_batches)
                self.state.global_step += 1
                self.state.batches_done += len(micro_batches)
                crash_point("step")
                seconds, last_step_end = time.perf_counter() - last_step_end, time.perf_counter()
                self.log_step(stats, seconds, bar)
                if config.checkpointing_steps and self.state.global_step % config.checkpointing_steps == 0:
                    self.save_state()
                    last_step_end = time.perf_counter()  # throughput counts training, not checkpoint writes
            self._finish_epoch()
        bar.close()
        accelerator.wait_for_everyone()

    def epoch_batches(self):
        """The current epoch's micro-batches not yet trained on, in groups of --gradient_accumulation_steps."""
        # Through the prepared loader: it would otherwise set the sampler's epoch to its own iteration count,
        # which restarts at 0 in a resumed run.
        self.train_loader.set_epoch(self.state.epoch)
        self.model.train()
        loader = self.train_loader
        if self.state.batches_done:
            loader = self.accelerator.skip_first_batches(self.train_loader, self.state.batches_done)
        return _in_groups(loader, self.config.gradient_accumulation_steps)

    def _optimizer_step(self, micro_batches: list[dict]) -> StepStats:
        """One optimizer step over `micro_batches`, fetched before the first backward so that every process knows
        the step's global number of target tokens: accelerate's own recipe for token-level losses (its guide
        usage_guides/gradient_accumulation.md, "Gradient accumulation on training samples of variable size"), with
        `no_sync` on all but the last micro-batch.

        `accelerator.accumulate()` cannot drive this step (accelerate 1.15): it places the boundary by a call counter
        and by the loader's `end_of_dataloader`, which the look-ahead sets early. On an epoch's last step every
        micro-batch would be a boundary (gradients all-reduced each time, DeepSpeed's engine stepping after each
        one), and a short last step (fewer micro-batches than --gradient_accumulation_steps) would get none, the
        prepared optimizer skipping it and the counter shifting every boundary of the next epoch. So the boundary is
        set here through `Accelerator.sync_gradients`, which gates the prepared optimizer and tells DeepSpeed where
        the step ends. The Accelerator is not given --gradient_accumulation_steps, so `accelerator.backward` leaves
        the loss as computed here.
        """
        accelerator, model = self.accelerator, self.model
        counts = torch.stack([  # this process's target tokens, input tokens, examples
            sum((b["labels"] != LABEL_PAD).sum() for b in micro_batches),
            sum(b["attention_mask"].sum() for b in micro_batches),
            torch.tensor(sum(len(b["labels"]) for b in micro_batches), device=accelerator.device)]).float()
        counts = accelerator.reduce(counts, reduction="sum")
        global_tokens = counts[0].clamp(min=1)
        loss_sum = torch.zeros((), device=accelerator.device)
        for i, batch in enumerate(micro_batches):
            last = i == len(micro_batches) - 1
            accelerator.sync_gradients = last
            with contextlib.nullcontext() if last else accelerator.no_sync(model), accelerator.autocast():
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
        loss = float(accelerator.reduce(loss_sum, reduction="sum") / global_tokens)
        return StepStats(loss=loss, examples=int(counts[2]), tokens=int(counts[0] + counts[1]))

    def log_step(self, stats: StepStats, seconds: float, bar) -> None:
        """The step's loss, learning rate, throughput and (Zemi) gates: train_log.csv, trackers, progress bar."""
        accelerator = self.accelerator
        row = {"step": self.state.global_step, "epoch": self.state.epoch + 1, "loss": stats.loss,
               "lr": self.scheduler.get_last_lr()[0], "samples_per_s": stats.examples / seconds,
               "tokens_per_s": stats.tokens / seconds,
               **fusion_gates(unwrap(self.model), accelerator)}  # every process takes part
        bar.update(1)
        bar.set_postfix(loss=f"{stats.loss:.4f}", lr=f"{row['lr']:.2e}",
                             samples_per_s=f"{row['samples_per_s']:.1f}")
        if accelerator.is_main_process:
            _append_log(self.output_dir / LOG_FILE, row)
        # The authors' W&B names for loss and learning rate (`loss`, `last_lr`).
        tracked = {"loss": stats.loss, "last_lr": row["lr"], **{k: v for k, v in row.items()
                                                                if k not in ("step", "epoch", "loss", "lr")}}
        log_metrics(accelerator, tracked, self.state.global_step)

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
        log_metrics(accelerator, {"dev_loss": validation_loss}, self.state.global_step)  # the authors' W&B name
        accelerator.wait_for_everyone()
        # Every process takes part: under FSDP and ZeRO-3 this gathers the shards (the main process gets them all).
        state_dict = accelerator.get_state_dict(self.model)
        if accelerator.is_main_process:
            save_model_atomic(unwrap(self.model), self.output_dir / f"step_{self.state.global_step}",
                              state_dict=state_dict)
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


DESCRIPTION = """Train No Aug, Concat, FiD or Zemi on the multitask mixture (the method: --model_architecture, and
--concat_aug_num for Concat), with the recipe of --preset (the paper's by default).

    zemi-train --model_architecture SharedEncoderDecoder_MultiAug --output_dir output/p3_finetuning/zemi_base
    accelerate launch -m zemi train --preset demo --concat_aug_num 5 --output_dir output/demo/p3_finetuning/concat_base
"""


def main(argv: Sequence[str] | None = None, *, family: str | None = None, description: str = DESCRIPTION) -> Path:
    """Train one run. `family`, "baseline" (No Aug, Concat) or "xattn" (FiD, Zemi), is set by the authors' two
    entry points, each of which trains one family; without it, --model_architecture decides."""
    return run(parse_training(argv, description), family=family)


def run(config: TrainConfig, *, family: str | None = None) -> Path:
    method = method_for(config, family=family)
    check_training_start(config, method)
    accelerator = make_accelerator(config)
    setup_logging(accelerator)
    set_seed(config.seed)
    trainer = Trainer(config, method, accelerator)
    trainer.prepare()
    trainer.train()
    end_tracking(accelerator)
    return trainer.output_dir
