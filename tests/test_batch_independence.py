"""A score does not depend on how the batch is made: in fp32 each example scored alone, inside a shuffled batch and
inside a length-sorted batch (evaluation's order) gets the same choice scores, the same prediction and the same
training loss, for No Aug, Concat, FiD and Zemi, with the collator each method is given (`collator_for`)."""

from __future__ import annotations

import random

import pytest
import torch
from transformers import AutoTokenizer

from tests.helpers import logged, tiny_perceiver_config
from zemi.data.mixture import load_eval_templates
from zemi.data.processing import Featurizer, MaxLengths
from zemi.errors import ConfigError
from zemi.modeling_t5 import T5ForConditionalGenerationMultiAug, build_model
from zemi.run.method import Method, collator_for
from zemi.run.objectives import choice_scores, loss_on, rank_choices

pytestmark = pytest.mark.unit

METHODS = {
    "no_aug": {"model_architecture": "T5"},
    "concat": {"model_architecture": "T5", "concat_aug_num": 3},
    "fid": {"model_architecture": "FiD", "concat_input_at_augmentation": True},
    "zemi": {"model_architecture": "SharedEncoderDecoder_MultiAug"},
}
LENGTHS = MaxLengths(input=48, document=24, target=8)
BATCH = 5


@pytest.fixture(scope="module")
def examples(data_root, backbone_dir):
    """Per method: the model (gates open, eval mode), its collator, and tokenised rows of two templates with
    documents of many lengths (some examples have fewer than 5 documents, one none)."""
    tokenizer = AutoTokenizer.from_pretrained(backbone_dir)
    paths = sorted((data_root / "fruit_taste").iterdir()) + sorted((data_root / "animal_colors").iterdir())[:1]
    templates = load_eval_templates(paths)
    prepared = {}
    for name, args in METHODS.items():
        method = Method.from_args(args, perceiver_config=tiny_perceiver_config())
        torch.manual_seed(0)
        model = build_model(method.architecture, backbone_dir, method.perceiver_config).eval()
        if isinstance(model, T5ForConditionalGenerationMultiAug):
            with torch.no_grad():
                model.xattn_stack[0].attn_gate.fill_(0.8)
                model.xattn_stack[0].ff_gate.fill_(0.8)
        featurizer = Featurizer(tokenizer, method.rules, LENGTHS)
        rows = []
        for template in templates:
            data = template.dataset
            evaluated = data.map(featurizer.eval_features, batched=True, remove_columns=data.column_names)
            trained = data.map(featurizer.train_features, batched=True, remove_columns=data.column_names)
            rows += [dict(evaluated[i], labels=trained[i]["labels"]) for i in range(len(data))]
        prepared[name] = model, collator_for(method, LENGTHS, tokenizer.pad_token_id), rows
    return prepared


def per_example(model, collator, rows: list[dict], order: list[int]) -> dict[int, tuple]:
    """Scores, prediction and training loss of each example when the rows are batched in `order`."""
    found = {}
    for start in range(0, len(order), BATCH):
        chunk = order[start:start + BATCH]
        batch = collator([dict(rows[i]) for i in chunk])
        scores, predictions = choice_scores(model, batch), rank_choices(model, batch)
        with torch.no_grad():
            losses, _ = loss_on(model, batch)
        offsets = torch.cumsum(batch["num_choices"], 0) - batch["num_choices"]
        for k, i in enumerate(chunk):
            found[i] = (scores[offsets[k]: offsets[k] + batch["num_choices"][k]], int(predictions[k]), losses[k])
    return found


@pytest.mark.parametrize("name", list(METHODS))
def test_scores_predictions_and_loss_do_not_depend_on_the_batch(examples, name, one_thread):
    model, collator, rows = examples[name]
    alone = {i: per_example(model, collator, rows, [i])[i] for i in range(len(rows))}
    shuffled = random.Random(0).sample(range(len(rows)), len(rows))
    longest_first = sorted(range(len(rows)), key=lambda i: -rows[i]["length"])
    for order in (shuffled, longest_first):
        batched = per_example(model, collator, rows, order)
        for i, (scores, prediction, loss) in alone.items():
            assert torch.allclose(batched[i][0], scores, atol=1e-5, rtol=1e-5), (name, i)
            assert batched[i][1] == prediction, (name, i)
            assert torch.allclose(batched[i][2], loss, atol=1e-5, rtol=1e-5), (name, i)


def test_documents_of_one_batch_have_several_lengths(examples):
    """The check above has teeth: dynamic padding would pad these documents to different lengths."""
    _, _, rows = examples["zemi"]
    lengths = {len(doc) for row in rows for doc in row["aug_input_ids"]}
    assert len(lengths) > 3 and max(lengths) <= LENGTHS.document


# --- --document_padding longest: the authors' Zemi padding --------------------------------------------------------


def authors_document_padding(batch_rows: list[dict]) -> int:
    """The authors' DataCollatorForMultipleChoiceXattn: every document of the batch is padded to the batch's
    longest one (`max(len(item) for feature in features for item in feature['aug_input_ids'])`), no multiple."""
    return max(len(document) for row in batch_rows for document in row["aug_input_ids"])


@pytest.mark.parametrize("pad_to_multiple_of", [None, 8])
def test_longest_pads_a_batch_of_one_to_its_own_longest_document(examples, pad_to_multiple_of):
    _, default_collator, rows = examples["zemi"]
    method = Method.from_args(METHODS["zemi"], perceiver_config=tiny_perceiver_config())
    with logged("zemi.run.method") as warnings:
        longest = collator_for(method, LENGTHS, 0, document_padding="longest", pad_to_multiple_of=pad_to_multiple_of)
    assert any("longest" in message and "batch" in message for message in warnings)
    shorter = 0
    for row in rows:
        own = authors_document_padding([row])
        theirs, ours = longest([dict(row)]), default_collator([dict(row)])
        assert theirs["aug_input_ids"].shape[-1] == own  # (1, M, own longest document)
        assert ours["aug_input_ids"].shape[-1] == LENGTHS.document
        for slot, document in enumerate(row["aug_input_ids"]):
            assert theirs["aug_input_ids"][0, slot, :len(document)].tolist() == document
            assert theirs["aug_attention_mask"][0, slot].sum() == len(document)
        shorter += own < LENGTHS.document
    assert shorter > 3  # the fixture has examples whose documents all stop short of aug_max_length


def test_longest_pads_a_batch_to_its_longest_document_and_leaves_other_methods_alone(examples):
    rows = examples["zemi"][2][:BATCH]
    method = Method.from_args(METHODS["zemi"], perceiver_config=tiny_perceiver_config())
    batch = collator_for(method, LENGTHS, 0, document_padding="longest")([dict(row) for row in rows])
    assert batch["aug_input_ids"].shape[-1] == authors_document_padding(rows)
    assert collator_for(method, LENGTHS, 0, document_padding="longest",
                        pad_to_max_length=True)([dict(rows[0])])["aug_input_ids"].shape[-1] == LENGTHS.document
    fid = Method.from_args(METHODS["fid"], perceiver_config=tiny_perceiver_config())
    with logged("zemi.run.method") as warnings:
        collator_for(fid, LENGTHS, 0, document_padding="longest")
    assert not warnings
    with pytest.raises(ConfigError, match="--document_padding"):
        collator_for(method, LENGTHS, 0, document_padding="shortest")
