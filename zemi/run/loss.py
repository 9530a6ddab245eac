"""The training objective, computed one way for training, validation and the benchmarks: token cross-entropy of the
target given the input (and documents), teacher-forced."""

from __future__ import annotations

import torch

from zemi.data.collate import LABEL_PAD
from zemi.models.modeling_t5 import model_inputs


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    """The model inside torch.compile's and DDP's wrappers (for `_shift_right` and saving)."""
    model = getattr(model, "_orig_mod", model)
    return getattr(model, "module", model)


def loss_on(model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Per example: the summed token loss (B,) in fp32 and the number of target tokens (B,). Callers choose the
    normalisation (training divides the sum by the global token count, validation gathers both)."""
    labels = batch["labels"]
    logits = model(**model_inputs(batch), decoder_input_ids=unwrap(model)._shift_right(labels), use_cache=False).logits
    per_token = torch.nn.functional.cross_entropy(logits.float().transpose(1, 2), labels, ignore_index=LABEL_PAD,
                                                  reduction="none")  # (B, T)
    return per_token.sum(-1), (labels != LABEL_PAD).sum(-1)
