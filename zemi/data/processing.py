"""From a 30aug example to token ids, with the original's text rules.

Input and target are stripped. No Aug reads the input alone; Concat appends `concat_aug_num` documents to it;
FiD and Zemi get up to `num_documents` separate document texts (FiD's each prefixed with the input), where a
document shorter than 2 characters becomes "N/A", no documents at all become `N/A` in every slot, and documents
beyond the model's slots are folded round-robin into them (`--fit_aug_num`). A document longer than
`MAX_DOCUMENT_CHARS` is cut to it first (load-time validation names such documents). Inputs and documents are
tokenised without EOS, targets and answer choices with it.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from typing import Any, Sequence

from zemi.errors import ConfigError
from zemi.data.validation import MAX_DOCUMENT_CHARS

logger = logging.getLogger(__name__)

NO_DOCUMENT = "N/A"


@dataclass(frozen=True)
class TextRules:
    """Which texts a method builds from an example."""

    num_documents: int = 0  # document slots of the model (num_aug_sources); 0: no separate documents
    fit_aug_num: int = -1  # documents to take and fold into the slots; -1: as many as there are slots
    concat_input_at_augmentation: bool = False  # FiD: every document text is `input + "\n" + document`
    concat_aug_num: int = 0  # Concat: `input + "\n" + doc_1 + ... + "\n" + doc_k`

    def __post_init__(self):
        if self.num_documents < 0 or self.concat_aug_num < 0:
            raise ConfigError("num_documents and concat_aug_num must be >= 0")
        if self.fit_aug_num != -1 and self.fit_aug_num < 1:
            raise ConfigError(f"--fit_aug_num must be -1 (off) or a positive number of documents, got {self.fit_aug_num}")
        if self.num_documents and self.concat_aug_num:
            raise ConfigError("Concat (--concat_aug_num) and separate document slots cannot be combined")

    @property
    def documents_taken(self) -> int:
        return self.fit_aug_num if self.fit_aug_num != -1 else self.num_documents

    @property
    def documents_read(self) -> int:
        """Documents per example the texts are built from: what load-time validation scans (0 for No Aug)."""
        return self.documents_taken if self.num_documents else self.concat_aug_num


@dataclass(frozen=True)
class ExampleTexts:
    input: str
    target: str
    documents: list[str]  # empty for No Aug and Concat
    answer_choices: list[str] | None = None


def document_texts(chosen_examples: Any) -> list[str]:
    """Retrieved document texts, best first. Accepts a list of {inputs_pretokenized, score} records and the
    dict-of-lists form that datasets uses for files declared with the old `Sequence` feature."""
    if isinstance(chosen_examples, dict):
        return list(chosen_examples.get("inputs_pretokenized") or [])
    return [doc["inputs_pretokenized"] for doc in chosen_examples or []]


def document_text(text: str) -> str:
    """A retrieved document as the model reads it: stripped, and cut to MAX_DOCUMENT_CHARS so that one runaway
    document (a whole file in one field) cannot exhaust memory; every token limit is far below that length."""
    return text.strip()[:MAX_DOCUMENT_CHARS]


def fold_documents(documents: list[str], slots: int) -> list[str]:
    """Keep `slots` texts: document i (i >= slots) is prepended to slot `i % slots`, separated by a newline."""
    folded = list(documents[:slots])
    for i in range(slots, len(documents)):
        folded[i % slots] = documents[i] + "\n" + folded[i % slots]
    return folded


def build_texts(example: dict[str, Any], rules: TextRules) -> ExampleTexts:
    text = example["inputs_pretokenized"].strip()
    target = example["targets_pretokenized"].strip()
    documents = document_texts(example["chosen_examples"])
    if rules.concat_aug_num:
        text = "\n".join([text] + [document_text(doc) for doc in documents[: rules.concat_aug_num]])
    slot_texts: list[str] = []
    if rules.num_documents:
        prefix = text + "\n" if rules.concat_input_at_augmentation else ""
        taken = [document_text(doc) for doc in documents[: rules.documents_taken]]
        slot_texts = [prefix + (doc if len(doc) >= 2 else NO_DOCUMENT) for doc in taken]
        if not slot_texts:
            slot_texts = [prefix + NO_DOCUMENT] * rules.documents_taken
        if len(slot_texts) > rules.num_documents:
            slot_texts = fold_documents(slot_texts, rules.num_documents)
    choices = example.get("answer_choices")
    return ExampleTexts(text, target, slot_texts, list(choices) if choices is not None else None)


@dataclass(frozen=True)
class MaxLengths:
    input: int = 1024
    document: int = 256
    target: int = 256

    def __post_init__(self):
        for name in ("input", "document", "target"):
            if getattr(self, name) < 1:
                raise ConfigError(f"max length for {name} must be positive, got {getattr(self, name)}")


class Featurizer:
    """Token ids for training (`train_features`) and for rank classification (`eval_features`); both are
    `datasets.map(batched=True)` functions, so their results are cached with the dataset."""

    def __init__(self, tokenizer, rules: TextRules, lengths: MaxLengths = MaxLengths(), *, input_eos: bool = False):
        self.tokenizer = tokenizer
        self.rules = rules
        self.lengths = lengths
        self.input_eos = input_eos  # T0 and Zemi feed inputs without EOS; --input_eos adds it

    def fingerprint(self) -> str:
        """Identifies the token ids this featurizer produces (for the tokenised-dataset cache)."""
        vocabulary = hashlib.sha1(self.tokenizer.backend_tokenizer.to_str().encode()).hexdigest()
        return f"{vocabulary}|{self.rules}|{self.lengths}|{self.input_eos}"

    def _ids(self, texts: Sequence[str], max_length: int, eos: bool) -> list[list[int]]:
        if not texts:
            return []
        return self.tokenizer(list(texts), max_length=max_length, truncation=True, add_special_tokens=eos)["input_ids"]

    def _inputs(self, texts: list[ExampleTexts]) -> dict[str, list]:
        features = {"input_ids": self._ids([t.input for t in texts], self.lengths.input, self.input_eos)}
        if self.rules.num_documents:
            features["aug_input_ids"] = [self._ids(t.documents, self.lengths.document, self.input_eos) for t in texts]
        return features

    def train_features(self, batch: dict[str, list]) -> dict[str, list]:
        texts = [build_texts(example, self.rules) for example in _rows(batch)]
        features = self._inputs(texts)
        features["labels"] = self._ids([t.target for t in texts], self.lengths.target, True)
        features["length"] = _lengths(features)
        return features

    def eval_features(self, batch: dict[str, list]) -> dict[str, list]:
        texts = [build_texts(example, self.rules) for example in _rows(batch)]
        features = self._inputs(texts)
        features["choice_ids"] = [self._ids(t.answer_choices, self.lengths.target, True) for t in texts]
        features["gold_in_choices"] = [t.target in t.answer_choices for t in texts]
        # The original scores a gold target missing from the choices as choice 0 (with a warning); kept for
        # faithfulness, counted per template in the results.
        features["target"] = [t.answer_choices.index(t.target) if t.target in t.answer_choices else 0 for t in texts]
        features["length"] = _lengths(features)
        return features


def _lengths(features: dict[str, list]) -> list[int]:
    """Tokens per example (input, documents, labels or choices): the cost that length grouping balances."""
    parts = [features["input_ids"]] + [features[k] for k in ("aug_input_ids", "choice_ids") if k in features]
    total = [len(ids) for ids in features["input_ids"]]
    for nested in parts[1:]:
        total = [t + sum(len(x) for x in group) for t, group in zip(total, nested)]
    if "labels" in features:
        total = [t + len(labels) for t, labels in zip(total, features["labels"])]
    return total


def _rows(batch: dict[str, list]) -> list[dict[str, Any]]:
    keys = list(batch)
    return [dict(zip(keys, values)) for values in zip(*(batch[k] for k in keys))]
