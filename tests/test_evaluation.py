"""Rank classification (`zemi.run.objectives`): encoding once per example scores exactly what the authors' computation
(the full model once per choice) scores, the cross-attention cache built from transformers' T5 internals equals the
decoder's own projections, and the fused head (choice tokens only, vocabulary in slices) scores exactly what the
full-vocabulary log-softmax scores."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoTokenizer

from tests.helpers import tiny_perceiver_config, tiny_t5_config
from zemi.data.collate import Collator
from zemi.data.mixture import load_eval_templates
from zemi.data.processing import Featurizer, MaxLengths, TextRules
from zemi.modeling_t5 import T5ForConditionalGenerationMultiAug, T5WithOwnLMHead, build_model, model_inputs
from zemi.run.objectives import (
    best_choice,
    choice_scores,
    choice_scores_from_logits,
    choice_scores_reencoding,
    choice_table,
    cross_attention_cache,
    fused_choice_scores,
    rank_choices,
    rank_choices_reencoding,
)

pytestmark = pytest.mark.unit

RULES = {
    "T5": TextRules(),
    "concat": TextRules(concat_aug_num=3),
    "FiD": TextRules(num_documents=5, concat_input_at_augmentation=True),
    "SharedEncoderDecoder_MultiAug": TextRules(num_documents=5),
}


@pytest.mark.parametrize("vocab, block_elements", [(96, 2**22), (1000, 300), (1000, 1), (32128, 2**22)])
def test_fused_head_scores_what_the_full_vocabulary_log_softmax_scores(vocab, block_elements):
    """Ragged choices (padding in every row but one), a vocabulary in one slice, in many, and one column at a time."""
    g = torch.Generator().manual_seed(vocab)
    hidden, weight = torch.randn(10, 7, 48, generator=g), torch.randn(vocab, 48, generator=g) * 0.3
    ids = torch.randint(0, vocab, (10, 7), generator=g)
    mask = (torch.arange(7) < torch.tensor([1, 2, 3, 4, 5, 6, 7, 7, 2, 1]).unsqueeze(1)).long()
    full = choice_scores_from_logits(hidden @ weight.T, ids, mask)
    torch.testing.assert_close(fused_choice_scores(hidden, weight, ids, mask, block_elements=block_elements), full,
                               rtol=1e-6, atol=1e-5)


def test_fused_head_of_a_tied_t5_scales_the_decoder_output_as_the_model_does():
    """An original (tied) T5 scales the decoder output by d_model^-0.5 before its head; the fused path must too."""
    torch.manual_seed(0)
    model = T5WithOwnLMHead(tiny_t5_config(tie_word_embeddings=True)).eval()
    assert model.config.scale_decoder_outputs
    g = torch.Generator().manual_seed(1)
    batch = {"input_ids": torch.randint(2, 96, (2, 9), generator=g), "attention_mask": torch.ones(2, 9, dtype=torch.long),
             "choice_ids": torch.randint(2, 96, (5, 4), generator=g), "choice_mask": torch.ones(5, 4, dtype=torch.long),
             "choice_owner": torch.tensor([0, 0, 0, 1, 1]), "num_choices": torch.tensor([3, 2])}
    with torch.no_grad():
        repeated = {k: v.index_select(0, batch["choice_owner"]) for k, v in model_inputs(batch).items()}
        logits = model(**repeated, decoder_input_ids=model._shift_right(batch["choice_ids"])).logits
    expected = choice_scores_from_logits(logits, batch["choice_ids"], batch["choice_mask"])
    for fused in (True, False):
        torch.testing.assert_close(choice_scores(model, batch, fused=fused), expected, rtol=1e-6, atol=1e-5)


def test_best_choice_respects_each_examples_own_choices():
    scores = torch.tensor([-1.0, -0.5, -3.0, -0.2, -0.2, -9.0])
    owner = torch.tensor([0, 0, 1, 1, 1, 2])
    assert best_choice(scores, owner, torch.tensor([2, 3, 1])).tolist() == [1, 1, 0]  # tie: the first
    inf = float("-inf")
    expected = torch.tensor([[-1.0, -0.5, inf], [-3.0, -0.2, -0.2], [-9.0, inf, inf]])
    assert torch.equal(choice_table(scores, owner, torch.tensor([2, 3, 1])), expected)


def test_the_cross_attention_cache_equals_the_decoders_own_projections():
    """cross_attention_cache reaches into transformers' T5 (EncDecAttention.k/.v, key_value_proj_dim,
    EncoderDecoderCache): decoding against it must give what the decoder gives when it projects the encoder
    states itself (every model variant shares T5's decoder). A change of those internals fails here."""
    torch.manual_seed(0)
    model = T5WithOwnLMHead(tiny_t5_config()).eval()
    g = torch.Generator().manual_seed(2)
    states = torch.randn(2, 9, model.config.d_model, generator=g)
    mask = torch.ones(2, 9, dtype=torch.long)
    mask[1, 6:] = 0
    owner = torch.tensor([0, 0, 1, 1, 1])
    choices = model._shift_right(torch.randint(2, 96, (5, 4), generator=g))
    with torch.no_grad():
        plain = model.decoder(input_ids=choices, encoder_hidden_states=states.index_select(0, owner),
                              encoder_attention_mask=mask.index_select(0, owner), use_cache=False).last_hidden_state
        cached = model.decoder(input_ids=choices, encoder_hidden_states=states.index_select(0, owner),
                               encoder_attention_mask=mask.index_select(0, owner),
                               past_key_values=cross_attention_cache(model, states, owner),
                               use_cache=True).last_hidden_state
    torch.testing.assert_close(cached, plain, rtol=1e-6, atol=1e-6)
    # the cache is what the decoder used: wrong keys give other states
    with torch.no_grad():
        wrong = model.decoder(input_ids=choices, encoder_hidden_states=states.index_select(0, owner),
                              encoder_attention_mask=mask.index_select(0, owner),
                              past_key_values=cross_attention_cache(model, states.flip(0), owner),
                              use_cache=True).last_hidden_state
    assert not torch.allclose(wrong, plain, atol=1e-3)


@pytest.mark.parametrize("method", list(RULES))
def test_encode_once_predicts_like_reencoding_per_choice(method, backbone_dir, data_root):
    architecture = "T5" if method == "concat" else method
    torch.manual_seed(0)
    model = build_model(architecture, backbone_dir, tiny_perceiver_config()).eval()
    if isinstance(model, T5ForConditionalGenerationMultiAug):
        with torch.no_grad():
            model.xattn_stack[0].attn_gate.fill_(0.8)
            model.xattn_stack[0].ff_gate.fill_(0.8)
    tokenizer = AutoTokenizer.from_pretrained(backbone_dir)
    featurizer = Featurizer(tokenizer, RULES[method], MaxLengths(input=48, document=24, target=8))
    collator = Collator(tokenizer.pad_token_id)
    checked = 0
    for template in load_eval_templates(sorted((data_root / "weather_effect").iterdir()) +
                                        sorted((data_root / "fruit_taste").iterdir())):
        rows = template.dataset.map(featurizer.eval_features, batched=True, remove_columns=template.dataset.column_names)
        for start in range(0, len(rows), 5):
            batch = collator([rows[i] for i in range(start, min(start + 5, len(rows)))])
            fast, naive = rank_choices(model, batch), rank_choices_reencoding(model, batch)
            assert torch.equal(fast, naive) and torch.equal(rank_choices(model, batch, fused=False), naive)
            torch.testing.assert_close(choice_scores(model, batch), choice_scores(model, batch, fused=False),
                                       rtol=1e-6, atol=1e-5)
            checked += len(fast)
            # the scores themselves agree, not only their arg-max
            torch.testing.assert_close(choice_scores(model, batch), choice_scores_reencoding(model, batch),
                                       rtol=1e-5, atol=1e-4)
        with torch.no_grad():  # encoded once per example, not per choice
            assert model.encode(**model_inputs(batch)).hidden_states.shape[0] == len(batch["num_choices"])
    assert checked == 48
