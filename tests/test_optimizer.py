"""The AdamW parameter groups: weight decay as in the original, and Zemi's optional own learning rate for the new
fusion modules (`--fusion_learning_rate`), checked by what one real optimizer step does to the weights."""

from __future__ import annotations

import pytest
import torch

from tests.helpers import random_batch, tiny_perceiver_config, tiny_t5_config
from zemi.modeling_t5 import T5ForConditionalGenerationFiD, T5ForConditionalGenerationMultiAug
from zemi.run.optim import parameter_groups

pytestmark = pytest.mark.unit


def zemi_model() -> T5ForConditionalGenerationMultiAug:
    torch.manual_seed(0)
    return T5ForConditionalGenerationMultiAug(tiny_t5_config(dropout_rate=0.0), tiny_perceiver_config()).train()


def covered_once(model: torch.nn.Module, groups: list[dict]) -> bool:
    ids = [id(p) for group in groups for p in group["params"]]
    return len(ids) == len(set(ids)) and set(ids) == {id(p) for p in model.parameters() if p.requires_grad}


@pytest.mark.parametrize("fusion_learning_rate", [None, 0.1])
def test_weight_decay_follows_the_original_name_rule(fusion_learning_rate):
    # The original's rule (from the transformers examples): no decay for names with "bias" or "LayerNorm.weight".
    # T5 names its norms "layer_norm", so they are decayed there, and here too.
    model = zemi_model()
    groups = parameter_groups(model, 0.01, fusion_learning_rate)
    assert covered_once(model, groups)
    decay_of = {id(p): g["weight_decay"] for g in groups for p in g["params"]}
    for name, param in model.named_parameters():
        expected = 0.0 if "bias" in name or "LayerNorm.weight" in name else 0.01
        assert decay_of[id(param)] == expected, name


def test_without_a_fusion_rate_every_parameter_shares_one_rate():
    assert all("lr" not in group for group in parameter_groups(zemi_model(), 0.01))


def test_fusion_rate_moves_the_gates_fast_and_the_backbone_slowly():
    model = zemi_model()
    groups = parameter_groups(model, 0.0, fusion_learning_rate=0.1)
    assert covered_once(model, groups)
    optimizer = torch.optim.AdamW(groups, lr=1e-6)
    gate = model.xattn_stack[0].attn_gate
    query = model.encoder.block[0].layer[0].SelfAttention.q.weight
    query_before = query.detach().clone()
    model(**random_batch()).loss.backward()
    optimizer.step()
    # AdamW's first step moves every weight with a gradient by about its learning rate
    assert gate.detach().abs().max().item() == pytest.approx(0.1, rel=1e-3)
    assert (query.detach() - query_before).abs().max().item() == pytest.approx(1e-6, rel=1e-2)


def test_models_without_fusion_modules_ignore_the_fusion_rate():
    model = T5ForConditionalGenerationFiD(tiny_t5_config())
    groups = parameter_groups(model, 0.01, fusion_learning_rate=0.1)
    assert covered_once(model, groups)
    assert all("lr" not in group for group in groups)
