"""Gradient accumulation in the training loop: the gradient-sync boundary (where DeepSpeed's engine steps) is the
last micro-batch of every optimizer step, an epoch's short last step included; the losses differentiated over a step
add up to the step's mean token loss; micro-batches accumulated on one process reach the weights of the same
examples taken as one batch."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from accelerate import Accelerator
from safetensors.torch import load_file

from tests.helpers import STEPS_PER_EPOCH, common_flags, method_flags, read_csv
from zemi import multi_task_fine_tune_baseline
from zemi.run.config import parse_training
from zemi.run.method import method_for
from zemi.run.training import Trainer

pytestmark = pytest.mark.e2e


class BackwardRecorder(Accelerator):
    """accelerate's Accelerator, noting at each backward whether it closes an optimizer step and the loss it
    differentiates (outside DeepSpeed, the one given divided by the Accelerator's accumulation steps)."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.boundaries: list[bool] = []
        self.losses: list[float] = []

    def backward(self, loss, **kwargs):
        self.boundaries.append(self.sync_gradients)
        self.losses.append(loss.detach().item() / self.gradient_accumulation_steps)
        super().backward(loss, **kwargs)


def test_each_step_syncs_on_its_last_micro_batch_and_differentiates_its_mean_token_loss(
        tmp_path, backbone_without_dropout, data_root, one_thread):
    _, flags = method_flags("no_aug", backbone_without_dropout, Path())
    config = parse_training(flags + common_flags(data_root, tmp_path / "run", epochs=2)
                            + ["--gradient_accumulation_steps", "4"])
    accelerator = BackwardRecorder(mixed_precision=config.mixed_precision)
    trainer = Trainer(config, method_for(config, family="baseline"), accelerator)
    trainer.prepare()
    trainer.train()
    # 18 micro-batches an epoch in steps of 4: four full steps, then a short one of 2 that must still step.
    epoch = [False, False, False, True] * 4 + [False, True]
    assert accelerator.boundaries == epoch * 2
    log = read_csv(tmp_path / "run" / "train_log.csv")
    assert [int(row["step"]) for row in log] == list(range(1, 11))
    sizes = [4, 4, 4, 4, 2] * 2
    ends = [sum(sizes[: i + 1]) for i in range(len(sizes))]
    differentiated = [sum(accelerator.losses[end - size:end]) for end, size in zip(ends, sizes)]
    assert differentiated == pytest.approx([float(row["loss"]) for row in log], rel=1e-5)


def test_accumulated_micro_batches_reach_the_weights_of_one_batch(tmp_path, backbone_without_dropout, data_root,
                                                                  no_aug_one_process, one_thread):
    _, flags = method_flags("no_aug", backbone_without_dropout, Path())
    whole = no_aug_one_process  # batch 4
    halves = multi_task_fine_tune_baseline.main(flags + common_flags(data_root, tmp_path / "halves", batch=2, epochs=1)
                                                + ["--gradient_accumulation_steps", "2"])
    curve_whole = [float(row["loss"]) for row in read_csv(whole / "train_log.csv")]
    curve_halves = [float(row["loss"]) for row in read_csv(halves / "train_log.csv")]
    assert len(curve_whole) == len(curve_halves) == STEPS_PER_EPOCH
    assert max(abs(a - b) for a, b in zip(curve_whole, curve_halves)) < 1e-5
    expected = load_file(whole / f"step_{STEPS_PER_EPOCH}" / "model.safetensors")
    got = load_file(halves / f"step_{STEPS_PER_EPOCH}" / "model.safetensors")
    for name in expected:
        assert torch.allclose(expected[name], got[name], atol=1e-5, rtol=0), name
