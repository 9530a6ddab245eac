"""Property tests (hypothesis) of the text rules, the featurizer and the collator: for any number of documents (0 to
40), any lengths and any slot count, folding keeps every document, batch shapes, masks and `aug_exist_idx` agree with
the examples, and a padded batch scores each example as that example alone."""

from __future__ import annotations

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from transformers import AutoTokenizer

from tests.helpers import tiny_perceiver_config, tiny_t5_config
from tests.fixture_data import ANIMALS, COLORS, FILLER
from zemi.data.collate import LABEL_PAD, Collator
from zemi.data.processing import NO_DOCUMENT, Featurizer, MaxLengths, TextRules, build_texts, fold_documents
from zemi.run.objectives import choice_scores, rank_choices
from zemi.modeling_t5 import model_from_config

pytestmark = [pytest.mark.unit, pytest.mark.usefixtures("one_thread")]  # tiny models: one thread is fastest

PAD, EOS = 0, 1
FAST = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SCORING = settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])

plain_text = st.text(alphabet=st.sampled_from("abc xyz.\n\t"), max_size=12)  # never "<" or ">": markers stay unique


def marked(texts: list[str]) -> list[str]:
    """Documents that name themselves: `<i>` plus any text (at least 3 characters, so never "N/A")."""
    return [f"<{i}>{text}" for i, text in enumerate(texts)]


@FAST
@given(st.lists(plain_text, max_size=40), st.integers(1, 8))
def test_folding_keeps_every_document_in_exactly_one_slot(texts, slots):
    documents = marked(texts)
    folded = fold_documents(documents, slots)
    assert len(folded) == min(len(documents), slots)
    for i, document in enumerate(documents):
        holders = [j for j, slot in enumerate(folded) if f"<{i}>" in slot]
        assert holders == [i % slots] and document in folded[i % slots]
    for j, slot in enumerate(folded):  # newest first: doc_{j+k*slots} ... doc_j, one per line
        assert slot == "\n".join(reversed(documents[j::slots]))


rules_strategy = st.builds(
    TextRules, num_documents=st.integers(1, 8), fit_aug_num=st.one_of(st.just(-1), st.integers(1, 40)),
    concat_input_at_augmentation=st.booleans())


def example(inputs: str, documents: list[str], target: str = " yes ", choices=("yes", "no")) -> dict:
    return {"inputs_pretokenized": inputs, "targets_pretokenized": target, "answer_choices": list(choices),
            "chosen_examples": [{"inputs_pretokenized": d, "score": float(-i)} for i, d in enumerate(documents)]}


@FAST
@given(plain_text, st.lists(plain_text, max_size=40), rules_strategy)
def test_document_slots_hold_every_document_read_and_nothing_else(inputs, texts, rules):
    documents = marked(texts)
    built = build_texts(example(inputs, documents), rules)
    read = min(len(documents), rules.documents_taken) if documents else rules.documents_taken
    assert len(built.documents) == min(read, rules.num_documents)
    prefix = inputs.strip() + "\n" if rules.concat_input_at_augmentation else ""
    assert all(slot.startswith(prefix) for slot in built.documents)
    for i, document in enumerate(documents):
        holders = [j for j, slot in enumerate(built.documents) if f"<{i}>" in slot]
        assert holders == ([i % rules.num_documents] if i < read else [])
        if i < read:
            assert document.strip() in built.documents[i % rules.num_documents]
    if not documents:  # "N/A" for every document the run would read, folded like documents
        assert built.documents == fold_documents([prefix + NO_DOCUMENT] * read, rules.num_documents)


@FAST
@given(st.lists(st.sampled_from(["", " ", "x", " y ", "\n", "ok"]), max_size=40), st.integers(1, 8))
def test_short_documents_read_na_one_for_one(texts, slots):
    built = build_texts(example("q", texts), TextRules(num_documents=slots, fit_aug_num=40))
    expected = sum(len(t.strip()) < 2 for t in texts) if texts else 40
    assert "\n".join(built.documents).split("\n").count(NO_DOCUMENT) == expected


# --- featurizer ------------------------------------------------------------------------------------------------------

words = st.lists(st.sampled_from(ANIMALS + COLORS + FILLER + ["zzz", "?", "."]), max_size=30).map(" ".join)


@pytest.fixture(scope="module")
def tokenizer(backbone_dir):
    return AutoTokenizer.from_pretrained(backbone_dir)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                 HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(words, st.lists(words, max_size=40), words,
                          st.lists(words.filter(str.strip), min_size=1, max_size=5)), min_size=1, max_size=4),
       rules_strategy, st.integers(1, 12), st.integers(1, 12), st.integers(1, 6))
def test_featurizer_lengths_slots_and_targets(tokenizer, rows, rules, input_length, document_length, target_length):
    lengths = MaxLengths(input=input_length, document=document_length, target=target_length)
    featurizer = Featurizer(tokenizer, rules, lengths)
    batch = {key: [example(*r)[key] for r in rows] for key in example("", []).keys()}
    features = featurizer.eval_features(batch)
    train = featurizer.train_features(batch)
    assert train["input_ids"] == features["input_ids"] and train["aug_input_ids"] == features["aug_input_ids"]
    for i, (inputs, documents, target, choices) in enumerate(rows):
        texts = build_texts(example(inputs, documents, target, choices), rules)
        assert len(features["input_ids"][i]) <= input_length and EOS not in features["input_ids"][i]
        assert len(features["aug_input_ids"][i]) == len(texts.documents)
        assert all(len(ids) <= document_length for ids in features["aug_input_ids"][i])
        assert train["labels"][i][-1] == EOS and len(train["labels"][i]) <= target_length
        assert len(features["choice_ids"][i]) == len(choices) and all(c[-1] == EOS for c in features["choice_ids"][i])
        gold = target.strip() in choices
        assert features["gold_in_choices"][i] == gold
        assert features["target"][i] == (choices.index(target.strip()) if gold else 0)
        parts = [features["input_ids"][i], *features["aug_input_ids"][i], *features["choice_ids"][i]]
        assert features["length"][i] == sum(map(len, parts))


# --- collator --------------------------------------------------------------------------------------------------------

ids = st.lists(st.integers(3, 95), max_size=30)
feature = st.fixed_dictionaries({
    "input_ids": ids,
    "aug_input_ids": st.lists(ids, max_size=40),
    "labels": st.lists(st.integers(3, 95), min_size=1, max_size=10),
    "choice_ids": st.lists(st.lists(st.integers(3, 95), min_size=1, max_size=6), min_size=1, max_size=5),
    "target": st.integers(0, 0),
    "gold_in_choices": st.booleans(),
})


def assert_padded(ids: torch.Tensor, mask: torch.Tensor, sequences: list[list[int]], pad: int) -> None:
    assert mask.sum(-1).tolist() == [len(s) for s in sequences]
    for row, sequence in enumerate(sequences):
        assert ids[row, : len(sequence)].tolist() == sequence and mask[row, : len(sequence)].all()
        assert (ids[row, len(sequence):] == pad).all()


@FAST
@given(st.lists(feature, min_size=1, max_size=6), st.sampled_from([None, 8]), st.booleans())
def test_collated_shapes_masks_and_slot_flags_match_the_examples(features, multiple, fixed):
    longest_document = max([len(d) for f in features for d in f["aug_input_ids"]] + [1])
    longest_input = max([len(f["input_ids"]) for f in features] + [1])
    collator = Collator(PAD, pad_to_multiple_of=multiple, input_length=longest_input + 3 if fixed else None,
                        document_length=longest_document + 2 if fixed else None)
    batch = collator([dict(f) for f in features])
    b, slots = len(features), max(len(f["aug_input_ids"]) for f in features)
    expected_input = longest_input + 3 if fixed else -(-longest_input // (multiple or 1)) * (multiple or 1)
    assert batch["input_ids"].shape == batch["attention_mask"].shape == (b, expected_input)
    assert_padded(batch["input_ids"], batch["attention_mask"], [f["input_ids"] for f in features], PAD)
    assert batch["aug_input_ids"].shape == batch["aug_attention_mask"].shape
    assert batch["aug_input_ids"].shape[:2] == (b, slots) and batch["aug_exist_idx"].shape == (b, slots)
    if fixed:
        assert batch["aug_input_ids"].shape[2] == longest_document + 2
    for row, f in enumerate(features):
        docs = f["aug_input_ids"]
        assert batch["aug_exist_idx"][row].tolist() == [1] * len(docs) + [0] * (slots - len(docs))
        assert_padded(batch["aug_input_ids"][row], batch["aug_attention_mask"][row],
                      docs + [[]] * (slots - len(docs)), PAD)
    labels = batch["labels"]
    for row, f in enumerate(features):
        assert labels[row, : len(f["labels"])].tolist() == f["labels"]
        assert (labels[row, len(f["labels"]):] == LABEL_PAD).all()
    choices = [c for f in features for c in f["choice_ids"]]
    assert_padded(batch["choice_ids"], batch["choice_mask"], choices, PAD)
    assert batch["num_choices"].tolist() == [len(f["choice_ids"]) for f in features]
    assert batch["choice_owner"].tolist() == [i for i, f in enumerate(features) for _ in f["choice_ids"]]


# --- a padded batch scores each example as that example alone --------------------------------------------------------

MODELS = ("T5", "FiD", "SharedEncoderDecoder_MultiAug")
DOCUMENT_LENGTH = 10  # Zemi's documents are padded to this fixed length (see below)


@pytest.fixture(scope="module")
def models() -> dict[str, torch.nn.Module]:
    built = {}
    for architecture in MODELS:
        torch.manual_seed(0)
        model = model_from_config(architecture, tiny_t5_config(dropout_rate=0.0), tiny_perceiver_config()).eval()
        if architecture == "SharedEncoderDecoder_MultiAug":
            with torch.no_grad():  # open the gates: a fresh Zemi would equal its backbone
                model.xattn_stack[0].attn_gate.fill_(0.8)
                model.xattn_stack[0].ff_gate.fill_(0.8)
        built[architecture] = model
    return built


tokens = st.lists(st.integers(3, 95), min_size=1, max_size=DOCUMENT_LENGTH)
scored_example = st.fixed_dictionaries({
    "input_ids": tokens,
    "aug_input_ids": st.lists(tokens, min_size=1, max_size=5),
    "choice_ids": st.lists(st.lists(st.integers(3, 95), min_size=1, max_size=3).map(lambda c: c + [EOS]),
                           min_size=1, max_size=4, unique_by=tuple),
    "target": st.just(0),
    "gold_in_choices": st.just(True),
})


def collator_for(architecture: str) -> Collator:
    # Zemi's resampler attends to padding tokens (no mask, as in the original), so only documents padded to one
    # fixed length (--pad_to_max_length) are scored independently of their batch; T5 and FiD mask all padding.
    fixed = DOCUMENT_LENGTH if architecture == "SharedEncoderDecoder_MultiAug" else None
    return Collator(PAD, document_length=fixed)


@SCORING
@given(st.lists(scored_example, min_size=2, max_size=4), st.sampled_from(MODELS))
def test_a_padded_batch_scores_each_example_as_that_example_alone(models, rows, architecture):
    model, collator = models[architecture], collator_for(architecture)
    batch = collator([dict(r) for r in rows])
    batched_scores, batched_predictions = choice_scores(model, batch), rank_choices(model, batch)
    start = 0
    for i, r in enumerate(rows):
        alone = collator([dict(r)])
        scores = batched_scores[start: start + len(r["choice_ids"])]
        start += len(r["choice_ids"])
        assert torch.allclose(scores, choice_scores(model, alone), atol=1e-4, rtol=0)
        assert batched_predictions[i] == rank_choices(model, alone)[0]


def test_zemi_scores_depend_on_the_batch_when_documents_are_padded_dynamically(models):
    """Why --pad_to_max_length exists for evaluation: with the original's dynamic padding, a neighbour with a
    longer document adds padding that Zemi's resampler attends to, and changes this example's scores."""
    model = models["SharedEncoderDecoder_MultiAug"]
    short = {"input_ids": [5, 6, 7], "aug_input_ids": [[8, 9]], "choice_ids": [[10, EOS], [11, EOS]], "target": 0,
             "gold_in_choices": True}
    long = dict(short, aug_input_ids=[[8, 9, 10, 11, 12, 13, 14, 15]])
    dynamic = Collator(PAD)
    alone = choice_scores(model, dynamic([dict(short)]))
    beside_long = choice_scores(model, dynamic([dict(short), dict(long)]))[:2]
    assert (alone - beside_long).abs().max() > 1e-3
    fixed = collator_for("SharedEncoderDecoder_MultiAug")
    assert torch.allclose(choice_scores(model, fixed([dict(short)])),
                          choice_scores(model, fixed([dict(short), dict(long)]))[:2], atol=1e-5, rtol=0)
