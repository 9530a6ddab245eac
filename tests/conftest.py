"""Shared fixtures: tiny random T5 backbones saved with `save_pretrained`, as our users' real ones are."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from transformers import T5Config

from zemi.modeling_t5 import PerceiverXattnConfig, T5WithOwnLMHead

FIXTURES = Path(__file__).parent / "fixtures"


def tiny_t5_config(**overrides) -> T5Config:
    values = dict(
        vocab_size=96, d_model=32, d_ff=48, d_kv=8, num_heads=4, num_layers=2, num_decoder_layers=2,
        feed_forward_proj="gated-gelu", tie_word_embeddings=False, decoder_start_token_id=0,
        pad_token_id=0, eos_token_id=1, dropout_rate=0.1,
    )
    values.update(overrides)
    return T5Config(**values)


def tiny_perceiver_config(**overrides) -> PerceiverXattnConfig:
    values = dict(dim=32, depth=1, dim_head=8, heads=2, num_latents=4, num_aug_sources=5, ff_mult=2, xattn_ff_mult=2)
    values.update(overrides)
    return PerceiverXattnConfig(**values)


@pytest.fixture(scope="session")
def reference_keys() -> dict:
    return json.loads((FIXTURES / "original_state_dict_keys.json").read_text())


@pytest.fixture(scope="session")
def tiny_t5_dir(tmp_path_factory) -> Path:
    """A tiny T5 v1.1-style backbone (separate LM head) written with save_pretrained."""
    torch.manual_seed(0)
    model = T5WithOwnLMHead(tiny_t5_config())
    path = tmp_path_factory.mktemp("tiny_t5")
    model.save_pretrained(path)
    return path


# --- end-to-end fixtures: a backbone with tokenizer, and a 30aug root --------------------------------------------

import datasets  # noqa: E402

from tests.fixture_data import build_backbone, write_tiny_30aug  # noqa: E402

datasets.disable_progress_bars()
TINY_PERCEIVER = dict(dim=32, depth=1, dim_head=8, heads=2, num_latents=4, num_aug_sources=5, ff_mult=2,
                      xattn_ff_mult=2, freeze_lm=False, cross_attn_every=1, only_attend_immediate_media=False,
                      num_xattn_layers=1)


@pytest.fixture(scope="session")
def backbone_dir(tmp_path_factory) -> Path:
    return build_backbone(tmp_path_factory.mktemp("backbone"), dropout=0.1)


@pytest.fixture(scope="session")
def backbone_without_dropout(tmp_path_factory) -> Path:
    """For runs that must match across process counts: dropout masks differ between processes."""
    return build_backbone(tmp_path_factory.mktemp("backbone_nodrop"), dropout=0.0)


@pytest.fixture(scope="session")
def data_root(tmp_path_factory) -> Path:
    return write_tiny_30aug(tmp_path_factory.mktemp("30aug"))


@pytest.fixture(scope="session")
def perceiver_json(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("perceiver") / "perceiver_config.json"
    path.write_text(json.dumps(TINY_PERCEIVER))
    return path
