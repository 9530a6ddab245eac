"""Batching: dynamic padding of inputs, document slots and labels (training) or answer choices (evaluation).

Document slots are padded to the batch's largest count with all-pad slots whose `aug_exist_idx` is 0; answer
choices of all examples are flattened into one (num_choices_in_batch, T) tensor with the index of their example,
so examples may have different numbers of choices.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

LABEL_PAD = -100


def _round_up(length: int, multiple: int | None) -> int:
    return length if not multiple else -(-length // multiple) * multiple


def pad_sequences(seqs: list[list[int]], pad: int, length: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, T) ids right-padded with `pad`, and the (N, T) mask of real tokens."""
    length = max([len(s) for s in seqs] + [1]) if length is None else length
    ids = torch.full((len(seqs), length), pad, dtype=torch.long)
    mask = torch.zeros((len(seqs), length), dtype=torch.long)
    for row, seq in enumerate(seqs):
        ids[row, : len(seq)] = torch.tensor(seq, dtype=torch.long)
        mask[row, : len(seq)] = 1
    return ids, mask


@dataclass
class Collator:
    pad_token_id: int
    pad_to_multiple_of: int | None = None  # multiples of 8 help tensor cores under mixed precision
    input_length: int | None = None  # fixed lengths for --pad_to_max_length; dynamic padding otherwise
    document_length: int | None = None
    # False: dynamic document padding is exactly the batch's longest document, never rounded up to
    # pad_to_multiple_of (the authors' Zemi collator pads its documents by hand, without the multiple)
    round_documents: bool = True

    def _length(self, seqs: list[list[int]], fixed: int | None, *, rounded: bool = True) -> int:
        longest = max([len(s) for s in seqs] + [1])
        return fixed if fixed is not None else _round_up(longest, self.pad_to_multiple_of if rounded else None)

    def __call__(self, features: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        inputs = [f["input_ids"] for f in features]
        batch: dict[str, torch.Tensor] = {}
        batch["input_ids"], batch["attention_mask"] = pad_sequences(
            inputs, self.pad_token_id, self._length(inputs, self.input_length))
        if "aug_input_ids" in features[0]:
            batch.update(self._documents([f["aug_input_ids"] for f in features]))
        if "labels" in features[0]:
            labels = [f["labels"] for f in features]
            batch["labels"], _ = pad_sequences(labels, LABEL_PAD, self._length(labels, None))
        if "choice_ids" in features[0]:
            batch.update(self._choices(features))
        return batch

    def _documents(self, per_example: list[list[list[int]]]) -> dict[str, torch.Tensor]:
        slots = max(len(docs) for docs in per_example)
        flat = [doc for docs in per_example for doc in docs]
        length = self._length(flat, self.document_length, rounded=self.round_documents)
        ids = torch.full((len(per_example), slots, length), self.pad_token_id, dtype=torch.long)  # (B, M, La)
        mask = torch.zeros_like(ids)
        slot_mask = torch.zeros((len(per_example), slots), dtype=torch.long)  # (B, M): 1 for a present document
        for row, docs in enumerate(per_example):
            if docs:
                ids[row, : len(docs)], mask[row, : len(docs)] = pad_sequences(docs, self.pad_token_id, length)
                slot_mask[row, : len(docs)] = 1
        return {"aug_input_ids": ids, "aug_attention_mask": mask, "aug_exist_idx": slot_mask}  # the authors' name

    def _choices(self, features: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        choices = [c for f in features for c in f["choice_ids"]]
        ids, mask = pad_sequences(choices, self.pad_token_id, self._length(choices, None))
        counts = torch.tensor([len(f["choice_ids"]) for f in features])
        return {
            "choice_ids": ids,  # (N, T): every answer choice of the batch, with EOS
            "choice_mask": mask,
            "choice_owner": torch.repeat_interleave(torch.arange(len(features)), counts),  # (N,) example index
            "num_choices": counts,  # (B,)
            "target": torch.tensor([f["target"] for f in features]),
            "gold_in_choices": torch.tensor([bool(f["gold_in_choices"]) for f in features]),
        }
