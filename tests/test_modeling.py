"""The models: published checkpoint layout, the semantics of the fusion, save/load and generate()."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import Callable

import pytest
import torch
from safetensors.torch import load_file, save_file
from transformers import T5Config

from tests.helpers import logged, random_batch, tiny_perceiver_config, tiny_t5_config
from zemi.modeling_t5 import (
    ARCHITECTURES,
    CheckpointMismatchError,
    PerceiverXattnConfig,
    T5ForConditionalGenerationFiD,
    T5ForConditionalGenerationMultiAug,
    T5WithOwnLMHead,
    build_model,
    load_original_checkpoint,
    model_from_config,
)

pytestmark = pytest.mark.unit

ZEMI = "SharedEncoderDecoder_MultiAug"
MODEL_ARCHITECTURE = {"zemi": ZEMI, "fid": "FiD", "t5": "T5"}


def published_fusion(reference_keys: dict, size: str) -> PerceiverXattnConfig:
    return PerceiverXattnConfig.from_dict(reference_keys["perceiver_xattn_config"][size], source="published")


def open_gates(model: T5ForConditionalGenerationMultiAug, value: float = 0.7) -> None:
    with torch.no_grad():
        for block in model.xattn_stack:
            block.attn_gate.fill_(value)
            block.ff_gate.fill_(value)


def tiny_zemi(**fusion) -> T5ForConditionalGenerationMultiAug:
    torch.manual_seed(0)
    return T5ForConditionalGenerationMultiAug(tiny_t5_config(), tiny_perceiver_config(**fusion)).eval()


# --- published layout --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("size", ["base", "large"])
@pytest.mark.parametrize("name", ["zemi", "fid", "t5"])
def test_state_dict_and_parameter_count_match_the_published_checkpoints(reference_keys, size, name):
    expected = reference_keys["models"][f"{name}_{size}"]
    config = T5Config(**reference_keys["t5_config"][size])
    with torch.device("meta"):
        model = model_from_config(MODEL_ARCHITECTURE[name], config, published_fusion(reference_keys, size))
    assert {k: list(v.shape) for k, v in model.state_dict().items()} == expected["state_dict"]
    assert sum(p.numel() for p in model.parameters()) == expected["num_parameters"]


def test_zemi_parameter_counts_are_the_papers(reference_keys):
    counts = {}
    for size in ("base", "large"):
        with torch.device("meta"):
            model = model_from_config(ZEMI, T5Config(**reference_keys["t5_config"][size]),
                                      published_fusion(reference_keys, size))
        counts[size] = sum(p.numel() for p in model.parameters())
        if size == "base":
            assert sum(p.numel() for p in model.perceiver_resampler.parameters()) == 3_991_296
            assert sum(p.numel() for p in model.xattn_stack.parameters()) == 6_294_530
    assert counts == {"base": 257_863_682, "large": 800_010_242}


def test_committed_perceiver_configs_are_the_published_ones(reference_keys):
    base = PerceiverXattnConfig.from_json("training/perceiver_configs/xattn_multi_aug_config_v1_v3_5aug.json")
    large = PerceiverXattnConfig.from_json("training/perceiver_configs/xattn_multi_aug_config_v1_v3_5aug_t5_large.json")
    published = {size: dict(values) for size, values in reference_keys["perceiver_xattn_config"].items()}
    for values in published.values():  # in every published file, and false: read and dropped
        assert values.pop("only_attend_immediate_media") is False
    assert {k: v for k, v in base.to_dict().items() if k in published["base"]} == published["base"]
    assert {k: v for k, v in large.to_dict().items() if k in published["large"]} == published["large"]
    assert base.gate == "tanh" and not base.separate_aug_encoder


# --- semantics of the fusion --------------------------------------------------------------------------------------


def test_fresh_zemi_equals_its_backbone_bit_for_bit(tiny_t5_dir):
    t5 = T5WithOwnLMHead.from_pretrained(tiny_t5_dir).eval()
    zemi = build_model(ZEMI, tiny_t5_dir, tiny_perceiver_config()).eval()
    inputs = random_batch()
    with torch.no_grad():
        plain = t5(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"], labels=inputs["labels"])
        fused = zemi(**inputs)
    assert torch.equal(plain.logits, fused.logits)
    assert torch.equal(plain.loss, fused.loss)


def test_backbone_weights_are_loaded_and_lm_head_stays_separate(tiny_t5_dir):
    t5 = T5WithOwnLMHead.from_pretrained(tiny_t5_dir)
    zemi = build_model(ZEMI, tiny_t5_dir, tiny_perceiver_config())
    assert zemi.lm_head.weight.data_ptr() != zemi.shared.weight.data_ptr()
    assert not torch.equal(zemi.lm_head.weight, zemi.shared.weight)
    t5_state = t5.state_dict()
    for key, value in zemi.state_dict().items():
        if key in t5_state:
            assert torch.equal(value, t5_state[key]), key
    block = zemi.xattn_stack[0]
    assert block.attn_gate.item() == 0.0 and block.ff_gate.item() == 0.0
    # xavier-normal: std = sqrt(2 / (fan_in + fan_out)); far from the backbone's N(0, 1) linear init.
    weight = block.attn.to_q.weight
    assert abs(weight.std().item() - (2 / sum(weight.shape)) ** 0.5) < 0.05


def test_absent_slots_are_ignored_and_present_slots_are_read():
    zemi = tiny_zemi()
    open_gates(zemi)
    inputs = random_batch()
    with torch.no_grad():
        reference = zemi(**inputs).logits
        absent = dict(inputs, aug_input_ids=inputs["aug_input_ids"].clone())
        absent["aug_input_ids"][1, 3] = (absent["aug_input_ids"][1, 3] + 5) % 96  # slot 3 of example 1 is absent
        assert torch.equal(zemi(**absent).logits, reference)
        present = dict(inputs, aug_input_ids=inputs["aug_input_ids"].clone())
        present["aug_input_ids"][1, 0] = (present["aug_input_ids"][1, 0] + 5) % 96
        changed = zemi(**present).logits
    assert not torch.allclose(changed[1], reference[1], atol=1e-4)
    assert torch.equal(changed[0], reference[0]) and torch.equal(changed[2], reference[2])


def test_an_example_without_documents_attends_to_its_encoded_padding_slots_like_the_original():
    # The original encodes every slot and masks scores with -finfo.max, so an example whose slots are all absent
    # attends uniformly to the latents of its (padding) slots. Ours skips absent slots only where that changes nothing.
    zemi = tiny_zemi()
    open_gates(zemi)
    inputs = random_batch()
    inputs["aug_exist_idx"][1] = 0
    inputs["aug_attention_mask"][1] = 0
    with torch.no_grad():
        b, m, la = inputs["aug_input_ids"].shape
        docs = zemi.encoder(input_ids=inputs["aug_input_ids"].reshape(b * m, la),
                            attention_mask=inputs["aug_attention_mask"].reshape(b * m, la)).last_hidden_state
        hidden = zemi.encoder(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"]).last_hidden_state
        media = zemi.perceiver_resampler(docs.reshape(b, m, la, -1))
        for block in zemi.xattn_stack:
            hidden = block(hidden, media, inputs["aug_exist_idx"])
        ours = zemi.encode(**{k: v for k, v in inputs.items() if k != "labels"}).hidden_states
        nothing_present = dict(inputs, aug_exist_idx=torch.zeros_like(inputs["aug_exist_idx"]))
        assert torch.isfinite(zemi(**nothing_present).loss)
    assert torch.allclose(ours, hidden, atol=1e-5, rtol=0)


def test_dropping_trailing_absent_slots_equals_masking_them():
    zemi = tiny_zemi()
    open_gates(zemi)
    inputs = random_batch()
    inputs["aug_exist_idx"][:, 2:] = 0
    inputs["aug_attention_mask"][:, 2:] = 0
    dropped = {k: (v[:, :2] if k.startswith("aug_") else v) for k, v in inputs.items()}
    with torch.no_grad():
        assert torch.allclose(zemi(**inputs).logits, zemi(**dropped).logits, atol=1e-5, rtol=0)


def test_resampler_ignores_padding_masks_like_the_original():
    zemi = tiny_zemi()
    open_gates(zemi)
    inputs = random_batch()
    changed = dict(inputs, aug_input_ids=inputs["aug_input_ids"].clone())
    changed["aug_input_ids"][0, 0, -1] = (changed["aug_input_ids"][0, 0, -1] + 3) % 96  # a padded document token
    with torch.no_grad():
        assert not torch.allclose(zemi(**changed).logits[0], zemi(**inputs).logits[0], atol=1e-6)


def test_fid_is_the_decoder_over_joined_per_document_encoder_states():
    torch.manual_seed(0)
    fid = T5ForConditionalGenerationFiD(tiny_t5_config()).eval()
    inputs = random_batch()
    with torch.no_grad():
        logits = fid(**inputs).logits
        b, m, la = inputs["aug_input_ids"].shape
        states = torch.cat(
            [fid.encoder(input_ids=inputs["aug_input_ids"][:, i], attention_mask=inputs["aug_attention_mask"][:, i])
             .last_hidden_state for i in range(m)], dim=1)
        mask = torch.cat([inputs["aug_attention_mask"][:, i] for i in range(m)], dim=1)
        decoder_states = fid.decoder(input_ids=fid._shift_right(inputs["labels"]), encoder_hidden_states=states,
                                     encoder_attention_mask=mask).last_hidden_state
        by_hand = fid.lm_head(decoder_states)
        without_aug_exist_idx = fid(**{k: v for k, v in inputs.items() if k != "aug_exist_idx"}).logits
    assert torch.allclose(logits, by_hand, atol=1e-5, rtol=0)
    assert torch.equal(logits, without_aug_exist_idx)


def test_gradients_reach_the_fusion_modules_and_the_gates():
    zemi = tiny_zemi().train()
    zemi(**random_batch()).loss.backward()
    block = zemi.xattn_stack[0]
    assert block.attn_gate.grad.abs().item() > 0  # gates at 0 still learn
    assert block.ff_gate.grad.abs().item() > 0
    zemi.zero_grad()
    open_gates(zemi)
    zemi(**random_batch()).loss.backward()
    for module in (zemi.perceiver_resampler, block.attn, block.ff):
        assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in module.parameters())
    assert zemi.encoder.block[0].layer[0].SelfAttention.q.weight.grad.abs().sum() > 0


def test_freeze_lm_trains_only_the_fusion_modules(tiny_t5_dir):
    zemi = build_model(ZEMI, tiny_t5_dir, tiny_perceiver_config(freeze_lm=True))
    trainable = {name.split(".")[0] for name, p in zemi.named_parameters() if p.requires_grad}
    assert trainable == {"perceiver_resampler", "xattn_stack"}


def test_no_tanh_gate_ablation_is_a_plain_residual_block(tiny_t5_dir):
    model = build_model("SharedEncoderDecoder_MultiAug_NoTanhGate", tiny_t5_dir, tiny_perceiver_config()).eval()
    assert not any("gate" in name for name, _ in model.named_parameters())
    t5 = T5WithOwnLMHead.from_pretrained(tiny_t5_dir).eval()
    inputs = random_batch()
    with torch.no_grad():
        plain = t5(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"], labels=inputs["labels"])
        assert not torch.allclose(model(**inputs).logits, plain.logits, atol=1e-4)


def test_frozen_aug_encoder_ablation_starts_as_a_frozen_copy(tiny_t5_dir):
    model = build_model("SharedEncoderDecoder_MultiAug_FrozenAugEncoder", tiny_t5_dir, tiny_perceiver_config())
    assert model.fusion_config.separate_aug_encoder
    copy = model.frozen_encoder.encoder
    for (name, a), (_, b) in zip(model.encoder.state_dict().items(), copy.state_dict().items()):
        assert torch.equal(a, b), name
    assert not any(p.requires_grad for p in model.frozen_encoder.parameters())
    open_gates(model)
    model.train()(**random_batch()).loss.backward()
    assert all(p.grad is None for p in model.frozen_encoder.parameters())
    assert model.encoder.block[0].layer[0].SelfAttention.q.weight.grad is not None


def edited_checkpoint(source: Path, target: Path, edit: Callable[[dict], object]) -> None:
    """`source`'s checkpoint directory written to `target` with its weights changed by `edit`."""
    shutil.copytree(source, target, dirs_exist_ok=True)
    weights = load_file(source / "model.safetensors")
    edit(weights)
    save_file(weights, target / "model.safetensors", metadata={"format": "pt"})


@pytest.mark.parametrize("architecture", [ZEMI, "SharedEncoderDecoder_MultiAug_FrozenAugEncoder"])
def test_zemi_from_a_t5_checkpoint_says_in_one_line_which_modules_are_new(tiny_t5_dir, architecture):
    """The fusion modules are missing from a T5 checkpoint by design: one line counts them, in place of
    transformers' table of every tensor (27 lines of MISSING in a job's log at the tiny size, more at base)."""
    with logged("transformers", logging.INFO) as library, logged("zemi.models", logging.INFO) as ours:
        build_model(architecture, tiny_t5_dir, tiny_perceiver_config())
    assert not any("LOAD REPORT" in message for message in library), library
    [line] = [message for message in ours if "every T5 weight loaded" in message]
    assert "perceiver_resampler (15 tensors), xattn_stack (11 tensors)" in line, line
    assert ("frozen_encoder copied from the encoder" in line) == (architecture != ZEMI), line


def test_a_t5_checkpoint_missing_one_of_its_own_weights_keeps_transformers_report(tiny_t5_dir, tmp_path):
    """Anything missing besides the new modules is transformers' full report, the missing T5 weight named in it."""
    edited_checkpoint(tiny_t5_dir, tmp_path, lambda weights: weights.pop("decoder.final_layer_norm.weight"))
    with logged("transformers", logging.INFO) as library, logged("zemi.models", logging.INFO) as ours:
        build_model(ZEMI, tmp_path, tiny_perceiver_config())
    [report] = [message for message in library if "LOAD REPORT" in message]
    assert "decoder.final_layer_norm.weight" in report and "perceiver_resampler" in report, report
    assert not any("every T5 weight loaded" in message for message in ours), ours


def test_a_failed_load_still_writes_transformers_report(tiny_t5_dir, tmp_path):
    """Messages are held back only until the load ends: when it fails, the report that explains why comes out."""
    edited_checkpoint(tiny_t5_dir, tmp_path,  # another shape than the model's
                      lambda weights: weights.update({"decoder.final_layer_norm.weight": torch.ones(3)}))
    with logged("transformers", logging.INFO) as library, pytest.raises(RuntimeError, match="ignore_mismatched"):
        build_model(ZEMI, tmp_path, tiny_perceiver_config())
    [report] = [message for message in library if "LOAD REPORT" in message]
    assert "decoder.final_layer_norm.weight" in report, report


# --- configuration errors -----------------------------------------------------------------------------------------


def test_unknown_architecture_lists_the_valid_names():
    with pytest.raises(ValueError) as err:
        model_from_config("SharedEncoderDecoder_MultiAugX", tiny_t5_config(), tiny_perceiver_config())
    for name in ARCHITECTURES:
        assert name in str(err.value)


def test_perceiver_dim_must_match_d_model():
    with pytest.raises(ValueError, match="perceiver dim 48 does not match .* d_model 32"):
        T5ForConditionalGenerationMultiAug(tiny_t5_config(), tiny_perceiver_config(dim=48))


def test_perceiver_config_rejects_unknown_fields_and_bad_values(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text('{"dim": 32, "num_latent": 64}')
    with pytest.raises(ValueError, match=r"bad.json: unknown field\(s\) \['num_latent'\]"):
        PerceiverXattnConfig.from_json(path)
    with pytest.raises(ValueError, match="given: heads must be a positive integer"):
        PerceiverXattnConfig.from_dict({"heads": 0}, source="given")
    with pytest.raises(ValueError, match="cannot read perceiver config"):
        PerceiverXattnConfig.from_json(tmp_path / "missing.json")


def test_more_slots_than_slot_embeddings_fails_clearly():
    zemi = tiny_zemi(num_aug_sources=3)
    with pytest.raises(ValueError, match="4 document slots given .* 3 .*--fit_aug_num"):
        zemi(**random_batch(m=4))


# --- save / load / generate ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("architecture", [ZEMI, "FiD", "SharedEncoderDecoder_MultiAug_NoTanhGate"])
def test_save_pretrained_round_trip(tmp_path, architecture):
    torch.manual_seed(1)
    model = model_from_config(architecture, tiny_t5_config(), tiny_perceiver_config()).eval()
    if isinstance(model, T5ForConditionalGenerationMultiAug) and model.fusion_config.gate == "tanh":
        open_gates(model)
    model.save_pretrained(tmp_path)
    assert (tmp_path / "model.safetensors").exists()
    loaded = build_model(architecture, tmp_path).eval()
    assert type(loaded) is type(model)
    inputs = random_batch()
    with torch.no_grad():
        assert torch.equal(model(**inputs).logits, loaded(**inputs).logits)
    if isinstance(model, T5ForConditionalGenerationMultiAug):
        assert loaded.fusion_config == model.fusion_config


@pytest.mark.parametrize("architecture", [ZEMI, "FiD", "T5"])
def test_published_step_file_round_trip(tmp_path, architecture):
    torch.manual_seed(2)
    model = model_from_config(architecture, tiny_t5_config(), tiny_perceiver_config()).eval()
    if isinstance(model, T5ForConditionalGenerationMultiAug):
        open_gates(model)
    torch.save(model.state_dict(), tmp_path / "step_100")
    fresh = model_from_config(architecture, tiny_t5_config(), tiny_perceiver_config()).eval()
    load_original_checkpoint(fresh, tmp_path / "step_100")
    inputs = random_batch()
    if architecture == "T5":
        inputs = {k: inputs[k] for k in ("input_ids", "attention_mask", "labels")}
    with torch.no_grad():
        assert torch.equal(model(**inputs).logits, fresh(**inputs).logits)
    assert torch.equal(fresh.lm_head.weight, model.lm_head.weight)
    assert not torch.equal(fresh.lm_head.weight, fresh.shared.weight)


def test_step_file_of_another_architecture_names_the_mismatched_keys(tmp_path):
    fid = model_from_config("FiD", tiny_t5_config())
    torch.save(fid.state_dict(), tmp_path / "step_7")
    zemi = tiny_zemi()
    with pytest.raises(CheckpointMismatchError, match=r"(?s)step_7 does not fit .*missing keys.*perceiver_resampler"):
        load_original_checkpoint(zemi, tmp_path / "step_7")


@pytest.mark.parametrize("architecture", [ZEMI, "FiD"])
@pytest.mark.parametrize("num_beams", [1, 3])
def test_generate_with_missing_documents(architecture, num_beams):
    torch.manual_seed(3)
    model = model_from_config(architecture, tiny_t5_config(), tiny_perceiver_config()).eval()
    if isinstance(model, T5ForConditionalGenerationMultiAug):
        open_gates(model)
    inputs = {k: v for k, v in random_batch().items() if k != "labels"}
    out = model.generate(**inputs, max_new_tokens=5, num_beams=num_beams, do_sample=False)
    assert out.shape[0] == 3 and 2 <= out.shape[1] <= 6
    # The documents matter: the same call without them differs or fails, and greedy decoding is the argmax.
    if num_beams == 1:
        with torch.no_grad():
            logits = model(**inputs, decoder_input_ids=out[:, :1]).logits
        assert torch.equal(out[:, 1], logits[:, -1].argmax(-1))
