"""Helpers shared by the test modules: tiny configs, training flags, launching the real entry points, run directories.
Fixtures live in conftest.py; the local stand-ins for downloaded models and data in fixture_data.py."""

from __future__ import annotations

import csv
import json
import logging
import os
import socket
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

import torch
from safetensors.torch import load_file
from transformers import T5Config

from zemi.modeling_t5 import PerceiverXattnConfig, build_model

REPO = Path(__file__).resolve().parents[1]

ZEMI = "SharedEncoderDecoder_MultiAug"

STEPS_PER_EPOCH = 18  # 3 templates x 24 examples / batch 4
TINY_PERCEIVER = dict(dim=32, depth=1, dim_head=8, heads=2, num_latents=4, num_aug_sources=5, ff_mult=2,
                      xattn_ff_mult=2, freeze_lm=False, cross_attn_every=1, only_attend_immediate_media=False,
                      num_xattn_layers=1)


def tiny_t5_config(**overrides) -> T5Config:
    values = dict(
        vocab_size=96, d_model=32, d_ff=48, d_kv=8, num_heads=4, num_layers=2, num_decoder_layers=2,
        feed_forward_proj="gated-gelu", tie_word_embeddings=False, decoder_start_token_id=0,
        pad_token_id=0, eos_token_id=1, dropout_rate=0.1,
    )
    values.update(overrides)
    return T5Config(**values)


def tiny_perceiver_config(**overrides) -> PerceiverXattnConfig:
    values = dict(dim=32, depth=1, dim_head=8, heads=2, num_latents=4, num_aug_sources=5, ff_mult=2, xattn_ff_mult=2)
    values.update(overrides)
    return PerceiverXattnConfig(**values)


def common_flags(data_root: Path, output_dir: Path, *, batch: int = 4, epochs: int = 2) -> list[str]:
    return ["--dataset_root_path", str(data_root), "--dataset_dir_names", "animal_colors", "animal_homes",
            "--sample_n", "2", "--num_train_epochs", str(epochs), "--per_device_train_batch_size", str(batch),
            "--learning_rate", "3e-3", "--warmup_ratio", "0.1", "--max_length", "48", "--aug_max_length", "24",
            "--target_max_length", "8", "--output_dir", str(output_dir)]


def one_epoch_no_aug_flags(backbone: Path, data_root: Path, output_dir: Path, *, batch: int) -> list[str]:
    """One epoch of No Aug with a resumable state every 4 steps: the runs compared across process and machine
    counts (batch is per process: 4 on one process, 2 on two)."""
    _, flags = method_flags("no_aug", backbone, Path())
    return flags + common_flags(data_root, output_dir, batch=batch, epochs=1) + [
        "--checkpointing_steps", "4", "--resume_from_checkpoint", "latest", "--report_to", "none"]


def method_flags(method: str, backbone: Path, perceiver: Path) -> tuple[str, list[str]]:
    return {
        "no_aug": ("baseline", ["--model_name_or_path", str(backbone), "--concat_aug_num", "0"]),
        "concat": ("baseline", ["--model_name_or_path", str(backbone), "--concat_aug_num", "3"]),
        "fid": ("xattn", ["--model_architecture", "FiD", "--lm_name", str(backbone), "--perceiver_config",
                          str(perceiver), "--concat_input_at_augmentation"]),
        "zemi": ("xattn", ["--model_architecture", "SharedEncoderDecoder_MultiAug", "--lm_name", str(backbone),
                           "--perceiver_config", str(perceiver)]),
    }[method]


def read_csv(path: Path) -> list[dict]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def subprocess_env(**extra: str) -> dict:
    env = dict(os.environ, PYTHONPATH=str(REPO), TOKENIZERS_PARALLELISM="false", OMP_NUM_THREADS="1", **extra)
    env.pop("ZEMI_CRASH_AT", None)
    env.update(extra)
    return env


def free_port() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return str(s.getsockname()[1])


def launch(module: str, args: list[str], *, processes: int = 1, env: dict | None = None, cwd: Path = REPO,
           script: str | None = None) -> subprocess.CompletedProcess:
    """`accelerate launch` on CPU. accelerate's --cpu launcher starts one process unless MPI is installed, so CPU
    process groups go through its torch.distributed launcher (gloo), as training/common.sh does."""
    target = [script] if script else ["-m", module]
    mode = ["--multi_gpu"] if processes > 1 else ["--cpu"]
    command = [sys.executable, "-m", "accelerate.commands.launch", *mode, "--num_processes", str(processes),
               "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
               "--num_cpu_threads_per_process", "1", "--main_process_port", free_port(), *target, *args]
    env = dict(env or subprocess_env(), ACCELERATE_USE_CPU="true")
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


def run_module(module: str, args: list[str], *, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", module, *args], cwd=REPO, env=env or subprocess_env(),
                          capture_output=True, text=True, timeout=600)


def run_command_here(args: list[str], capfd) -> subprocess.CompletedProcess:
    """`python -m zemi <args>` run in this process (`zemi.__main__.main`, what the process runs after its imports):
    its exit status and what it wrote to file descriptors 1 and 2, as `run_module` returns them."""
    from zemi.__main__ import main

    program = sys.argv[0]
    try:
        code = main(args)
    except SystemExit as stop:
        code = stop.code
    finally:
        sys.argv[0] = program
    out, err = capfd.readouterr()
    return subprocess.CompletedProcess([sys.executable, "-m", "zemi", *args], code, out, err)


def run_entry_here(main, argv: list[str], capsys) -> tuple[int, str, str]:
    """An entry point's `main` run as its console script runs it (`zemi.cli.run_entry`: errors become an `error:`
    line and status 2), in this process: its exit status and what it printed."""
    from zemi.cli import run_entry

    try:
        run_entry(main, argv)
        code = 0
    except SystemExit as stop:
        code = stop.code
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def write_run_dir(path: Path, backbone: Path, *, architecture: str = "T5", steps=(1,), file_form: bool = False,
                  perceiver: dict | None = None) -> Path:
    """A run directory as training (directories) or the authors' downloads (`torch.save` files) leave it."""
    path.mkdir(parents=True)
    args = {"lm_name": str(backbone), "model_architecture": architecture, "max_length": 48, "aug_max_length": 24,
            "target_max_length": 8}
    (path / "args.json").write_text(json.dumps(args))
    if perceiver is not None:
        (path / "perceiver_config.json").write_text(json.dumps(perceiver))
    for step in steps:
        torch.manual_seed(step)
        fusion = PerceiverXattnConfig.from_dict(perceiver, source="perceiver") if perceiver is not None else None
        model = build_model(architecture, backbone, fusion)
        if file_form:
            torch.save(model.state_dict(), path / f"step_{step}")
        else:
            model.save_pretrained(path / f"step_{step}")
    return path


def evaluate(run_dir: Path, data_root: Path, output_dir: Path, step: int = -1) -> dict:
    from zemi import eval_original_task_only_xattn

    paths = [str(p) for p in sorted((data_root / "weather_effect").iterdir())]
    eval_original_task_only_xattn.main(["--processed_dataset_paths", *paths, "--model_name_or_path", str(run_dir),
                                        "--saved_model_step", str(step), "--output_dir", str(output_dir),
                                        "--per_device_eval_batch_size", "6"])
    return json.loads((output_dir / "results.json").read_text())


@contextmanager
def logged(name: str, level: int = logging.WARNING):
    """Messages logged to `name` inside the block (the suite runs with -p no:logging, so without caplog)."""
    messages: list[str] = []
    handler = logging.Handler(level)
    handler.emit = lambda record: messages.append(record.getMessage())
    target = logging.getLogger(name)
    old_level = target.level
    target.addHandler(handler)
    target.setLevel(min(level, target.getEffectiveLevel()))
    try:
        yield messages
    finally:
        target.removeHandler(handler)
        target.setLevel(old_level)


def final_weights(run_dir: Path) -> dict[str, torch.Tensor]:
    return load_file(run_dir / f"step_{2 * STEPS_PER_EPOCH}" / "model.safetensors")


def random_batch(seed: int = 0, b: int = 3, m: int = 4, la: int = 7, length: int = 9, vocab: int = 96) -> dict:
    g = torch.Generator().manual_seed(seed)
    aug_attention_mask = torch.ones(b, m, la, dtype=torch.long)
    aug_attention_mask[:, :, la - 2 :] = 0  # padded document tokens
    aug_exist_idx = torch.ones(b, m, dtype=torch.long)
    aug_exist_idx[1, 2:] = 0  # example 1 has two documents, example 2 has three
    aug_exist_idx[2, 3:] = 0
    aug_attention_mask[aug_exist_idx == 0] = 0
    attention_mask = torch.ones(b, length, dtype=torch.long)
    attention_mask[0, -3:] = 0
    return {
        "input_ids": torch.randint(2, vocab, (b, length), generator=g),
        "attention_mask": attention_mask,
        "aug_input_ids": torch.randint(2, vocab, (b, m, la), generator=g),
        "aug_attention_mask": aug_attention_mask,
        "aug_exist_idx": aug_exist_idx,
        "labels": torch.randint(2, vocab, (b, 4), generator=g),
    }
