"""Zemi and FiD as Hugging Face models: importing the model layer (`zemi.models`, or any `zemi.modeling_t5` import)
registers them with AutoConfig / AutoModelForSeq2SeqLM while `import zemi` stays light, saved directories load as
their own class with every weight (through Auto, `build_model` and a run directory alike), and plain T5 stays T5."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch
from transformers import AutoConfig, AutoModelForSeq2SeqLM, T5ForConditionalGeneration

from tests.helpers import TINY_PERCEIVER, random_batch, subprocess_env, tiny_perceiver_config
from zemi.errors import ConfigError
from zemi.models.configuration_zemi import ZemiConfig, ZemiFiDConfig, load_model_config
from zemi.models.modeling_t5 import (
    T5ForConditionalGenerationFiD,
    T5ForConditionalGenerationMultiAug,
    T5WithOwnLMHead,
    model_inputs,
)
from zemi.models.registry import build_model
from zemi.run.run_directory import RunDirectory

pytestmark = pytest.mark.unit

ARCHITECTURES = {  # architecture -> (model class, model_type written)
    "SharedEncoderDecoder_MultiAug": (T5ForConditionalGenerationMultiAug, "zemi"),
    "SharedEncoderDecoder_MultiAug_NoTanhGate": (T5ForConditionalGenerationMultiAug, "zemi"),
    "SharedEncoderDecoder_MultiAug_FrozenAugEncoder": (T5ForConditionalGenerationMultiAug, "zemi"),
    "FiD": (T5ForConditionalGenerationFiD, "zemi_fid"),
    "T5": (T5WithOwnLMHead, "t5"),
}


def trained_looking(architecture, backbone):
    """A model whose every weight (gates included) is random, so a weight left behind would change the logits."""
    model = build_model(architecture, backbone, tiny_perceiver_config() if architecture != "T5" else None)
    torch.manual_seed(1)
    with torch.no_grad():
        for param in model.parameters():
            param.normal_(0, 0.2)
    return model.eval()


def logits(model) -> torch.Tensor:
    batch = random_batch()
    inputs = model_inputs(batch)
    if not isinstance(model, (T5ForConditionalGenerationFiD, T5ForConditionalGenerationMultiAug)):
        inputs = {name: inputs[name] for name in ("input_ids", "attention_mask")}
    with torch.no_grad():
        return model.eval()(**inputs, labels=batch["labels"]).logits


REGISTERED = ("from transformers import AutoModelForSeq2SeqLM, CONFIG_MAPPING; "
              "print('zemi' in CONFIG_MAPPING, 'zemi_fid' in CONFIG_MAPPING, "
              "sorted(c.__name__ for c in AutoModelForSeq2SeqLM._model_mapping.values() if c.__module__.startswith('zemi')))")


@pytest.mark.e2e
def test_import_zemi_is_light_and_importing_the_models_registers_them():
    """In a fresh process. `zemi.modeling_t5`, the original module name, imports from `zemi.models`, so Python runs
    `zemi/models/__init__.py` (where the registration is) for it too."""
    code = ("import sys, zemi; print(sorted(m for m in ('torch', 'transformers', 'zemi.models') if m in sys.modules)); "
            + REGISTERED + "; import zemi.models; " + REGISTERED)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                          env=subprocess_env())
    assert done.returncode == 0, done.stderr[-2000:]
    light, before, after = done.stdout.strip().split("\n")
    assert light == "[]"
    assert before == "False False []"  # importing transformers' Auto API alone registers nothing
    assert after == "True True ['T5ForConditionalGenerationFiD', 'T5ForConditionalGenerationMultiAug']"


@pytest.mark.parametrize("architecture", sorted(ARCHITECTURES))
def test_a_saved_directory_loads_through_auto_as_its_own_class(tmp_path, tiny_t5_dir, one_thread, architecture):
    model_class, model_type = ARCHITECTURES[architecture]
    model = trained_looking(architecture, tiny_t5_dir)
    model.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "config.json").read_text())
    assert saved["model_type"] == model_type

    loaded = AutoModelForSeq2SeqLM.from_pretrained(tmp_path)
    assert isinstance(loaded, model_class if model_type != "t5" else T5ForConditionalGeneration)
    assert loaded.state_dict().keys() == model.state_dict().keys()
    assert torch.equal(logits(loaded), logits(model))
    if model_type != "t5":
        config = AutoConfig.from_pretrained(tmp_path)
        assert config.model_architecture == architecture
        assert config.perceiver_xattn_config == loaded.config.perceiver_xattn_config
        assert torch.equal(logits(build_model(architecture, tmp_path)), logits(model))


def trainable(model) -> set[str]:
    return {name.split(".")[0] for name, param in model.named_parameters() if param.requires_grad}


def test_ablations_load_as_themselves(tmp_path, tiny_t5_dir):
    for architecture, check in (("SharedEncoderDecoder_MultiAug_NoTanhGate", lambda m: m.fusion_config.gate == "none"),
                                ("SharedEncoderDecoder_MultiAug_FrozenAugEncoder",
                                 lambda m: m.fusion_config.separate_aug_encoder and "frozen_encoder" not in trainable(m))):
        build_model(architecture, tiny_t5_dir, tiny_perceiver_config()).save_pretrained(tmp_path / architecture)
        assert check(AutoModelForSeq2SeqLM.from_pretrained(tmp_path / architecture))
    build_model("SharedEncoderDecoder_MultiAug", tiny_t5_dir, tiny_perceiver_config(freeze_lm=True)).save_pretrained(
        tmp_path / "freeze_lm")
    assert trainable(AutoModelForSeq2SeqLM.from_pretrained(tmp_path / "freeze_lm")) == {"perceiver_resampler",
                                                                                         "xattn_stack"}


@pytest.mark.parametrize("architecture", ["SharedEncoderDecoder_MultiAug", "FiD"])
def test_a_run_directory_of_saved_steps_loads_as_auto_does(tmp_path, tiny_t5_dir, one_thread, architecture):
    model = trained_looking(architecture, tiny_t5_dir)
    model.save_pretrained(tmp_path / "step_3")
    (tmp_path / "args.json").write_text(json.dumps({"lm_name": str(tiny_t5_dir), "model_architecture": architecture}))
    (tmp_path / "perceiver_config.json").write_text(json.dumps(TINY_PERCEIVER))
    run = RunDirectory.open(tmp_path)
    loaded = run.load_model(run.checkpoints()[0][1])
    assert type(loaded) is type(model)
    assert torch.equal(logits(loaded), logits(model))
    through_auto = AutoModelForSeq2SeqLM.from_pretrained(tmp_path / "step_3")
    assert type(through_auto) is type(model)
    assert torch.equal(logits(through_auto), logits(model))
    loaded.save_pretrained(tmp_path / "resaved")
    assert torch.equal(logits(AutoModelForSeq2SeqLM.from_pretrained(tmp_path / "resaved")), logits(model))


def test_a_plain_t5_directory_still_loads_as_transformers_t5(tmp_path, tiny_t5_dir):
    stock = T5ForConditionalGeneration.from_pretrained(tiny_t5_dir)
    stock.save_pretrained(tmp_path / "stock")
    loaded = AutoModelForSeq2SeqLM.from_pretrained(tmp_path / "stock")
    assert type(loaded) is T5ForConditionalGeneration
    assert torch.equal(logits(loaded), logits(stock))
    assert type(AutoModelForSeq2SeqLM.from_config(stock.config)) is T5ForConditionalGeneration


def test_config_classes_and_an_unknown_model_type(tmp_path, tiny_t5_dir):
    assert type(load_model_config(tiny_t5_dir)).__name__ == "T5Config"
    zemi = build_model("SharedEncoderDecoder_MultiAug", tiny_t5_dir, tiny_perceiver_config())
    fid = build_model("FiD", tiny_t5_dir, tiny_perceiver_config())
    assert isinstance(zemi.config, ZemiConfig) and isinstance(fid.config, ZemiFiDConfig)
    assert (zemi.config.model_type, fid.config.model_type) == ("zemi", "zemi_fid")
    assert fid.config.perceiver_xattn_config["num_aug_sources"] == TINY_PERCEIVER["num_aug_sources"]
    # the backbone's own settings survive the change of class (T5 v1.1: its own LM head)
    assert zemi.config.scale_decoder_outputs is False and zemi.config.d_model == 32
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "bert"}))
    with pytest.raises(ConfigError, match="model_type 'bert'"):
        load_model_config(tmp_path)
