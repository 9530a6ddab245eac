"""Training and rank-classification throughput of No Aug, Concat, FiD and Zemi: the authors' computation (reference
mode) and ours (fast mode), measured side by side in one run, at the real t5-*-lm-adapt shapes with random weights.

    python benchmarks/throughput.py --device cuda --config base          # the README's GPU table
    python benchmarks/throughput.py --device cpu --config tiny           # under a minute on a laptop CPU
    python benchmarks/throughput.py --device cpu --config base --lengths c4 --steps 1 --warmup 0 \
        --fast_train_batch 2 --reference_train_batch 2 --fast_eval_batch 2 --reference_eval_batch 2   # CPU ratios

Reference mode is what the original code computes: fp32, eager attention, the model's mean loss, a per-parameter
AdamW, per-device batch 4 (also measured at 32), and evaluation that runs the whole model once per answer choice.
Fast mode is what our entry points do: bf16 autocast (where the device supports it), SDPA attention, fused AdamW,
the loss over the batch's target tokens, encode-once evaluation with shared cross-attention keys and values, and
(`--compile`) torch.compile. Prints JSON: {"device", "config", "shapes", "methods": {method: {"reference": {...},
"fast": {...}, "speedup": {"train", "eval"}, "rank_classification": {...}}}}.

`rank_classification` isolates the evaluation's two changes at one batch, dtype and attention: encoding once per
example versus re-encoding per choice (FLOPs and seconds per example), and the fused rank-classification head (only
the choice tokens' log-probabilities, a chunked logsumexp over the vocabulary) versus the full-vocabulary
log-softmax (seconds per example, the largest logits tensor, and the largest score difference between the two).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import resource
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import torch
from torch.utils.flop_counter import FlopCounterMode
from transformers import T5Config

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from zemi.models.configuration_zemi import PerceiverXattnConfig  # noqa: E402
from zemi.models.modeling_t5 import model_inputs  # noqa: E402
from zemi.models.registry import model_from_config  # noqa: E402
from zemi.run.objectives import (  # noqa: E402
    FUSED_BLOCK_ELEMENTS,
    choice_scores,
    loss_on,
    rank_choices,
    rank_choices_reencoding,
)
from zemi.run.optim import make_optimizer, parameter_groups  # noqa: E402

REFERENCE_KEYS = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "original_state_dict_keys.json"
METHODS = {"no_aug": "T5", "concat": "T5", "fid": "FiD", "zemi": "SharedEncoderDecoder_MultiAug"}
# Dense bf16 tensor-core peaks (FLOP/s), for MFU.
PEAK_BF16 = {"H200": 989e12, "H100": 989e12, "A100": 312e12, "L40S": 362e12, "A10": 125e12, "RTX 4090": 165e12}


@dataclass(frozen=True)
class Shapes:
    input: int = 128
    documents: int = 5
    document: int = 256
    target: int = 8
    choices: int = 4
    concat_max: int = 1024
    ragged_choices: bool = False  # answer choices of 2..target tokens, padded to the batch's longest


# `--lengths c4`: token lengths of real examples, read off the authors' retrieval visualization files
# (visualization/first50_retrieval_instances/ of MikeWangWZHL/Zemi; first instances of cosmos_qa and super_glue_copa)
# as word counts times 1.3 T5 tokens per English word. Inputs: cosmos_qa about 105 words (137 tokens), COPA about 30;
# training targets about 15 words (20 tokens). Documents are C4 texts cut to 256 words: of the top five, about four
# in five exceed 197 words (256 tokens, the cut), and a batch pads every slot to its longest, so all five are 256
# tokens. Concat joins the input and the five documents' real tokens (about 1,310) and is cut at 1024.
# Answer choices: from one word to a sentence (COPA's about 7 tokens, cosmos_qa's about 20): 2 to 20 tokens.
LENGTHS = {"max": Shapes(), "c4": Shapes(input=137, document=256, target=20, choices=4, ragged_choices=True)}


@dataclass(frozen=True)
class Mode:
    name: str
    dtype: torch.dtype
    attention: str
    train_batch: int
    eval_batch: int
    compile: bool = False

    @property
    def fast(self) -> bool:
        return self.name == "fast"


PERCEIVER_CONFIGS = Path(__file__).resolve().parents[1] / "training" / "perceiver_configs"
FUSION_FILES = {"base": "xattn_multi_aug_config_v1_v3_5aug.json", "large": "xattn_multi_aug_config_v1_v3_5aug_t5_large.json"}


def backbone_config(name: str, lengths: str = "max") -> tuple[T5Config, PerceiverXattnConfig, Shapes]:
    if name == "tiny":
        config = T5Config(vocab_size=512, d_model=64, d_ff=128, d_kv=16, num_heads=4, num_layers=2,
                          num_decoder_layers=2, feed_forward_proj="gated-gelu", tie_word_embeddings=False,
                          decoder_start_token_id=0, dropout_rate=0.1)
        fusion = PerceiverXattnConfig(dim=64, dim_head=16, heads=4, num_latents=16)
        return config, fusion, Shapes(input=32, document=64, target=8, concat_max=256)
    published = json.loads(REFERENCE_KEYS.read_text())
    config = T5Config(**published["t5_config"][name], decoder_start_token_id=0, dropout_rate=0.1)
    fusion_file = PERCEIVER_CONFIGS / FUSION_FILES[name]
    fusion = PerceiverXattnConfig.from_json(fusion_file) if fusion_file.is_file() else \
        PerceiverXattnConfig.from_dict(published["perceiver_xattn_config"][name], source=str(REFERENCE_KEYS))
    return config, fusion, LENGTHS[lengths]


def random_batch(method: str, shapes: Shapes, batch: int, vocab: int, device, *, choices: bool, seed: int = 0) -> dict:
    """Token ids of the method's inputs at the benchmark shapes (every position a real token: the worst case)."""
    g = torch.Generator().manual_seed(seed)
    ids = lambda *shape: torch.randint(2, vocab, shape, generator=g)  # noqa: E731
    length = min(shapes.input + shapes.documents * shapes.document, shapes.concat_max) if method == "concat" \
        else shapes.input
    out = {"input_ids": ids(batch, length)}
    if method in ("fid", "zemi"):
        # FiD's document texts are `input + "\n" + document`, cut to the same document length.
        out["aug_input_ids"] = ids(batch, shapes.documents, shapes.document)
        out["aug_attention_mask"] = torch.ones_like(out["aug_input_ids"])
        out["aug_exist_idx"] = torch.ones(batch, shapes.documents, dtype=torch.long)
    out["attention_mask"] = torch.ones_like(out["input_ids"])
    if choices:
        out["choice_ids"] = ids(batch * shapes.choices, shapes.target)
        lengths = torch.randint(2, shapes.target + 1, (batch * shapes.choices,), generator=g) \
            if shapes.ragged_choices else torch.full((batch * shapes.choices,), shapes.target)
        out["choice_mask"] = (torch.arange(shapes.target) < lengths.unsqueeze(1)).long()
        out["choice_ids"] = out["choice_ids"] * out["choice_mask"]  # padding: 0
        out["choice_ids"][torch.arange(len(lengths)), lengths - 1] = 1  # EOS
        out["choice_owner"] = torch.arange(batch).repeat_interleave(shapes.choices)
        out["num_choices"] = torch.full((batch,), shapes.choices)
    else:
        out["labels"] = ids(batch, shapes.target)
        out["labels"][:, -1] = 1
    return {k: v.to(device) for k, v in out.items()}


def real_batch(method: str, args, fusion: PerceiverXattnConfig, batch: int, device, *, choices: bool) -> dict:
    """The first `batch` examples of a 30aug root, processed exactly as training / evaluation does (dynamic
    padding: real lengths instead of the fixed benchmark shapes)."""
    from transformers import AutoTokenizer

    from zemi.data.collate import Collator
    from zemi.data.mixture import load_eval_templates, load_training_mixture
    from zemi.data.processing import Featurizer, MaxLengths
    from zemi.run.method import text_rules

    tokenizer = AutoTokenizer.from_pretrained(args.tokenizer)
    rules = text_rules(METHODS[method], fusion, concat_aug_num=5 if method == "concat" else 0,
                       concat_input_at_augmentation=method == "fid")
    featurizer = Featurizer(tokenizer, rules, MaxLengths())
    if choices:
        template = load_eval_templates(sorted(Path(args.data_root, args.eval_task).iterdir()))[0]
        rows, featurize = template.dataset.select(range(batch)), featurizer.eval_features
    else:
        train, _ = load_training_mixture(args.data_root, args.train_tasks, 2).concatenated()
        rows, featurize = train.shuffle(seed=0).select(range(batch)), featurizer.train_features
    features = rows.map(featurize, batched=True, remove_columns=rows.column_names)
    collated = Collator(tokenizer.pad_token_id, pad_to_multiple_of=8)([features[i] for i in range(len(features))])
    return {k: v.to(device) for k, v in collated.items() if k not in ("target", "gold_in_choices")}


def make_batch(method: str, args, config, fusion, shapes, batch: int, device, *, choices: bool) -> dict:
    if args.data_root:
        return real_batch(method, args, fusion, batch, device, choices=choices)
    return random_batch(method, shapes, batch, config.vocab_size, device, choices=choices)


def build(method: str, config: T5Config, fusion: PerceiverXattnConfig, mode: Mode, device) -> torch.nn.Module:
    torch.manual_seed(0)
    model = model_from_config(METHODS[method], config, fusion).to(device)
    model.config._attn_implementation = mode.attention
    if method == "zemi":  # open the gates so the fusion path does real work
        with torch.no_grad():
            for block in model.xattn_stack:
                block.attn_gate.fill_(0.5)
                block.ff_gate.fill_(0.5)
    return model


def autocast(mode: Mode, device):
    return torch.autocast(device.type, dtype=mode.dtype, enabled=mode.dtype != torch.float32)


def train_step_fn(model, mode: Mode, device):
    if mode.fast:
        settings = SimpleNamespace(learning_rate=1e-4, weight_decay=0.01, fusion_learning_rate=None)
        optimizer = make_optimizer(model, settings, device)
    else:  # the original: transformers' AdamW, one parameter at a time
        optimizer = torch.optim.AdamW(parameter_groups(model, 0.01), lr=1e-4, foreach=False)
    forward = torch.compile(model) if mode.compile else model

    def step(batch):
        with autocast(mode, device):
            if mode.fast:  # the training loop's objective: summed token loss over the batch's target tokens
                summed, tokens = loss_on(forward, batch)
                loss = summed.sum() / tokens.sum()
            else:
                loss = forward(**model_inputs(batch), labels=batch["labels"]).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    return step


def timed(fn, batch, device, *, warmup: int, steps: int) -> float:
    """Seconds per call, after warm-up (compilation, allocator, autotuning)."""
    for _ in range(warmup):
        fn(batch)
    synchronize(device)
    start = time.perf_counter()
    for _ in range(steps):
        fn(batch)
    synchronize(device)
    return (time.perf_counter() - start) / steps


def synchronize(device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def reset_peak(device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()


def peak_memory_gib(device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated() / 2**30
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # process high-water mark (KiB on Linux)


def flops_of(fn, batch) -> float:
    with FlopCounterMode(display=False) as counter:
        fn(batch)
    return float(counter.get_total_flops())


def measure(method: str, mode: Mode, args, device) -> dict:
    config, fusion, shapes = backbone_config(args.config, args.lengths)
    model = build(method, config, fusion, mode, device)
    result: dict = {"train_batch": mode.train_batch, "eval_batch": mode.eval_batch, "dtype": str(mode.dtype),
                    "attention": mode.attention, "compile": mode.compile}

    model.train()
    step = train_step_fn(model, mode, device)
    batch = make_batch(method, args, config, fusion, shapes, mode.train_batch, device, choices=False)
    reset_peak(device)
    seconds = timed(step, batch, device, warmup=args.warmup, steps=args.steps)
    result["train_samples_per_s"] = mode.train_batch / seconds
    result["train_peak_memory_gib"] = peak_memory_gib(device)
    if not mode.compile:
        result["train_flop_per_sample"] = flops_of(step, batch) / mode.train_batch
    if not mode.fast and args.reference_batch_32:
        batch32 = make_batch(method, args, config, fusion, shapes, 32, device, choices=False)
        result["train_samples_per_s_batch_32"] = 32 / timed(step, batch32, device, warmup=1, steps=args.steps)
    del step, batch

    model.eval().requires_grad_(False)
    rank = rank_choices if mode.fast else rank_choices_reencoding
    batch = make_batch(method, args, config, fusion, shapes, mode.eval_batch, device, choices=True)

    def evaluate(b):
        with autocast(mode, device):
            rank(model, b)
    reset_peak(device)
    seconds = timed(evaluate, batch, device, warmup=args.warmup, steps=args.steps)
    result["eval_examples_per_s"] = mode.eval_batch / seconds
    result["eval_peak_memory_gib"] = peak_memory_gib(device)
    result["eval_flop_per_example"] = flops_of(evaluate, batch) / mode.eval_batch
    peak = device_peak(device)
    if peak:
        if "train_flop_per_sample" in result:
            result["train_mfu"] = result["train_flop_per_sample"] * result["train_samples_per_s"] / peak
        result["eval_mfu"] = result["eval_flop_per_example"] * result["eval_examples_per_s"] / peak
    del model
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return result


def rank_classification(method: str, args, device) -> dict:
    """The evaluation's computation three ways at one batch, dtype (fp32) and attention (SDPA): re-encoding per
    choice with the full-vocabulary head (the authors'), encoding once with the full head, and encoding once with
    the fused head (ours). Per example: FLOPs and seconds; the fused head's largest logits block and its largest
    score difference from the full head."""
    config, fusion, shapes = backbone_config(args.config, args.lengths)
    model = build(method, config, fusion, Mode("fast", torch.float32, "sdpa", 1, 1), device).eval().requires_grad_(False)
    batch_size = args.fast_eval_batch
    batch = make_batch(method, args, config, fusion, shapes, batch_size, device, choices=True)
    ways = {"reencode_full_head": lambda b: rank_choices_reencoding(model, b),
            "encode_once_full_head": lambda b: rank_choices(model, b, fused=False),
            "encode_once_fused_head": lambda b: rank_choices(model, b, fused=True)}
    result: dict = {"batch": batch_size, "dtype": "torch.float32", "attention": "sdpa",
                    "choices_per_example": len(batch["choice_owner"]) / batch_size}
    for name, fn in ways.items():
        seconds = timed(fn, batch, device, warmup=args.warmup, steps=args.steps)
        result[name] = {"seconds_per_example": seconds / batch_size, "flop_per_example": flops_of(fn, batch) / batch_size}
    full, fused = choice_scores(model, batch, fused=False), choice_scores(model, batch, fused=True)
    tokens = int(batch["choice_mask"].sum())
    vocab = model.lm_head.weight.shape[0]
    result["fused_head_max_abs_score_difference"] = float((full - fused).abs().max())
    result["full_head_logits_elements"] = batch["choice_ids"].numel() * vocab  # (N, T, V), then its log-softmax
    result["fused_head_logits_elements"] = tokens * min(vocab, max(1, FUSED_BLOCK_ELEMENTS // max(tokens, 1)))
    ref, once, ours = (result[k] for k in ways)
    result["ratios"] = {
        "encode_once_flop_reduction": ref["flop_per_example"] / once["flop_per_example"],
        "encode_once_speedup": ref["seconds_per_example"] / once["seconds_per_example"],
        "fused_head_speedup": once["seconds_per_example"] / ours["seconds_per_example"],
        "fused_head_logits_memory_reduction": result["full_head_logits_elements"] / result["fused_head_logits_elements"],
        "total_speedup": ref["seconds_per_example"] / ours["seconds_per_example"],
        "total_flop_reduction": ref["flop_per_example"] / ours["flop_per_example"],
    }
    return result


def device_name(device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"cpu ({os.cpu_count()} cores, {torch.get_num_threads()} threads)"


def device_peak(device) -> float | None:
    name = device_name(device)
    return next((peak for key, peak in PEAK_BF16.items() if key in name), None) if device.type == "cuda" else None


def bf16_supported(device) -> bool:
    # CPUs without bf16 matrix units run autocast bf16 slower than fp32, so the CPU fast mode stays in fp32.
    return device.type == "cuda" and torch.cuda.is_bf16_supported()


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--config", default="base", choices=("tiny", "base", "large"))
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    parser.add_argument("--steps", type=int, help="timed iterations per measurement (default: 10; tiny: 3)")
    parser.add_argument("--warmup", type=int, help="untimed iterations first (default: 3; tiny: 1)")
    parser.add_argument("--fast_train_batch", type=int, default=32, help="the recipe's global batch on one device")
    parser.add_argument("--fast_eval_batch", type=int, default=32)
    parser.add_argument("--reference_eval_batch", type=int, default=8, help="the authors' scripts evaluate 8 per device")
    parser.add_argument("--reference_train_batch", type=int, default=4, help="the authors' per-device batch")
    parser.add_argument("--lengths", default="max", choices=list(LENGTHS),
                        help="max: every input 128 tokens, documents 256 (the worst case); c4: the lengths of real "
                        "examples in the authors' retrieval files (see LENGTHS)")
    parser.add_argument("--skip_rank_classification", action="store_true",
                        help="do not run the encode-once and fused-head comparison")
    parser.add_argument("--reference_batch_32", action="store_true", help="also time the reference at batch 32")
    parser.add_argument("--fast_dtype", default="bf16", choices=("bf16", "fp32"))
    parser.add_argument("--compile", action="store_true", help="torch.compile the fast training step")
    parser.add_argument("--output", help="also write the JSON here")
    parser.add_argument("--data_root", help="a 30aug root: time real examples (real lengths) instead of fixed shapes")
    parser.add_argument("--tokenizer", default="google/t5-base-lm-adapt", help="with --data_root")
    parser.add_argument("--train_tasks", nargs="+", default=["cos_e_v1.11", "cosmos_qa", "dream", "qasc", "quartz",
                                                              "sciq", "social_i_qa", "wiqa"], help="with --data_root")
    parser.add_argument("--eval_task", default="super_glue_copa", help="with --data_root")
    args = parser.parse_args(argv)
    tiny = args.config == "tiny"
    args.steps = args.steps or (3 if tiny else 10)
    args.warmup = args.warmup if args.warmup is not None else (1 if tiny else 3)
    if tiny:  # small batches keep the CPU smoke run under a minute
        args.fast_train_batch, args.fast_eval_batch = min(args.fast_train_batch, 8), min(args.fast_eval_batch, 8)
    device = torch.device(args.device)
    torch.backends.cuda.matmul.allow_tf32 = False  # fp32 as published: no TF32 in the reference
    fast_dtype = torch.bfloat16 if args.fast_dtype == "bf16" and bf16_supported(device) else torch.float32
    reference = Mode("reference", torch.float32, "eager", args.reference_train_batch, args.reference_eval_batch)
    fast = Mode("fast", fast_dtype, "sdpa", args.fast_train_batch, args.fast_eval_batch, compile=args.compile)
    _, _, shapes = backbone_config(args.config, args.lengths)
    report = {"device": device_name(device), "config": args.config, "lengths": args.lengths,
              "shapes": f"real examples of {args.data_root}" if args.data_root else dataclasses.asdict(shapes),
              "torch": torch.__version__, "methods": {}}
    for method in args.methods:
        ref, ours = measure(method, reference, args, device), measure(method, fast, args, device)
        best_reference_train = max(ref["train_samples_per_s"], ref.get("train_samples_per_s_batch_32", 0))
        report["methods"][method] = {"reference": ref, "fast": ours, "speedup": {
            "train": ours["train_samples_per_s"] / best_reference_train,
            "train_vs_reference_batch_4": ours["train_samples_per_s"] / ref["train_samples_per_s"],
            "eval": ours["eval_examples_per_s"] / ref["eval_examples_per_s"]}}
        if not args.skip_rank_classification:
            report["methods"][method]["rank_classification"] = rank_classification(method, args, device)
        if args.output:  # what is measured so far survives an interrupted run
            Path(args.output).write_text(json.dumps(report, indent=2) + "\n")
        print(f"{method}: train x{report['methods'][method]['speedup']['train']:.2f}, "
              f"eval x{report['methods'][method]['speedup']['eval']:.2f}", file=sys.stderr)
    text = json.dumps(report, indent=2)
    print(text)
    if args.output:
        Path(args.output).write_text(text + "\n")
    return report


if __name__ == "__main__":
    main()
