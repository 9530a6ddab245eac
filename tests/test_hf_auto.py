"""Zemi and FiD as Hugging Face models: `import zemi` registers them with AutoConfig / AutoModelForSeq2SeqLM (lazily),
saved directories load as their own class with every weight, plain T5 stays T5, and directories written before the
config classes existed (model_type "t5" plus a perceiver_xattn_config key) keep loading, through our loaders and
through Auto."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch
from transformers import AutoConfig, AutoModelForSeq2SeqLM, T5ForConditionalGeneration

from tests.helpers import TINY_PERCEIVER, random_batch, subprocess_env
from zemi.errors import ConfigError
from zemi.models.configuration_zemi import ZemiConfig, ZemiFiDConfig, load_model_config
from zemi.models.modeling_t5 import (
    T5ForConditionalGenerationFiD,
    T5ForConditionalGenerationMultiAug,
    T5WithOwnLMHead,
    build_model,
    model_inputs,
)
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
    model = build_model(architecture, backbone, TINY_PERCEIVER if architecture != "T5" else None)
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


def test_import_zemi_is_light_and_registers_when_the_auto_api_is_imported():
    code = ("import sys, zemi; heavy = sorted(m for m in ('torch', 'transformers', 'zemi.models') if m in sys.modules); "
            "from transformers import AutoModelForSeq2SeqLM, CONFIG_MAPPING; "
            "print(heavy, 'zemi' in CONFIG_MAPPING, 'zemi_fid' in CONFIG_MAPPING, "
            "[c.__name__ for c in AutoModelForSeq2SeqLM._model_mapping.values() if c.__module__.startswith('zemi')])")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                          env=subprocess_env())
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split("\n")[0] == (
        "[] True True ['T5ForConditionalGenerationMultiAug', 'T5ForConditionalGenerationFiD', 'T5OrPreviousFormat']")


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


def test_ablations_load_as_themselves(tmp_path, tiny_t5_dir):
    for architecture, check in (("SharedEncoderDecoder_MultiAug_NoTanhGate", lambda m: m.fusion_config.gate == "none"),
                                ("SharedEncoderDecoder_MultiAug_FrozenAugEncoder",
                                 lambda m: m.fusion_config.separate_aug_encoder)):
        build_model(architecture, tiny_t5_dir, TINY_PERCEIVER).save_pretrained(tmp_path / architecture)
        assert check(AutoModelForSeq2SeqLM.from_pretrained(tmp_path / architecture))


def write_previous_format(model, path):
    """A directory as saved before the config classes existed: config.json with model_type "t5" (Zemi's with a
    perceiver_xattn_config key, FiD's without), no model_architecture, safetensors weights."""
    model.save_pretrained(path)
    values = json.loads((path / "config.json").read_text())
    values["model_type"] = "t5"
    values.pop("model_architecture", None)
    if isinstance(model, T5ForConditionalGenerationFiD):
        values.pop("perceiver_xattn_config")
    (path / "config.json").write_text(json.dumps(values))


@pytest.mark.parametrize("architecture", ["SharedEncoderDecoder_MultiAug", "FiD"])
def test_directories_in_the_previous_format_keep_loading(tmp_path, tiny_t5_dir, one_thread, architecture):
    model = trained_looking(architecture, tiny_t5_dir)
    write_previous_format(model, tmp_path / "step_3")
    assert type(load_model_config(tmp_path / "step_3")).__name__ == "T5Config"
    assert torch.equal(logits(build_model(architecture, tmp_path / "step_3")), logits(model))

    (tmp_path / "args.json").write_text(json.dumps({"lm_name": str(tiny_t5_dir), "model_architecture": architecture}))
    (tmp_path / "perceiver_config.json").write_text(json.dumps(TINY_PERCEIVER))
    run = RunDirectory.open(tmp_path)
    loaded = run.load_model(run.checkpoints()[0][1])
    assert type(loaded) is type(model)
    assert torch.equal(logits(loaded), logits(model))
    # Auto reads the previous format too (the class save_pretrained recorded tells Zemi and FiD from T5) ...
    through_auto = AutoModelForSeq2SeqLM.from_pretrained(tmp_path / "step_3")
    assert type(through_auto) is type(model)
    assert torch.equal(logits(through_auto), logits(model))
    # ... and saved again, it is in the new format.
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
    zemi = build_model("SharedEncoderDecoder_MultiAug", tiny_t5_dir, TINY_PERCEIVER)
    fid = build_model("FiD", tiny_t5_dir, TINY_PERCEIVER)
    assert isinstance(zemi.config, ZemiConfig) and isinstance(fid.config, ZemiFiDConfig)
    assert (zemi.config.model_type, fid.config.model_type) == ("zemi", "zemi_fid")
    assert fid.config.perceiver_xattn_config["num_aug_sources"] == TINY_PERCEIVER["num_aug_sources"]
    # the backbone's own settings survive the change of class (T5 v1.1: its own LM head)
    assert zemi.config.scale_decoder_outputs is False and zemi.config.d_model == 32
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "bert"}))
    with pytest.raises(ConfigError, match="model_type 'bert'"):
        load_model_config(tmp_path)
