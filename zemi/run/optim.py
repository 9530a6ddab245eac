"""The optimizer of the paper's recipe: AdamW over parameter groups (no weight decay on biases and norm weights)."""

from __future__ import annotations

import torch

from zemi.run.config import TrainConfig

# The original excludes "bias" and "LayerNorm.weight" from weight decay. T5's norm weights are named `layer_norm`
# (and `final_layer_norm`), so the second pattern matches nothing there: they are decayed, in the original and here.
NO_DECAY = ("bias", "LayerNorm.weight")


def parameter_groups(model: torch.nn.Module, weight_decay: float,
                     fusion_learning_rate: float | None = None) -> list[dict]:
    """AdamW groups: no weight decay for biases and LayerNorm weights; with `fusion_learning_rate`, the fusion
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


def make_optimizer(model: torch.nn.Module, config: TrainConfig, device: torch.device) -> torch.optim.Optimizer:
    fused = {"fused": True} if device.type == "cuda" else {}
    groups = parameter_groups(model, config.weight_decay, config.fusion_learning_rate)
    return torch.optim.AdamW(groups, lr=config.learning_rate, **fused)
