"""Backbone pre-training: span corruption and prefix-LM batches, a tiny run end to end, the committed backbone."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from transformers import AutoTokenizer, T5ForConditionalGeneration

from demo_builders import pretrain
from demo_builders.corpus import write_jsonl_gz
from demo_builders.tokenizer import BACKBONE_DIR

pytestmark = pytest.mark.unit

SENTINELS = list(range(7999, 7899, -1))


def reconstruct(inputs: list[int], targets: list[int]) -> list[int]:
    """Undo span corruption: put each sentinel's span from the targets back into the inputs."""
    spans, current = {}, None
    for token in targets[:-1]:
        if token in SENTINELS:
            current = spans.setdefault(token, [])
        else:
            current.append(token)
    restored = []
    for token in inputs[:-1]:
        restored.extend(spans[token] if token in SENTINELS else [token])
    return restored


@settings(max_examples=200, deadline=None)
@given(length=st.integers(2, 300), density=st.floats(0.05, 0.5), seed=st.integers(0, 2**32 - 1))
def test_span_corruption_reconstructs_the_text(length, density, seed):
    rng = np.random.default_rng(seed)
    tokens = rng.integers(3, 7000, length)
    mask = pretrain.noise_mask(length, density, 3.0, rng)
    assert 1 <= mask.sum() < length and not mask[0]
    inputs, targets = pretrain.span_corruption(tokens, mask, SENTINELS)
    assert inputs[-1] == targets[-1] == pretrain.EOS_ID
    assert reconstruct(inputs, targets) == tokens.tolist()
    assert sum(t in SENTINELS for t in inputs) == sum(t in SENTINELS for t in targets)


def test_noise_mask_matches_t5_statistics():
    rng = np.random.default_rng(0)
    masks = [pretrain.noise_mask(114, 0.15, 3.0, rng) for _ in range(200)]
    assert all(m.sum() == 17 for m in masks)
    spans = [int((m[1:] & ~m[:-1]).sum()) for m in masks]
    assert set(spans) == {6}  # round(17 / 3) spans, each at least one token


def test_prefix_lm_splits_the_chunk_and_keeps_targets_short():
    rng = np.random.default_rng(0)
    tokens = np.arange(3, 103)
    for _ in range(50):
        inputs, targets = pretrain.prefix_lm(tokens, rng)
        assert inputs[:-1] + targets[:-1] == tokens.tolist()
        assert 1 <= len(targets) - 1 <= 40


def test_collate_pads_inputs_and_masks_labels():
    batch = pretrain.collate([([5, 6, 1], [7, 1]), ([5, 1], [7, 8, 9, 1])])
    assert batch["input_ids"].tolist() == [[5, 6, 1], [5, 1, 0]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [1, 1, 0]]
    assert batch["labels"].tolist() == [[7, 1, -100, -100], [7, 8, 9, 1]]


def test_learning_rate_warms_up_then_decays_to_the_floor():
    cfg = pretrain.PretrainConfig(span_corruption_steps=80, prefix_lm_steps=20, warmup_steps=10)
    rates = [pretrain.learning_rate(step, cfg) for step in range(cfg.total_steps + 1)]
    assert rates[9] == pytest.approx(cfg.learning_rate) and max(rates) == pytest.approx(cfg.learning_rate)
    assert rates[-1] == pytest.approx(cfg.learning_rate * cfg.min_learning_rate_ratio)


@pytest.mark.parametrize("flags", [["--noise_density", "1.5"], ["--optimizer", "sgd"], ["--num_layers", "0"]])
def test_impossible_config_fails_loudly(flags):
    with pytest.raises(ValueError):
        pretrain.parse_args(flags)


@pytest.mark.parametrize("name, kind", [("adafactor", "Adafactor"), ("adamw", "AdamW")])
def test_optimizer_choice(name, kind):
    cfg = pretrain.PretrainConfig(optimizer=name)
    model = torch.nn.Linear(4, 4)
    assert type(pretrain.build_optimizer(model, cfg)).__name__ == kind


@pytest.mark.parametrize("tied", [True, False])
def test_a_tiny_run_saves_a_backbone_that_loads_back(tmp_path, tied):
    corpus = tmp_path / "corpus.jsonl.gz"
    write_jsonl_gz(({"id": str(i), "text": f"word{i % 7} is a kind of thing number {i}."} for i in range(300)), corpus)
    output = tmp_path / "backbone"
    pretrain.main(["--tie_lm_head", str(tied),
        "--corpus", str(corpus), "--tokenizer_dir", str(BACKBONE_DIR), "--output_dir", str(output),
        "--work_dir", str(tmp_path / "work"), "--d_model", "16", "--d_ff", "24", "--num_layers", "1",
        "--num_heads", "2", "--d_kv", "8", "--batch_size", "4", "--chunk_length", "24", "--warmup_steps", "1",
        "--span_corruption_steps", "3", "--prefix_lm_steps", "2", "--log_every", "1", "--eval_every", "5",
        "--save_every", "5",
    ])
    model = T5ForConditionalGeneration.from_pretrained(output)
    assert (model.lm_head.weight.data_ptr() == model.shared.weight.data_ptr()) is tied
    assert model.config.dropout_rate == 0.1 and model.config.scale_decoder_outputs is tied
    rows = (tmp_path / "work" / "loss.csv").read_text().splitlines()
    assert rows[0].startswith("step,objective") and len(rows) == 1 + 5 + 2
    assert AutoTokenizer.from_pretrained(str(output)).pad_token_id == 0


def test_resuming_continues_from_the_checkpoint(tmp_path):
    corpus = tmp_path / "corpus.jsonl.gz"
    write_jsonl_gz(({"id": str(i), "text": f"entry {i} is part of list {i % 5}."} for i in range(200)), corpus)
    common = ["--corpus", str(corpus), "--tokenizer_dir", str(BACKBONE_DIR), "--work_dir", str(tmp_path / "work"),
              "--d_model", "16", "--d_ff", "24", "--num_layers", "1", "--num_heads", "2", "--d_kv", "8",
              "--batch_size", "4", "--chunk_length", "24", "--warmup_steps", "1", "--prefix_lm_steps", "0",
              "--save_every", "2", "--eval_every", "100", "--output_dir", str(tmp_path / "out")]
    pretrain.main(common + ["--span_corruption_steps", "3", "--log_every", "1"])
    # as if killed after logging step 3 but before its checkpoint: the resumed run redoes step 3 and logs it once
    with open(tmp_path / "work" / "checkpoint.pt", "rb") as handle:
        state = torch.load(handle, weights_only=False)
    state["step"] = 2
    torch.save(state, tmp_path / "work" / "checkpoint.pt")
    pretrain.main(common + ["--span_corruption_steps", "4", "--log_every", "1", "--resume"])
    assert torch.load(tmp_path / "work" / "checkpoint.pt", weights_only=False)["step"] == 4
    logged = [row.split(",")[0] for row in (tmp_path / "work" / "loss.csv").read_text().splitlines()[1:]]
    assert logged == ["1", "2", "3", "4"]


@pytest.mark.skipif(not (BACKBONE_DIR / "model.safetensors").exists(), reason="backbone not pre-trained yet")
def test_committed_backbone_loads_with_the_expected_config():
    model = T5ForConditionalGeneration.from_pretrained(BACKBONE_DIR)
    config = json.loads((BACKBONE_DIR / "config.json").read_text())
    assert config["feed_forward_proj"] == "gated-gelu" and config["scale_decoder_outputs"] is True
    defaults = pretrain.PretrainConfig()
    assert (model.config.d_model, model.config.num_layers, model.config.num_decoder_layers, model.config.num_heads) \
        == (defaults.d_model, defaults.num_layers, defaults.num_layers, defaults.num_heads)
    assert model.config.vocab_size == len(AutoTokenizer.from_pretrained(str(BACKBONE_DIR)))
    assert model.lm_head.weight.data_ptr() == model.shared.weight.data_ptr()  # tied, see PretrainConfig.tie_lm_head
    assert model.dtype == torch.float32
    assert 3e6 < sum(p.numel() for p in model.parameters()) < 40e6
