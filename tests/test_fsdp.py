"""Sharded training: the shipped accelerate configs (DDP, FSDP, DeepSpeed ZeRO-2/3) load with accelerate's own reader
and hold the settings the training loop relies on; on two or more GPUs, an FSDP run ends with the checkpoint of a DDP
run (same keys, shapes and weights) and resumes.

On CPU, FSDP cannot be tested: accelerate 1.15 turns FSDP (and DeepSpeed) on only over GPU-type process groups, so
an FSDP config launched with gloo trains as plain DDP. The gathering every process takes part in
(`accelerator.get_state_dict` on all ranks) and the two-process resume run on CPU in tests/test_multinode.py."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch
from accelerate.commands.config.config_args import load_config_from_file
from safetensors.torch import load_file

from tests.helpers import REPO, STEPS_PER_EPOCH, common_flags, free_port, method_flags, subprocess_env

pytestmark = pytest.mark.e2e

CONFIGS = REPO / "training" / "accelerate_configs"


@pytest.mark.unit
def test_every_shipped_config_loads_and_holds_what_the_training_loop_needs():
    names = sorted(path.name for path in CONFIGS.glob("*.yaml"))
    assert names == ["ddp.yaml", "deepspeed_zero2.yaml", "deepspeed_zero3.yaml", "fsdp.yaml"]
    configs = {name: load_config_from_file(str(CONFIGS / name)) for name in names}
    assert {name: str(c.distributed_type).split(".")[-1] for name, c in configs.items()} == {
        "ddp.yaml": "MULTI_GPU", "deepspeed_zero2.yaml": "DEEPSPEED", "deepspeed_zero3.yaml": "DEEPSPEED",
        "fsdp.yaml": "FSDP"}
    fsdp = configs["fsdp.yaml"].fsdp_config
    # The gates and parameter groups are looked up by the modules' own names; every process loads the backbone.
    assert fsdp["fsdp_use_orig_params"] is True and fsdp["fsdp_cpu_ram_efficient_loading"] is False
    assert fsdp["fsdp_transformer_layer_cls_to_wrap"] == "T5Block"
    for name in ("deepspeed_zero2.yaml", "deepspeed_zero3.yaml"):
        # Accumulation is the loop's own (it marks each step's last micro-batch): DeepSpeed must not divide again.
        assert configs[name].deepspeed_config["gradient_accumulation_steps"] == 1
    assert configs["deepspeed_zero3.yaml"].deepspeed_config["zero3_save_16bit_model"] is True


def gpu_launch(config: Path, args: list[str], processes: int) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(config), "--num_processes",
               str(processes), "--main_process_port", free_port(), "-m", "zemi.multi_task_fine_tune_xattn", *args]
    return subprocess.run(command, cwd=REPO, env=subprocess_env(), capture_output=True, text=True, timeout=900)


@pytest.mark.gpu
def test_fsdp_ends_with_the_checkpoint_of_ddp_and_resumes(tmp_path, backbone_without_dropout, data_root,
                                                          perceiver_json):
    if torch.cuda.device_count() < 2:
        pytest.skip("needs two GPUs")
    _, flags = method_flags("zemi", backbone_without_dropout, perceiver_json)
    weights = {}
    for name in ("ddp", "fsdp"):
        config = tmp_path / f"{name}.yaml"
        config.write_text((CONFIGS / f"{name}.yaml").read_text().replace("mixed_precision: bf16",
                                                                         "mixed_precision: 'no'"))
        run = tmp_path / name
        args = flags + common_flags(data_root, run, batch=2) + ["--checkpointing_steps", "4", "--mixed_precision",
                                                                "no", "--report_to", "none"]
        done = gpu_launch(config, args, processes=2)
        assert done.returncode == 0, done.stderr[-3000:]
        weights[name] = load_file(run / f"step_{2 * STEPS_PER_EPOCH}" / "model.safetensors")
        if name == "fsdp":  # resume from the last epoch's state: one more epoch
            more = gpu_launch(config, args + ["--num_train_epochs", "3", "--resume_from_checkpoint", "latest"],
                              processes=2)
            assert more.returncode == 0, more.stderr[-3000:]
            assert (run / f"step_{3 * STEPS_PER_EPOCH}" / "model.safetensors").is_file()
    assert {k: v.shape for k, v in weights["fsdp"].items()} == {k: v.shape for k, v in weights["ddp"].items()}
    for key in weights["ddp"]:
        assert torch.allclose(weights["fsdp"][key], weights["ddp"][key], atol=1e-4, rtol=1e-3), key
