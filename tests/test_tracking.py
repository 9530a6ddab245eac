"""Tracking through accelerate's trackers: which ones --report_to and the authors' --wandb_proj start, Zemi's gates
as logged, and real runs that write a TensorBoard event file (read back here) and an offline W&B run."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import torch
from accelerate import Accelerator

from tests.helpers import STEPS_PER_EPOCH, ZEMI, common_flags, method_flags, read_csv, run_module, subprocess_env, \
    tiny_perceiver_config, tiny_t5_config
from zemi import multi_task_fine_tune_xattn
from zemi.errors import ConfigError
from zemi.models.modeling_t5 import T5ForConditionalGenerationMultiAug
from zemi.run.tracking import fusion_gates, hyperparameters, resolve_report_to

pytestmark = pytest.mark.unit

HAS_TENSORBOARD = importlib.util.find_spec("tensorboard") is not None
HAS_WANDB = importlib.util.find_spec("wandb") is not None
STEP_METRICS = {"loss", "last_lr", "samples_per_s", "tokens_per_s", "tanh_attn_gate_0", "tanh_ff_gate_0"}


def test_report_to_choices_and_the_authors_wandb_flag():
    assert resolve_report_to("none", wandb_proj="ignored") == []
    assert resolve_report_to(None) == (["tensorboard"] if HAS_TENSORBOARD else [])
    assert resolve_report_to(None, wandb_proj="zemi")[-1:] == ["wandb"]  # the authors' flag alone turns W&B on
    with pytest.raises(ConfigError, match="--report_to must be one of"):
        resolve_report_to("mlflow")


def test_settings_become_scalar_hyperparameters():
    assert hyperparameters({"lr": 1e-4, "dirs": ["a", "b"], "steps": None, "debug": False}) == {
        "lr": 1e-4, "dirs": "a b", "steps": "None", "debug": False}


def test_gates_are_logged_after_tanh_and_the_ungated_ablation_has_none():
    accelerator = Accelerator()
    model = T5ForConditionalGenerationMultiAug(tiny_t5_config(), tiny_perceiver_config(num_xattn_layers=2))
    # With several layers the authors' stack interleaves gated blocks with plain T5 blocks: named by position.
    first, second = [i for i, block in enumerate(model.xattn_stack) if hasattr(block, "attn_gate")]
    with torch.no_grad():
        model.xattn_stack[first].attn_gate.fill_(0.5)
        model.xattn_stack[second].ff_gate.fill_(-2.0)
    gates = fusion_gates(model, accelerator)
    assert gates == pytest.approx({
        f"tanh_attn_gate_{first}": torch.tanh(torch.tensor(0.5)).item(), f"tanh_ff_gate_{first}": 0.0,
        f"tanh_attn_gate_{second}": 0.0, f"tanh_ff_gate_{second}": torch.tanh(torch.tensor(-2.0)).item()})
    ungated = T5ForConditionalGenerationMultiAug(tiny_t5_config(), tiny_perceiver_config(gate="none"))
    assert fusion_gates(ungated, accelerator) == {}


@pytest.mark.e2e
@pytest.mark.skipif(not HAS_TENSORBOARD, reason="tensorboard is not installed (pip install 'zemi[tracking]')")
def test_a_training_run_writes_tensorboard_events_with_every_metric(tmp_path, backbone_dir, data_root,
                                                                     perceiver_json, one_thread):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    _, flags = method_flags("zemi", backbone_dir, perceiver_json)
    run_dir = multi_task_fine_tune_xattn.main(flags + common_flags(data_root, tmp_path / "run")
                                              + ["--report_to", "tensorboard"])
    events = EventAccumulator(str(run_dir / "tensorboard"))
    events.Reload()
    assert STEP_METRICS | {"dev_loss"} <= set(events.Tags()["scalars"])
    for tag in STEP_METRICS:
        assert [e.step for e in events.Scalars(tag)] == list(range(1, 2 * STEPS_PER_EPOCH + 1)), tag
    assert [e.step for e in events.Scalars("dev_loss")] == [STEPS_PER_EPOCH, 2 * STEPS_PER_EPOCH]
    # The same numbers as the run's CSV files, which carry the gates too (the plots read them).
    log = read_csv(run_dir / "train_log.csv")
    assert [e.value for e in events.Scalars("loss")] == pytest.approx([float(r["loss"]) for r in log], rel=1e-6)
    assert [e.value for e in events.Scalars("tanh_attn_gate_0")] == pytest.approx(
        [float(r["tanh_attn_gate_0"]) for r in log], abs=1e-7)
    assert [e.value for e in events.Scalars("dev_loss")] == pytest.approx(
        [float(r["dev_loss"]) for r in read_csv(run_dir / "results.csv")], rel=1e-6)
    assert all(e.value > 0 for e in events.Scalars("tokens_per_s"))
    assert abs(float(log[-1]["tanh_attn_gate_0"])) > 0  # the gates opened during training


@pytest.mark.e2e
@pytest.mark.skipif(not HAS_WANDB, reason="wandb is not installed (pip install 'zemi[tracking]')")
def test_the_authors_wandb_flags_write_an_offline_wandb_run(tmp_path, backbone_dir, data_root, perceiver_json):
    _, flags = method_flags("zemi", backbone_dir, perceiver_json)
    run_dir = tmp_path / "run"
    done = run_module("zemi.multi_task_fine_tune_xattn",
                      flags + common_flags(data_root, run_dir, epochs=1)
                      + ["--wandb_proj", "zemi-tests", "--wandb_run_name", "tiny-zemi-run"],
                      env=subprocess_env(WANDB_MODE="offline", WANDB_SILENT="true"))
    assert done.returncode == 0, done.stderr[-3000:]
    [wandb_file] = list((run_dir / "wandb").glob("offline-run-*/run-*.wandb"))
    recorded = wandb_file.read_bytes()  # protobuf records: names and keys are stored as plain strings
    for text in (b"zemi-tests", b"tiny-zemi-run", b"dev_loss", b"tanh_attn_gate_0", b"last_lr"):
        assert text in recorded, text
    assert json.loads((run_dir / "args.json").read_text())["wandb_proj"] == "zemi-tests"
