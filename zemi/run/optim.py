"""The optimizer of the paper's recipe: AdamW over parameter groups (no weight decay on biases and norm weights), by
default with the update rule of the `transformers.AdamW` the authors trained with, on torch's own AdamW kernels."""

from __future__ import annotations

import math

import torch

from zemi.run.config import OPTIMIZERS, TrainConfig

# The original excludes "bias" and "LayerNorm.weight" from weight decay. T5's norm weights are named `layer_norm`
# (and `final_layer_norm`), so the second pattern matches nothing there: they are decayed, in the original and here.
NO_DECAY = ("bias", "LayerNorm.weight")

# The default eps of each rule (OPTIMIZERS in zemi.run.config): transformers.AdamW's 1e-6, which the authors kept
# (they pass only the learning rate), and torch.optim.AdamW's 1e-8.
HF_EPS = 1e-6
TORCH_EPS = 1e-8


def parameter_groups(model: torch.nn.Module, weight_decay: float,
                     fusion_learning_rate: float | None = None) -> list[dict]:
    """AdamW groups: no weight decay for parameters named like NO_DECAY (biases; "LayerNorm.weight" matches none of
    T5's norms, which are decayed, as in the original); with `fusion_learning_rate`, the fusion
    modules of Zemi (whatever `model.fusion_modules()` returns) get their own learning rate."""
    fusion = set()
    if fusion_learning_rate is not None and hasattr(model, "fusion_modules"):
        fusion = {id(p) for module in model.fusion_modules() for p in module.parameters()}
    groups = []
    for in_fusion in (False, True):
        params = [(n, p) for n, p in model.named_parameters() if p.requires_grad and (id(p) in fusion) == in_fusion]
        extra = {"lr": fusion_learning_rate} if in_fusion else {}
        decayed = [p for n, p in params if not any(nd in n for nd in NO_DECAY)]
        undecayed = [p for n, p in params if any(nd in n for nd in NO_DECAY)]
        groups += [{"params": group, "weight_decay": decay, **extra}
                   for group, decay in ((decayed, weight_decay), (undecayed, 0.0)) if group]
    return groups


class HFAdamW(torch.optim.AdamW):
    """The update of transformers' old `AdamW` (correct_bias=True), computed by torch's AdamW kernels (fused on CUDA).

    Follows `AdamW.step` in src/transformers/optimization.py of transformers 4.19.2, the version the authors'
    environment.yml pins (deprecated in later 4.x releases, since removed); tests/test_fidelity_optimizer.py checks
    this class against that rule written out from its formula.

    transformers:  p <- p - lr * sqrt(1 - b2^t) / (1 - b1^t) * m / (sqrt(v) + eps);  then p <- p - lr * wd * p
    torch:         p <- p - lr' * wd' * p;  then  p <- p - lr' / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps')

    They agree term for term when, for the step, eps' = eps / sqrt(1 - b2^t) (eps added before the bias correction),
    lr' = lr * (1 - lr * wd) (the update is decayed too, since transformers decays after it) and
    wd' = wd / (1 - lr * wd) (so that lr' * wd' = lr * wd). The group values are swapped in for the kernel and put back
    after it, so schedulers and checkpoints see the nominal ones. The step count t is kept per group
    (`hf_step`, saved with the optimizer's state): every parameter of a group is assumed to get a gradient at every
    step, which holds for the models here (a parameter skipped on some step would be corrected with the group's t).
    """

    def __init__(self, params, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999), eps: float = HF_EPS,
                 weight_decay: float = 0.0, **kwargs):
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, **kwargs)

    @torch.no_grad()
    def step(self, closure=None):
        nominal = []
        for group in self.param_groups:
            nominal.append((group["lr"], group["eps"], group["weight_decay"]))
            if not any(p.grad is not None for p in group["params"]):
                continue  # torch skips the group: its step count stays
            group["hf_step"] = t = group.get("hf_step", 0) + 1
            lr, eps, decay = nominal[-1]
            shrink = 1.0 - lr * decay
            group["eps"] = eps / math.sqrt(1.0 - group["betas"][1] ** t)
            group["lr"] = lr * shrink
            group["weight_decay"] = decay / shrink
        try:
            return super().step(closure)
        finally:
            for group, (lr, eps, decay) in zip(self.param_groups, nominal):
                group["lr"], group["eps"], group["weight_decay"] = lr, eps, decay


def make_optimizer(model: torch.nn.Module, config: TrainConfig, device: torch.device) -> torch.optim.Optimizer:
    """`config.optimizer` (default "adamw_hf", the authors'), fused kernels on CUDA."""
    fused = {"fused": True} if device.type == "cuda" else {}
    groups = parameter_groups(model, config.weight_decay, config.fusion_learning_rate)
    kind = getattr(config, "optimizer", OPTIMIZERS[0])
    if kind == "adamw_torch":
        return torch.optim.AdamW(groups, lr=config.learning_rate, eps=TORCH_EPS, **fused)
    return HFAdamW(groups, lr=config.learning_rate, eps=HF_EPS, **fused)
