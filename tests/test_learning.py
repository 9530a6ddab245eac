"""Zemi learns what only its documents say: starting with its tanh gates at 0, a tiny Zemi trained on a task whose
answer is written in the first document (and nowhere in the input) opens its gates and answers it; the same model
with the documents masked out (`aug_exist_idx` = 0) stays at chance."""

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


def train_and_score(with_documents: bool, steps: int = 400) -> tuple[float, list[float]]:
    torch.manual_seed(0)
    model = T5ForConditionalGenerationMultiAug(tiny_t5_config(dropout_rate=0.0), tiny_perceiver_config()).train()
    optimizer = torch.optim.AdamW(parameter_groups(model, 0.01), lr=1e-3)
    generator = torch.Generator().manual_seed(1)
    for _ in range(steps):
        model(**answer_in_document_batch(generator, with_documents)).loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    model.eval()
    test = answer_in_document_batch(torch.Generator().manual_seed(2), with_documents, b=256)
    with torch.no_grad():
        predicted = model(**test).logits[:, 0].argmax(-1)
    gates = [float(block.attn_gate) for block in model.xattn_stack]
    return (predicted == test["labels"][:, 0]).float().mean().item(), gates


def test_zemi_opens_its_gates_and_answers_from_its_documents():
    accuracy, gates = train_and_score(with_documents=True)
    assert accuracy > 0.9
    assert min(abs(g) for g in gates) > 0.05  # the gates started at exactly 0


def test_without_documents_the_same_model_stays_at_chance():
    accuracy, _ = train_and_score(with_documents=False)
    assert accuracy < 0.1
