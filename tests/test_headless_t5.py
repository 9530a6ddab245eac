"""A T5 directory without `lm_head.weight`: transformers 5 saves one from `T5Config(tie_word_embeddings=False)`
(`scale_decoder_outputs: false`, the head tied to the embedding, so not written) and loads it with the head tied to
the embedding. Every path of ours gives it that head: our classes' from_pretrained, `build_model` for every
architecture, and evaluation's checks and loading; never a random one. A checkpoint with its own head keeps it."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors import safe_open
from transformers import AutoModelForSeq2SeqLM, T5ForConditionalGeneration

from tests.helpers import ZEMI, random_batch, tiny_perceiver_config, tiny_t5_config, write_run_dir
from zemi.data.processing import TextRules
from zemi.models.modeling_t5 import T5ForConditionalGenerationMultiAug, T5WithOwnLMHead, model_inputs
from zemi.models.registry import ARCHITECTURES, build_model
from zemi.run.config import parse_evaluation
from zemi.run.evaluation import EvalSource
from zemi.run.run_directory import RunDirectory

pytestmark = [pytest.mark.unit, pytest.mark.usefixtures("one_thread")]


@pytest.fixture(scope="module")
def headless_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("headless_t5")
    torch.manual_seed(0)
    T5ForConditionalGeneration(tiny_t5_config(dropout_rate=0.0)).save_pretrained(path)
    assert json.loads((path / "config.json").read_text())["scale_decoder_outputs"] is False
    with safe_open(path / "model.safetensors", framework="pt") as weights:
        assert "lm_head.weight" not in weights.keys() and "shared.weight" in weights.keys()
    return path


@pytest.fixture(scope="module")
def stock(headless_dir) -> T5ForConditionalGeneration:
    """What transformers itself makes of the directory."""
    model = T5ForConditionalGeneration.from_pretrained(headless_dir).eval()
    assert model.lm_head.weight is model.shared.weight
    return model


def t5_logits(model) -> torch.Tensor:
    batch = random_batch()
    with torch.no_grad():
        return model.eval()(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                            labels=batch["labels"]).logits


def assert_head_is_the_embedding(model, stock) -> None:
    assert model.lm_head.weight is model.shared.weight
    assert torch.equal(model.lm_head.weight, stock.shared.weight)


def test_from_pretrained_gives_our_t5_the_head_transformers_gives(headless_dir, stock, tmp_path):
    ours = T5WithOwnLMHead.from_pretrained(headless_dir)
    assert_head_is_the_embedding(ours, stock)
    assert torch.equal(t5_logits(ours), t5_logits(stock))
    ours.save_pretrained(tmp_path / "again")  # still without a head of its own, and loads the same again
    again = T5WithOwnLMHead.from_pretrained(tmp_path / "again")
    assert_head_is_the_embedding(again, stock)
    assert type(AutoModelForSeq2SeqLM.from_pretrained(headless_dir)) is T5ForConditionalGeneration


@pytest.mark.parametrize("architecture", sorted(ARCHITECTURES))
def test_build_model_gives_every_architecture_that_head(headless_dir, stock, tmp_path, architecture):
    model = build_model(architecture, headless_dir, tiny_perceiver_config() if architecture != "T5" else None)
    assert_head_is_the_embedding(model, stock)
    if architecture == "T5":
        assert torch.equal(t5_logits(model), t5_logits(stock))
    if architecture == ZEMI:  # a fresh Zemi is its backbone
        batch = random_batch()
        with torch.no_grad():
            assert torch.equal(model.eval()(**model_inputs(batch), labels=batch["labels"]).logits, t5_logits(stock))
    model.save_pretrained(tmp_path / "saved")
    for reloaded in (build_model(architecture, tmp_path / "saved"), AutoModelForSeq2SeqLM.from_pretrained(tmp_path / "saved")):
        if isinstance(reloaded, T5WithOwnLMHead) or architecture != "T5":
            assert_head_is_the_embedding(reloaded, stock)


def test_evaluation_checks_and_loads_the_directory_and_a_run_of_it(headless_dir, stock, tmp_path):
    config = parse_evaluation(["--model_name_or_path", str(headless_dir), "--output_dir", str(tmp_path / "e"),
                               "--processed_dataset_paths", str(tmp_path)])
    source = EvalSource.from_config(config)
    (_, checkpoint), = source.checkpoints(-1)
    model = source.load(checkpoint)
    assert_head_is_the_embedding(model, stock)
    assert torch.equal(t5_logits(model), t5_logits(stock))

    run_dir = write_run_dir(tmp_path / "run", headless_dir, architecture=ZEMI, steps=(3,),
                            perceiver=tiny_perceiver_config().to_dict())
    run = RunDirectory.open(run_dir)
    run.check_checkpoint(run_dir / "step_3", TextRules(num_documents=5), fix="perceiver_config.json")
    loaded = run.load_model(run_dir / "step_3")
    assert isinstance(loaded, T5ForConditionalGenerationMultiAug)
    assert_head_is_the_embedding(loaded, stock)


def test_a_checkpoint_with_its_own_head_keeps_it(tiny_t5_dir):
    """t5-lm-adapt's rule: its own head, loaded exactly, apart from the embedding."""
    with safe_open(tiny_t5_dir / "model.safetensors", framework="pt") as weights:
        head = weights.get_tensor("lm_head.weight")
    for model in (T5WithOwnLMHead.from_pretrained(tiny_t5_dir), build_model(ZEMI, tiny_t5_dir, tiny_perceiver_config())):
        assert model.lm_head.weight is not model.shared.weight
        assert torch.equal(model.lm_head.weight, head) and not torch.equal(head, model.shared.weight)
