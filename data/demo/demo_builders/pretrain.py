"""Pre-train the demo backbone: a small gated-gelu T5 (like t5-lm-adapt, but with a tied LM head) on the demo corpus.

T5's span-corruption objective first, then a short prefix-LM phase ("lm-adapt") so the model also continues plain
text, which is what rank classification asks of it. Run `PYTHONPATH=data/demo python -m demo_builders.pretrain` (hours on one CPU core; see
data/demo/README.md for the recorded run); it writes `data/demo/backbone/` with `save_pretrained` (safetensors).
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import logging
import math
import os
import time
from pathlib import Path

import numpy as np
import torch
from transformers import AutoTokenizer, T5Config, T5ForConditionalGeneration
from transformers.optimization import Adafactor

from zemi.cli import setup_logging
from zemi.io import write_text_atomic
from demo_builders.corpus import CORPUS_PATH, read_corpus
from demo_builders.tokenizer import BACKBONE_DIR, NUM_SENTINELS

logger = logging.getLogger(__name__)

PAD_ID, EOS_ID = 0, 1
OPTIMIZERS = ("adafactor", "adamw")


@dataclasses.dataclass
class PretrainConfig:
    """Every knob of the pre-training run; the defaults are the recorded run."""

    # model (gated-gelu T5 v1.1 / lm-adapt layout, sized for CPU fine-tuning in the demo)
    d_model: int = 192
    d_ff: int = 512
    num_layers: int = 4  # encoder and decoder each
    num_heads: int = 3
    d_kv: int = 64
    # Tied LM head (T5 v1.0 style, decoder output scaled by d_model**-0.5) rather than t5-lm-adapt's own head: at this
    # size and CPU budget an untied head never learned to copy input tokens (random 8-token copy: loss 9.5 -> 8.95
    # in 200 steps untied, -> 6.8 tied), and copying a choice found in the documents is the demo's first skill.
    tie_lm_head: bool = True
    finetune_dropout: float = 0.1  # written to the saved config; pre-training itself runs without dropout, as T5 v1.1
    # data
    chunk_length: int = 114  # raw tokens per example: inputs about 104 tokens, targets about 24 after corruption
    noise_density: float = 0.15
    mean_noise_span_length: float = 3.0
    validation_every_nth_document: int = 100  # these documents are held out to measure the loss honestly
    # optimisation
    batch_size: int = 32
    span_corruption_steps: int = 5000
    prefix_lm_steps: int = 1000
    # T5's own optimiser: Adafactor scales each step by the parameter's RMS. With plain AdamW, T5's initialisation
    # (query weights 8x smaller than the others, embeddings 14x larger) stalls a small model from scratch: it never
    # left the unigram loss in 1,200 steps here, and failed a copy-the-token-after-a-marker probe for 2,500 steps
    # that Adafactor (or AdamW with RMS-scaled steps) solves in 600.
    optimizer: str = "adafactor"
    learning_rate: float = 1e-2
    min_learning_rate_ratio: float = 0.1
    warmup_steps: int = 200
    weight_decay: float = 0.0
    grad_clip: float = 1.0
    seed: int = 42
    threads: int = 1
    # bookkeeping
    corpus: str = str(CORPUS_PATH)
    tokenizer_dir: str = str(BACKBONE_DIR)
    output_dir: str = str(BACKBONE_DIR)
    work_dir: str = "output/demo_pretrain"  # checkpoints for resuming, the loss log, snapshots
    log_every: int = 25
    eval_every: int = 500
    save_every: int = 250

    @property
    def total_steps(self) -> int:
        return self.span_corruption_steps + self.prefix_lm_steps

    def validate(self) -> None:
        if not 0 < self.noise_density < 1:
            raise ValueError(f"noise_density must be in (0, 1), got {self.noise_density}")
        if min(self.d_model, self.d_ff, self.num_layers, self.num_heads, self.d_kv) < 1 or self.chunk_length < 8:
            raise ValueError("model sizes must be positive and chunks at least 8 tokens")
        if self.total_steps < 1 or self.batch_size < 1:
            raise ValueError("need at least one step and one example per batch")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {self.optimizer!r}")


def backbone_config(cfg: PretrainConfig, vocab_size: int, dropout: float) -> T5Config:
    # tie_word_embeddings=False is T5 v1.1's flag: no d_model**-0.5 scaling of the decoder output (transformers 5
    # records it as scale_decoder_outputs); the LM head itself is untied separately, see untie_lm_head.
    return T5Config(
        vocab_size=vocab_size, d_model=cfg.d_model, d_ff=cfg.d_ff, d_kv=cfg.d_kv, num_layers=cfg.num_layers,
        num_decoder_layers=cfg.num_layers, num_heads=cfg.num_heads, feed_forward_proj="gated-gelu",
        dropout_rate=dropout, tie_word_embeddings=cfg.tie_lm_head, pad_token_id=PAD_ID, eos_token_id=EOS_ID,
        decoder_start_token_id=PAD_ID,
    )


def untie_lm_head(model: T5ForConditionalGeneration) -> None:
    """Give the model its own LM head, as t5-lm-adapt has, initialised with std d_model**-0.5.

    transformers 5 always ties T5's lm_head to the shared embedding at construction; a checkpoint holding both
    tensors with different values loads untied (with a warning), so this is how the released backbones load too.
    Without the decoder-output scaling of tied T5, the embedding's std-1 init would give logits of size sqrt(d_model).
    """
    head = torch.empty_like(model.shared.weight)
    torch.nn.init.normal_(head, std=model.config.d_model ** -0.5)
    model.lm_head.weight = torch.nn.Parameter(head)
    model.all_tied_weights_keys.pop("lm_head.weight", None)


# ---------------------------------------------------------------------------------------------------------------------
# data: one token stream, cut into chunks, turned into span-corruption or prefix-LM examples


def token_streams(corpus_path: str, tokenizer, every_nth: int) -> tuple[np.ndarray, np.ndarray]:
    """All documents tokenised and joined with EOS, in corpus order (related synsets sit side by side there).

    Returns (training stream, validation stream); every `every_nth` document goes to validation.
    """
    texts = [record["text"] for record in read_corpus(Path(corpus_path))]
    ids = tokenizer(texts, add_special_tokens=False)["input_ids"]
    train, valid = [], []
    for index, doc in enumerate(ids):
        (valid if index % every_nth == 0 else train).append(np.asarray(doc + [EOS_ID], dtype=np.int32))
    return np.concatenate(train), np.concatenate(valid)


def epoch_chunks(stream: np.ndarray, length: int, rng: np.random.Generator) -> np.ndarray:
    """The stream cut into chunks at a random offset, shuffled: every epoch sees different boundaries."""
    offset = int(rng.integers(length))
    count = (len(stream) - offset) // length
    chunks = stream[offset:offset + count * length].reshape(count, length)
    return chunks[rng.permutation(count)]


def random_segment_lengths(total: int, segments: int, rng: np.random.Generator) -> np.ndarray:
    """Split `total` items into `segments` positive lengths, uniformly over all such splits."""
    cuts = np.sort(rng.choice(np.arange(1, total), size=segments - 1, replace=False)) if segments > 1 else []
    return np.diff(np.concatenate([[0], cuts, [total]])).astype(int)


def noise_mask(length: int, noise_density: float, mean_span: float, rng: np.random.Generator) -> np.ndarray:
    """T5's span-corruption mask: about length*density noise tokens in spans of mean length `mean_span`.

    Noise and non-noise spans alternate, starting with non-noise, so no span touches the chunk start.
    """
    num_noise = min(max(int(round(length * noise_density)), 1), length - 1)
    num_spans = max(min(int(round(num_noise / mean_span)), num_noise, length - num_noise), 1)
    noise_lengths = random_segment_lengths(num_noise, num_spans, rng)
    keep_lengths = random_segment_lengths(length - num_noise, num_spans, rng)
    mask = np.zeros(length, dtype=bool)
    position = 0
    for keep, noise in zip(keep_lengths, noise_lengths):
        position += keep
        mask[position:position + noise] = True
        position += noise
    return mask


def span_corruption(tokens: np.ndarray, mask: np.ndarray, sentinel_ids: list[int]) -> tuple[list[int], list[int]]:
    """Replace each noise span by one sentinel in the input; the target lists each sentinel and its span.

    Both end with EOS, as in T5's pre-training.
    """
    inputs, targets, span = [], [], -1
    for position, (token, noisy) in enumerate(zip(tokens.tolist(), mask)):
        starts_span = noisy and (position == 0 or not mask[position - 1])
        if starts_span:
            span += 1
            inputs.append(sentinel_ids[span])
            targets.append(sentinel_ids[span])
        (targets if noisy else inputs).append(token)
    return inputs + [EOS_ID], targets + [EOS_ID]


def prefix_lm(tokens: np.ndarray, rng: np.random.Generator, max_target_fraction: float = 0.4) -> tuple[list, list]:
    """lm-adapt's objective: the input is a prefix, the target the rest of the chunk.

    Targets stay short (at most max_target_fraction of the chunk) because decoding is the costly half on CPU and
    the demo's targets are a few words.
    """
    split = int(rng.integers(int(math.ceil(len(tokens) * (1 - max_target_fraction))), len(tokens)))
    return tokens[:split].tolist() + [EOS_ID], tokens[split:].tolist() + [EOS_ID]


def collate(pairs: list[tuple[list[int], list[int]]]) -> dict[str, torch.Tensor]:
    """Pad inputs with PAD (mask 0) and labels with -100, to the longest in the batch."""
    input_len = max(len(inputs) for inputs, _ in pairs)
    label_len = max(len(labels) for _, labels in pairs)
    input_ids = torch.full((len(pairs), input_len), PAD_ID, dtype=torch.long)
    labels = torch.full((len(pairs), label_len), -100, dtype=torch.long)
    for row, (inputs, targets) in enumerate(pairs):
        input_ids[row, :len(inputs)] = torch.tensor(inputs)
        labels[row, :len(targets)] = torch.tensor(targets)
    return {"input_ids": input_ids, "attention_mask": (input_ids != PAD_ID).long(), "labels": labels}


def make_batch(chunks: np.ndarray, objective: str, cfg: PretrainConfig, sentinel_ids: list[int],
               rng: np.random.Generator) -> dict[str, torch.Tensor]:
    if objective == "span_corruption":
        pairs = [span_corruption(chunk, noise_mask(len(chunk), cfg.noise_density, cfg.mean_noise_span_length, rng),
                                 sentinel_ids) for chunk in chunks]
    else:
        pairs = [prefix_lm(chunk, rng) for chunk in chunks]
    return collate(pairs)


class BatchStream:
    """Endless batches of chunks, re-chunked and reshuffled every epoch; its state is (epoch, position, rng)."""

    def __init__(self, stream: np.ndarray, cfg: PretrainConfig, seed: int):
        self.stream, self.cfg = stream, cfg
        self.rng = np.random.default_rng(seed)
        self.epoch, self.position = 0, 0
        self.chunks = epoch_chunks(stream, cfg.chunk_length, self.rng)

    def next_chunks(self) -> np.ndarray:
        if self.position + self.cfg.batch_size > len(self.chunks):
            self.epoch += 1
            self.position = 0
            self.chunks = epoch_chunks(self.stream, self.cfg.chunk_length, self.rng)
        batch = self.chunks[self.position:self.position + self.cfg.batch_size]
        self.position += self.cfg.batch_size
        return batch


# ---------------------------------------------------------------------------------------------------------------------
# training


def learning_rate(step: int, cfg: PretrainConfig) -> float:
    """Linear warm-up, then cosine decay to min_learning_rate_ratio over all steps (both objectives)."""
    if step < cfg.warmup_steps:
        return cfg.learning_rate * (step + 1) / cfg.warmup_steps
    progress = (step - cfg.warmup_steps) / max(cfg.total_steps - cfg.warmup_steps, 1)
    ratio = cfg.min_learning_rate_ratio + (1 - cfg.min_learning_rate_ratio) * 0.5 * (1 + math.cos(math.pi * progress))
    return cfg.learning_rate * ratio


def build_optimizer(model: torch.nn.Module, cfg: PretrainConfig) -> torch.optim.Optimizer:
    decay, no_decay = [], []
    for name, parameter in model.named_parameters():
        (no_decay if "layer_norm" in name or name.endswith("bias") else decay).append(parameter)
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    if cfg.optimizer == "adafactor":
        return Adafactor(groups, lr=cfg.learning_rate, scale_parameter=True, relative_step=False, warmup_init=False,
                         clip_threshold=1.0)
    return torch.optim.AdamW(groups, lr=cfg.learning_rate, betas=(0.9, 0.98), eps=1e-8)


@torch.no_grad()
def validation_losses(model, valid_stream: np.ndarray, cfg: PretrainConfig, sentinel_ids: list[int]) -> dict:
    """Loss of both objectives on the held-out documents, with fixed masks so the numbers are comparable."""
    model.eval()
    chunks = valid_stream[:len(valid_stream) // cfg.chunk_length * cfg.chunk_length].reshape(-1, cfg.chunk_length)
    chunks = chunks[:2 * cfg.batch_size]
    losses: dict[str, float] = {}
    if not len(chunks):
        return losses
    for objective in ("span_corruption", "prefix_lm"):
        rng = np.random.default_rng(0)
        total = [model(**make_batch(chunks[i:i + cfg.batch_size], objective, cfg, sentinel_ids, rng)).loss.item()
                 for i in range(0, len(chunks), cfg.batch_size)]
        losses[objective] = float(np.mean(total))
    model.train()
    return losses


def save_backbone(model: T5ForConditionalGeneration, tokenizer, output_dir: str, dropout: float) -> None:
    """save_pretrained (safetensors, fp32) with the fine-tuning dropout recorded in the config."""
    model.config.dropout_rate = dropout
    model.save_pretrained(output_dir)
    tokenizer.save_pretrained(output_dir)
    model.config.dropout_rate = 0.0


def save_checkpoint(path: Path, model, optimizer, batches: BatchStream, step: int, elapsed: float) -> None:
    state = {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "step": step, "elapsed": elapsed,
             "batch_rng": batches.rng.bit_generator.state, "epoch": batches.epoch, "position": batches.position,
             "chunks": batches.chunks, "torch_rng": torch.get_rng_state()}
    torch.save(state, path.with_suffix(".tmp"))
    os.replace(path.with_suffix(".tmp"), path)


def restore_checkpoint(path: Path, model, optimizer, batches: BatchStream) -> tuple[int, float]:
    state = torch.load(path, weights_only=False)
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    batches.rng.bit_generator.state = state["batch_rng"]
    batches.epoch, batches.position, batches.chunks = state["epoch"], state["position"], state["chunks"]
    torch.set_rng_state(state["torch_rng"])
    return state["step"], state["elapsed"]


def drop_rows_after(log_path: Path, step: int) -> None:
    header, *rows = log_path.read_text().splitlines(keepends=True)
    write_text_atomic(log_path, header + "".join(row for row in rows if int(row.split(",", 1)[0]) <= step))


def train(cfg: PretrainConfig, resume: bool) -> None:
    torch.manual_seed(cfg.seed)
    torch.set_num_threads(cfg.threads)
    work_dir = Path(cfg.work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    tokenizer = AutoTokenizer.from_pretrained(cfg.tokenizer_dir)
    sentinel_ids = tokenizer.convert_tokens_to_ids([f"<extra_id_{i}>" for i in range(NUM_SENTINELS)])
    train_stream, valid_stream = token_streams(cfg.corpus, tokenizer, cfg.validation_every_nth_document)
    logger.info("token streams: %d training, %d validation tokens", len(train_stream), len(valid_stream))

    model = T5ForConditionalGeneration(backbone_config(cfg, len(tokenizer), dropout=0.0))
    if not cfg.tie_lm_head:
        untie_lm_head(model)
    model.train()
    logger.info("model: %.2fM parameters", sum(p.numel() for p in model.parameters()) / 1e6)
    optimizer = build_optimizer(model, cfg)
    batches = BatchStream(train_stream, cfg, cfg.seed)
    checkpoint = work_dir / "checkpoint.pt"
    step, elapsed = restore_checkpoint(checkpoint, model, optimizer, batches) if resume and checkpoint.exists() \
        else (0, 0.0)
    log_path = work_dir / "loss.csv"
    if step == 0:
        with open(log_path, "w", newline="") as handle:
            csv.writer(handle).writerow(["step", "objective", "split", "loss", "learning_rate", "epoch", "elapsed_s"])
    else:
        drop_rows_after(log_path, step)  # logged after the checkpoint by a run that was then killed

    started, window = time.time() - elapsed, []
    while step < cfg.total_steps:
        objective = "span_corruption" if step < cfg.span_corruption_steps else "prefix_lm"
        lr = learning_rate(step, cfg)
        for group in optimizer.param_groups:
            group["lr"] = lr
        loss = model(**make_batch(batches.next_chunks(), objective, cfg, sentinel_ids, batches.rng)).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        step += 1
        window.append(loss.item())
        rows = []
        if step % cfg.log_every == 0:
            rows.append([step, objective, "train", float(np.mean(window)), lr, batches.epoch])
            logger.info("step %d %s loss %.4f lr %.2e epoch %d (%.0f s)", step, objective, np.mean(window), lr,
                        batches.epoch, time.time() - started)
            window = []
        if step % cfg.eval_every == 0 or step == cfg.total_steps:
            for name, value in validation_losses(model, valid_stream, cfg, sentinel_ids).items():
                rows.append([step, name, "validation", value, lr, batches.epoch])
                logger.info("step %d validation %s loss %.4f", step, name, value)
        if rows:
            with open(log_path, "a", newline="") as handle:
                csv.writer(handle).writerows(row + [round(time.time() - started, 1)] for row in rows)
        if step % cfg.save_every == 0 or step == cfg.total_steps:
            save_checkpoint(checkpoint, model, optimizer, batches, step, time.time() - started)
            save_backbone(model, tokenizer, str(work_dir / "latest"), cfg.finetune_dropout)
    save_backbone(model, tokenizer, cfg.output_dir, cfg.finetune_dropout)
    logger.info("saved the backbone to %s after %d steps, %.0f s", cfg.output_dir, step, time.time() - started)


def parse_args(argv: list[str] | None = None) -> tuple[PretrainConfig, bool]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    for field in dataclasses.fields(PretrainConfig):
        kind = (lambda text: text.lower() in {"1", "true", "yes"}) if isinstance(field.default, bool) \
            else type(field.default)
        parser.add_argument(f"--{field.name}", type=kind, default=field.default)
    parser.add_argument("--resume", action="store_true", help="continue from <work_dir>/checkpoint.pt")
    args = vars(parser.parse_args(argv))
    resume = args.pop("resume")
    cfg = PretrainConfig(**args)
    cfg.validate()
    return cfg, resume


def main(argv: list[str] | None = None) -> None:
    setup_logging()
    cfg, resume = parse_args(argv)
    train(cfg, resume)


if __name__ == "__main__":
    main()
