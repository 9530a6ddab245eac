"""Tied weights at save time: the ties a T5's config declares (its token embeddings, and the LM head of an original
T5) are saved once, in the training state and in `step_N`, without accelerate's "Removed shared tensor" warning; an
LM head shared against the config is reported and saved as trained."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from accelerate import Accelerator
from safetensors import safe_open

from tests.fixture_data import build_tokenizer
from tests.helpers import common_flags, logged, method_flags, tiny_t5_config
from zemi import multi_task_fine_tune_baseline
from zemi.modeling_t5 import T5WithOwnLMHead
from zemi.run.run_directory import save_model_atomic
from zemi.run.tied_weights import drop_declared_ties_before_save_state

ACCELERATE_SAVE_LOGGER = "accelerate.utils.other"  # clean_state_dict_for_safetensors, called by save_state
pytestmark = [pytest.mark.unit, pytest.mark.usefixtures("one_thread")]


def prepared(model: torch.nn.Module) -> tuple[Accelerator, torch.nn.Module]:
    accelerator = Accelerator()
    model = accelerator.prepare(model)
    accelerator.register_save_state_pre_hook(drop_declared_ties_before_save_state)
    return accelerator, model


def saved_names(path: Path) -> set[str]:
    with safe_open(path, "pt") as handle:
        return set(handle.keys())


@pytest.mark.parametrize("tied", [True, False], ids=["original_t5_tied_head", "t5_v1_1_own_head"])
def test_the_training_state_of_a_t5_saves_without_warning_and_loads_back(tmp_path, tied):
    torch.manual_seed(0)
    accelerator, model = prepared(T5WithOwnLMHead(tiny_t5_config(tie_word_embeddings=tied)))
    expected = {name: tensor.clone() for name, tensor in model.state_dict().items()}
    with logged(ACCELERATE_SAVE_LOGGER) as warnings:
        accelerator.save_state(str(tmp_path / "state"))
    assert warnings == []
    assert ("lm_head.weight" in saved_names(tmp_path / "state" / "model.safetensors")) == (not tied)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.zero_()
    accelerator.load_state(str(tmp_path / "state"))
    for name, tensor in model.state_dict().items():
        assert torch.equal(tensor, expected[name]), name
    assert (model.lm_head.weight.data_ptr() == model.shared.weight.data_ptr()) == tied


def test_an_lm_head_shared_against_the_config_is_reported_and_saved_as_trained(tmp_path):
    torch.manual_seed(0)
    model = T5WithOwnLMHead(tiny_t5_config(tie_word_embeddings=False))
    model.lm_head.weight = model.shared.weight  # what the config of a T5 v1.1 says must not happen
    accelerator, model = prepared(model)
    with logged(ACCELERATE_SAVE_LOGGER) as state_warnings:
        accelerator.save_state(str(tmp_path / "state"))
    assert any("lm_head.weight" in message for message in state_warnings)

    with logged("zemi.run.tied_weights") as warnings:
        save_model_atomic(model, tmp_path / "step_1")
    assert len(warnings) == 1 and "lm_head.weight" in warnings[0] and str(tmp_path / "step_1") in warnings[0]
    reloaded = T5WithOwnLMHead.from_pretrained(tmp_path / "step_1")
    assert torch.equal(reloaded.lm_head.weight, model.shared.weight)


@pytest.mark.e2e
def test_training_a_tied_backbone_logs_no_removed_shared_tensor(tmp_path, data_root):
    backbone = tmp_path / "tied_backbone"
    tokenizer = build_tokenizer(backbone)
    torch.manual_seed(0)
    T5WithOwnLMHead(tiny_t5_config(vocab_size=len(tokenizer), tie_word_embeddings=True)).save_pretrained(backbone)
    _, flags = method_flags("no_aug", backbone, Path())
    with logged(ACCELERATE_SAVE_LOGGER) as warnings:
        run_dir = multi_task_fine_tune_baseline.main(flags + common_flags(data_root, tmp_path / "run", epochs=1)
                                                     + ["--checkpointing_steps", "5"])
    assert warnings == []
    reloaded = T5WithOwnLMHead.from_pretrained(run_dir / "step_18")
    assert reloaded.lm_head.weight.data_ptr() == reloaded.shared.weight.data_ptr()
