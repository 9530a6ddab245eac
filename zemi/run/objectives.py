"""What a model is scored by, computed once for training, validation, evaluation, zemi-predict and the benchmarks:
the teacher-forced token loss, and zero-shot rank classification (the T0 protocol).

Rank classification scores each answer choice by the sum of its tokens' log-probabilities (EOS included, no length
normalisation) and predicts the best-scoring choice. The input and its documents are encoded once per example; all
choices of a batch are decoded in one pass against copies of their example's encoder states, and only the choice
tokens' log-probabilities are computed (never the (choices, tokens, vocabulary) logits).
"""

from __future__ import annotations

import torch
from transformers import DynamicCache, EncoderDecoderCache

from zemi.data.collate import LABEL_PAD
from zemi.models.modeling_t5 import model_inputs

# Elements of one (choice tokens, vocabulary slice) block of logits in the fused head: bounds its memory.
FUSED_BLOCK_ELEMENTS = 2**22


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    """The model inside torch.compile's and DDP's wrappers (for `_shift_right` and saving)."""
    model = getattr(model, "_orig_mod", model)
    return getattr(model, "module", model)


def loss_on(model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Per example: the summed token loss (B,) in fp32 and the number of target tokens (B,). Callers choose the
    normalisation (training divides the sum by the global token count, validation gathers both)."""
    labels = batch["labels"]
    logits = model(**model_inputs(batch), decoder_input_ids=unwrap(model)._shift_right(labels), use_cache=False).logits
    per_token = torch.nn.functional.cross_entropy(logits.float().transpose(1, 2), labels, ignore_index=LABEL_PAD,
                                                  reduction="none")  # (B, T)
    return per_token.sum(-1), (labels != LABEL_PAD).sum(-1)


# --- rank classification ------------------------------------------------------------------------------------------


def choice_scores_from_logits(logits: torch.Tensor, choice_ids: torch.Tensor,
                              choice_mask: torch.Tensor) -> torch.Tensor:
    """The reference head: log-softmax over the whole vocabulary at every position, then the choice tokens'."""
    log_probs = logits.float().log_softmax(-1).gather(-1, choice_ids.unsqueeze(-1)).squeeze(-1)  # (N, T)
    return (log_probs * choice_mask).sum(-1)  # (N,)


def fused_choice_scores(hidden: torch.Tensor, lm_head: torch.Tensor, choice_ids: torch.Tensor,
                        choice_mask: torch.Tensor, *, block_elements: int = FUSED_BLOCK_ELEMENTS) -> torch.Tensor:
    """`choice_scores_from_logits(hidden @ lm_head.T, ...)` without the (N, T, V) logits: only the real (unpadded)
    choice tokens are scored, against vocabulary slices of at most `block_elements` logits at a time; each slice
    gives its share of the log-softmax normaliser (a logsumexp) and the logits of the targets that fall in it."""
    keep = choice_mask.bool()
    states, targets = hidden[keep], choice_ids[keep]  # (K, D), (K,): the choice tokens only
    width = max(1, block_elements // max(len(states), 1))
    chosen = states.new_zeros(len(states), dtype=torch.float32)  # (K,)
    normalisers = []
    for start in range(0, lm_head.shape[0], width):
        logits = (states @ lm_head[start:start + width].T).float()  # (K, width)
        normalisers.append(logits.logsumexp(-1))
        inside = (targets >= start) & (targets < start + width)
        chosen[inside] = logits[inside, targets[inside] - start]
    token_scores = chosen - torch.stack(normalisers, -1).logsumexp(-1)  # (K,)
    owner = torch.arange(len(choice_ids), device=hidden.device).unsqueeze(1).expand_as(choice_ids)[keep]
    return token_scores.new_zeros(len(choice_ids)).index_add_(0, owner, token_scores)  # (N,)


def choice_table(scores: torch.Tensor, owner: torch.Tensor, num_choices: torch.Tensor) -> torch.Tensor:
    """The flat (N,) choice scores of a batch as (B, most choices): row b holds example b's own choices in order,
    -inf after them (examples may have different numbers of choices)."""
    position = torch.arange(len(owner), device=owner.device) - (torch.cumsum(num_choices, 0) - num_choices)[owner]
    table = scores.new_full((len(num_choices), int(num_choices.max())), float("-inf"))
    table[owner, position] = scores
    return table


def best_choice(scores: torch.Tensor, owner: torch.Tensor, num_choices: torch.Tensor) -> torch.Tensor:
    """Arg-max over each example's own choices (the first one on ties, like torch.argmax)."""
    return choice_table(scores, owner, num_choices).argmax(-1)


def cross_attention_cache(model, states: torch.Tensor, owner: torch.Tensor) -> EncoderDecoderCache:
    """Every decoder layer's cross-attention keys and values, projected once per example and shared by its choices
    (the decoder would otherwise project the same encoder states again for every answer choice)."""
    # Internals of transformers 5.17, models/t5/modeling_t5.py: T5LayerCrossAttention is block.layer[1] with its
    # T5Attention `EncDecAttention` (projections .k/.v, head size .key_value_proj_dim), which reads a filled
    # EncoderDecoderCache's cross-attention part instead of projecting. tests/test_evaluation.py checks the result
    # against the decoder's own projections, so a change there fails a test rather than the numbers.
    cross = DynamicCache(config=model.decoder.config)
    for index, block in enumerate(model.decoder.block):
        attention = block.layer[1].EncDecAttention
        shape = (*states.shape[:-1], -1, attention.key_value_proj_dim)
        keys = attention.k(states).view(shape).transpose(1, 2)  # (B, heads, S, d_kv)
        values = attention.v(states).view(shape).transpose(1, 2)
        cross.update(keys.index_select(0, owner), values.index_select(0, owner), index)
    return EncoderDecoderCache(DynamicCache(config=model.decoder.config), cross)


@torch.no_grad()
def choice_scores(model, batch: dict[str, torch.Tensor], *, fused: bool = True) -> torch.Tensor:
    """Summed log-probability of every answer choice (N,): each example encoded once, all its choices decoded
    together; `fused=False` computes the full-vocabulary logits first (the reference head)."""
    encoded = model.encode(**model_inputs(batch))
    owner = batch["choice_owner"]
    states = encoded.hidden_states.index_select(0, owner)  # (N, S, D)
    decoded = model.decoder(
        input_ids=model._shift_right(batch["choice_ids"]),
        encoder_hidden_states=states,
        encoder_attention_mask=encoded.attention_mask.index_select(0, owner),
        past_key_values=cross_attention_cache(model, encoded.hidden_states, owner),
        use_cache=True,
    ).last_hidden_state  # (N, T, D)
    if model.config.scale_decoder_outputs:  # tied embeddings (original T5), as T5ForConditionalGeneration does
        decoded = decoded * model.model_dim**-0.5
    if fused:
        return fused_choice_scores(decoded, model.lm_head.weight, batch["choice_ids"], batch["choice_mask"])
    return choice_scores_from_logits(model.lm_head(decoded), batch["choice_ids"], batch["choice_mask"])


@torch.no_grad()
def rank_choices(model, batch: dict[str, torch.Tensor], *, fused: bool = True) -> torch.Tensor:
    """Predicted choice index per example: encode each example once, decode all its choices together."""
    return best_choice(choice_scores(model, batch, fused=fused), batch["choice_owner"], batch["num_choices"])


@torch.no_grad()
def choice_scores_reencoding(model, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """The authors' computation: the full model runs once per (example, choice), re-encoding input and documents,
    and scores the full-vocabulary logits. The independent reference for tests and the benchmark's reference mode."""
    owner = batch["choice_owner"]
    repeated = {name: value.index_select(0, owner) for name, value in model_inputs(batch).items()}
    logits = model(**repeated, decoder_input_ids=model._shift_right(batch["choice_ids"]), use_cache=False).logits
    return choice_scores_from_logits(logits, batch["choice_ids"], batch["choice_mask"])


@torch.no_grad()
def rank_choices_reencoding(model, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    return best_choice(choice_scores_reencoding(model, batch), batch["choice_owner"], batch["num_choices"])
