"""Zemi learns what only its documents say: starting with its tanh gates at 0, a tiny Zemi trained on a task whose
answer is written in the first document (and nowhere in the input) opens its gates and answers it; the same model
with its documents masked out (`aug_exist_idx` = 0) answers at chance."""

from __future__ import annotations

import pytest
import torch

from tests.helpers import tiny_perceiver_config, tiny_t5_config
from zemi.modeling_t5 import T5ForConditionalGenerationMultiAug
from zemi.run.optim import parameter_groups

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("one_thread")]  # a tiny model: more threads only wait

LOW, HIGH = 10, 90  # token ids used; chance accuracy is 1 / 80


def answer_in_document_batch(generator: torch.Generator, with_documents: bool, b: int = 32) -> dict:
    input_ids = torch.randint(LOW, HIGH, (b, 5), generator=generator)
    answer = torch.randint(LOW, HIGH, (b,), generator=generator)
    documents = torch.randint(LOW, HIGH, (b, 2, 6), generator=generator)
    documents[:, 0, :] = answer[:, None]
    exist = torch.full((b, 2), int(with_documents))
    return {"input_ids": input_ids, "attention_mask": torch.ones_like(input_ids), "aug_input_ids": documents,
            "aug_attention_mask": torch.ones_like(documents), "aug_exist_idx": exist,
            "labels": torch.stack([answer, torch.ones_like(answer)], dim=1)}


@pytest.fixture(scope="module")
def trained() -> T5ForConditionalGenerationMultiAug:
    """A tiny Zemi (gates at 0) trained for 400 steps on batches whose answer is only in the first document."""
    torch.manual_seed(0)
    model = T5ForConditionalGenerationMultiAug(tiny_t5_config(dropout_rate=0.0), tiny_perceiver_config()).train()
    optimizer = torch.optim.AdamW(parameter_groups(model, 0.01), lr=1e-3)
    generator = torch.Generator().manual_seed(1)
    for _ in range(400):
        model(**answer_in_document_batch(generator, with_documents=True)).loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    return model.eval()


def accuracy(model: T5ForConditionalGenerationMultiAug, with_documents: bool) -> float:
    test = answer_in_document_batch(torch.Generator().manual_seed(2), with_documents, b=256)
    with torch.no_grad():
        predicted = model(**test).logits[:, 0].argmax(-1)
    return (predicted == test["labels"][:, 0]).float().mean().item()


def test_zemi_opens_its_gates_and_answers_from_its_documents(trained):
    assert accuracy(trained, with_documents=True) > 0.9
    assert min(abs(float(block.attn_gate.detach())) for block in trained.xattn_stack) > 0.05  # they started at 0


def test_with_its_documents_masked_out_the_same_model_answers_at_chance(trained):
    """The answer is nowhere else: with `aug_exist_idx` = 0 the trained model cannot find it."""
    assert accuracy(trained, with_documents=False) < 0.1
