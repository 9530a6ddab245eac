"""The T5 models of the paper: plain T5 (No Aug, Concat), FiD, and Zemi (`T5ForConditionalGenerationMultiAug`).

All three subclass transformers' `T5ForConditionalGeneration`; FiD and Zemi only change how the encoder side is
computed (`encode`), so decoding, loss, `generate()` and `save_pretrained` are the library's. State-dict keys are
those of the authors' published checkpoints. Shapes: B batch, M document slots, La document tokens, L input tokens.
"""

from __future__ import annotations

import copy
from typing import Any, NamedTuple

import torch
from torch import nn
from transformers import T5Config, T5EncoderModel, T5ForConditionalGeneration
from transformers.masking_utils import create_bidirectional_mask
from transformers.modeling_outputs import BaseModelOutput, Seq2SeqLMOutput
from transformers.models.t5.modeling_t5 import T5Block

from zemi.errors import ConfigError
from zemi.models.configuration_zemi import PerceiverXattnConfig, ZemiConfig, ZemiFiDConfig, convert_config
from zemi.models.modeling_xattn import GatedCrossAttentionBlock, PerceiverResampler
from zemi.models.t5_init import reset_t5_block

__all__ = [
    "AUG_INPUT_NAMES", "MODEL_INPUT_NAMES", "DocumentFusedT5", "Encoded", "T5WithOwnLMHead",
    "T5ForConditionalGenerationFiD", "T5ForConditionalGenerationMultiAug", "encode_slots", "fusion_stack",
    "model_inputs",
]

AUG_INPUT_NAMES = ("aug_input_ids", "aug_attention_mask", "aug_exist_idx")
MODEL_INPUT_NAMES = ("input_ids", "attention_mask") + AUG_INPUT_NAMES


def model_inputs(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The entries of a collated batch that the models' `forward` and `encode` take."""
    return {name: batch[name] for name in MODEL_INPUT_NAMES if name in batch}


class Encoded(NamedTuple):
    """What the decoder cross-attends to: states (B, S, D) and their mask (B, S)."""

    hidden_states: torch.Tensor
    attention_mask: torch.Tensor


class T5WithOwnLMHead(T5ForConditionalGeneration):
    """Plain T5, the No Aug and Concat model, and the base of FiD and Zemi.

    transformers 5 declares the LM head of every T5 tied to the input embedding (T5Config forces
    `tie_word_embeddings`); `from_pretrained` then unties the two when a checkpoint holds both with different values,
    and ties them when it holds no head. t5-lm-adapt (T5 v1.1, recorded as `scale_decoder_outputs=False`) has its
    own head, so here it starts untied: a model built from the config and given a published `step_N` state dict
    (`load_state_dict`) keeps the two matrices apart. A checkpoint directory without `lm_head.weight` gets the head
    transformers gives it, the embedding, tied (`tie_weights`), never a random one.
    """

    # target: source. A checkpoint directory without the target uses the source, tied (transformers' T5 rule).
    tied_if_absent = {"lm_head.weight": "shared.weight"}

    def has_own_head(self) -> bool:
        return not getattr(self.config, "scale_decoder_outputs", True) and not getattr(self, "_head_tied", False)

    def get_expanded_tied_weights_keys(self, all_submodels: bool = False) -> dict:
        keys = super().get_expanded_tied_weights_keys(all_submodels=all_submodels)
        if self.has_own_head():
            keys.pop("lm_head.weight", None)
        return keys

    def tie_weights(self, missing_keys: set[str] | None = None, recompute_mapping: bool = True) -> None:
        # from_pretrained passes the keys its checkpoint lacked (transformers 5.17: _finalize_model_loading): a
        # checkpoint without a head of its own gets the embedding, as transformers' T5 does.
        if missing_keys is not None and self.has_own_head() and "lm_head.weight" in missing_keys \
                and "shared.weight" not in missing_keys:
            self._head_tied = True
            self.all_tied_weights_keys.update(self.tied_if_absent)
        super().tie_weights(missing_keys=missing_keys, recompute_mapping=recompute_mapping)

    def encode(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, **unused: Any) -> Encoded:
        """Encoder states of the prompted input (augmentation inputs, if any, are ignored)."""
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state  # (B, L, D)
        return Encoded(hidden, attention_mask)


class DocumentFusedT5(T5WithOwnLMHead):
    """Shared plumbing of FiD and Zemi: `forward` and `generate()` take the document inputs and call `encode`."""

    def encode(self, input_ids, attention_mask, aug_input_ids, aug_attention_mask, aug_exist_idx=None) -> Encoded:
        raise NotImplementedError

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        aug_input_ids: torch.Tensor | None = None,
        aug_attention_mask: torch.Tensor | None = None,
        aug_exist_idx: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        encoder_outputs: BaseModelOutput | tuple | None = None,
        **kwargs: Any,
    ) -> Seq2SeqLMOutput:
        if encoder_outputs is None:
            if aug_input_ids is None or aug_attention_mask is None:
                raise ConfigError(f"{type(self).__name__} needs aug_input_ids and aug_attention_mask (B, M, La)")
            encoded = self.encode(input_ids, attention_mask, aug_input_ids, aug_attention_mask, aug_exist_idx)
            encoder_outputs = BaseModelOutput(last_hidden_state=encoded.hidden_states)
            attention_mask = encoded.attention_mask
        return super().forward(attention_mask=attention_mask, encoder_outputs=encoder_outputs, labels=labels, **kwargs)

    def _prepare_encoder_decoder_kwargs_for_generation(
        self, inputs_tensor, model_kwargs, model_input_name, generation_config
    ) -> dict[str, Any]:
        # generate() encodes once before decoding; route that through `encode` so the documents are used, and
        # hand the decoder the mask of what `encode` returned (for FiD: the joined document tokens).
        aug = {name: model_kwargs.pop(name, None) for name in AUG_INPUT_NAMES}
        if aug["aug_input_ids"] is None or aug["aug_attention_mask"] is None:
            raise ConfigError(f"{type(self).__name__}.generate() needs aug_input_ids and aug_attention_mask")
        encoded = self.encode(inputs_tensor, model_kwargs.get("attention_mask"), **aug)
        model_kwargs["encoder_outputs"] = BaseModelOutput(last_hidden_state=encoded.hidden_states)
        model_kwargs["attention_mask"] = encoded.attention_mask
        return model_kwargs


class T5ForConditionalGenerationFiD(DocumentFusedT5):
    """Fusion-in-Decoder: each `input + "\\n" + document_i` is encoded alone; the decoder reads all of them joined.

    The bare input is not encoded on its own (it is inside every augmentation text); `aug_exist_idx` is accepted
    and ignored, padded slots being hidden from the decoder by `aug_attention_mask`.
    """

    config_class = ZemiFiDConfig  # model_type "zemi_fid": AutoModelForSeq2SeqLM loads a saved FiD as FiD

    def __init__(self, config: T5Config, *, perceiver_xattn_config: PerceiverXattnConfig | None = None):
        # perceiver_xattn_config: accepted and ignored, as the authors' FiD constructor does (FiD has no fusion modules)
        if not isinstance(config, ZemiFiDConfig):  # a backbone's T5Config
            config = convert_config(config, ZemiFiDConfig)
        super().__init__(config)

    def encode(self, input_ids, attention_mask, aug_input_ids, aug_attention_mask, aug_exist_idx=None) -> Encoded:
        b, m, la = aug_input_ids.shape
        # Padding slots (no token at all) are hidden from the decoder by their mask: no need to encode them.
        states = encode_slots(self.encoder, aug_input_ids, aug_attention_mask, aug_attention_mask.any(-1))
        return Encoded(states.reshape(b, m * la, -1), aug_attention_mask.reshape(b, m * la))


FROZEN_SHARED = "frozen_encoder.shared.weight"
FROZEN_EMBED_TOKENS = "frozen_encoder.encoder.embed_tokens.weight"


class T5ForConditionalGenerationMultiAug(DocumentFusedT5):
    """Zemi: T5 whose encoder output reads the retrieved documents through a Perceiver resampler and gated
    cross-attention before the decoder sees it.

    The shared encoder encodes the input (B, L) and every document slot (B*M, La); the resampler turns each slot
    into `num_latents` vectors; the gated block(s) let every input position attend to the latents of the present
    slots (`aug_exist_idx` 1). With the gates at 0 (fresh model) the output is exactly the backbone T5's.
    """

    # What a T5 checkpoint does not hold: built fresh (the fusion modules) or copied after loading (frozen_encoder)
    modules_not_in_t5 = ("perceiver_resampler", "xattn_stack", "frozen_encoder")

    config_class = ZemiConfig  # model_type "zemi": AutoModelForSeq2SeqLM loads a saved Zemi as Zemi

    def __init__(self, config: T5Config, perceiver_xattn_config: PerceiverXattnConfig | None = None):
        fusion = perceiver_xattn_config if perceiver_xattn_config is not None else _saved_fusion(config)
        fusion.check_fits(config.d_model)
        if not isinstance(config, ZemiConfig):  # a backbone's T5Config
            config = convert_config(config, ZemiConfig)
        config.perceiver_xattn_config = fusion.to_dict()  # saved with the model by save_pretrained
        super().__init__(config)
        self.fusion_config = fusion
        self.perceiver_resampler = PerceiverResampler(
            dim=fusion.dim,
            depth=fusion.depth,
            dim_head=fusion.dim_head,
            heads=fusion.heads,
            num_latents=fusion.num_latents,
            num_aug_sources=fusion.num_aug_sources,
            ff_mult=fusion.ff_mult,
        )
        self.xattn_stack = fusion_stack(self.encoder.config, fusion)
        for block in self.xattn_stack:  # built after post_init: give extra T5 blocks T5's initialisation here
            if isinstance(block, T5Block):
                reset_t5_block(block, config)
        # The FrozenAugEncoder ablation's document encoder, laid out as the authors' (a T5EncoderModel, its one
        # embedding under two names: `frozen_encoder.shared`, `frozen_encoder.encoder.embed_tokens`).
        self.frozen_encoder = T5EncoderModel(copy.deepcopy(config)) if fusion.separate_aug_encoder else None
        self.apply_freezing()

    @classmethod
    def from_pretrained(cls, *args: Any, **kwargs: Any) -> T5ForConditionalGenerationMultiAug:
        loaded = super().from_pretrained(*args, **kwargs)  # (model, loading info) with output_loading_info=True
        model = loaded[0] if isinstance(loaded, tuple) else loaded
        model.apply_freezing()  # loading replaces parameters, and with them their requires_grad flags
        return loaded

    def _init_weights(self, module: nn.Module) -> None:
        # Called by transformers for modules that a checkpoint did not provide: the fusion modules keep their own
        # initialisation (xavier-normal Linear layers, randn latents and slot embeddings, zero gates).
        if isinstance(module, (PerceiverResampler, GatedCrossAttentionBlock)):
            module.reset_parameters()
        else:
            super()._init_weights(module)
            # transformers reaches only the leaves of a block it did not load: give the whole extra T5 block of a
            # deeper stack T5's initialisation again (its last leaf's call is the one that stays)
            for block in getattr(self, "xattn_stack", ()):
                if isinstance(block, T5Block) and any(module is sub for sub in block.modules()):
                    reset_t5_block(block, self.config)

    def fusion_modules(self) -> list[nn.Module]:
        return [self.perceiver_resampler, self.xattn_stack]

    def apply_freezing(self) -> None:
        """`freeze_lm`: only the fusion modules train. A separate document encoder is always frozen."""
        if self.fusion_config.freeze_lm:
            fusion_params = {id(p) for module in self.fusion_modules() for p in module.parameters()}
            for param in self.parameters():
                param.requires_grad_(id(param) in fusion_params)
        if self.frozen_encoder is not None:
            self.frozen_encoder.requires_grad_(False)

    def tie_weights(self, missing_keys: set[str] | None = None, recompute_mapping: bool = True) -> None:
        super().tie_weights(missing_keys=missing_keys, recompute_mapping=recompute_mapping)
        # The document encoder is built after post_init collected the submodels' tied weights, so transformers
        # (5.17) does not tie its one embedding (two names): tie it here, to the copy the checkpoint holds.
        encoder = getattr(self, "frozen_encoder", None)
        if encoder is None:
            return
        if missing_keys is not None and FROZEN_EMBED_TOKENS in missing_keys:  # save_pretrained keeps `shared`
            encoder.encoder.embed_tokens.weight = encoder.shared.weight
            missing_keys.discard(FROZEN_EMBED_TOKENS)
        else:  # the one the encoder computes with
            encoder.shared.weight = encoder.encoder.embed_tokens.weight
            if missing_keys is not None:
                missing_keys.discard(FROZEN_SHARED)

    def copy_encoder_to_frozen_encoder(self) -> None:
        """Start the separate document encoder as a frozen copy of the (pretrained) shared encoder, embedding
        included, as the original loads it from the backbone checkpoint."""
        if self.frozen_encoder is not None:
            self.frozen_encoder.encoder.load_state_dict(self.encoder.state_dict())  # embed_tokens is its `shared`
            self.frozen_encoder.requires_grad_(False)

    def encode(self, input_ids, attention_mask, aug_input_ids, aug_attention_mask, aug_exist_idx=None) -> Encoded:
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state  # (B, L, D)
        b, m, la = aug_input_ids.shape
        doc_encoder = self.frozen_encoder.encoder if self.frozen_encoder is not None else self.encoder
        # Absent slots (aug_exist_idx 0) are masked out of the cross-attention: no need to encode them. An example
        # without any document attends uniformly to all its slots (as in the original), so those are encoded.
        slot_mask = aug_exist_idx  # (B, M): 1 for a present document; the one name for it inside our code
        to_encode = None
        if slot_mask is not None:
            to_encode = slot_mask.bool() | ~slot_mask.bool().any(dim=1, keepdim=True)
        with torch.set_grad_enabled(torch.is_grad_enabled() and self.frozen_encoder is None):
            docs = encode_slots(doc_encoder, aug_input_ids, aug_attention_mask, to_encode)  # (B*M, La, D)
        media = self.perceiver_resampler(docs.reshape(b, m, la, -1))  # (B, M, num_latents, D)
        mask = None
        for block in self.xattn_stack:
            if isinstance(block, GatedCrossAttentionBlock):
                hidden = block(hidden, media, slot_mask)  # (B, L, D)
            else:  # an extra T5 block (num_xattn_layers > 1): self-attention over the input, no position bias
                if mask is None:
                    mask = create_bidirectional_mask(config=self.encoder.config, inputs_embeds=hidden,
                                                     attention_mask=attention_mask)
                hidden = block(hidden, attention_mask=mask, position_bias=None)[0]
        return Encoded(hidden, attention_mask)


def fusion_stack(encoder_config: T5Config, fusion: PerceiverXattnConfig) -> nn.ModuleList:
    """The authors' `xattn_stack`: one gated cross-attention block; with `num_xattn_layers` n > 1, n fresh T5
    encoder blocks (no relative position bias, T5's own initialisation, no pretrained weights) with a gated block
    inserted before blocks 0, k, 2k, ... (k = `cross_attn_every`): for k = 1, [gated, T5, gated, T5, ...]."""

    def gated() -> GatedCrossAttentionBlock:
        return GatedCrossAttentionBlock(dim=fusion.dim, dim_head=fusion.dim_head, heads=fusion.heads,
                                        ff_mult=fusion.xattn_ff_mult, gate=fusion.gate)

    if fusion.num_xattn_layers == 1:
        return nn.ModuleList([gated()])
    layers: list[nn.Module] = [T5Block(encoder_config, has_relative_attention_bias=False)
                               for _ in range(fusion.num_xattn_layers)]
    for inserted, position in enumerate(range(0, fusion.num_xattn_layers, fusion.cross_attn_every)):
        layers.insert(position + inserted, gated())
    return nn.ModuleList(layers)


def encode_slots(encoder: nn.Module, ids: torch.Tensor, mask: torch.Tensor, to_encode: torch.Tensor | None
                 ) -> torch.Tensor:
    """Encoder states (B*M, La, D) of the document slots (B, M, La); slots where `to_encode` (B, M) is False are not
    run through the encoder and get zeros (their states are masked downstream)."""
    b, m, la = ids.shape
    ids, mask = ids.reshape(b * m, la), mask.reshape(b * m, la)
    # Under torch.compile, data-dependent row selection would break the graph: encode every slot instead.
    if to_encode is None or torch.compiler.is_compiling() or bool(to_encode.all()):
        return encoder(input_ids=ids, attention_mask=mask).last_hidden_state
    rows = to_encode.reshape(-1).nonzero().squeeze(1)
    states = encoder(input_ids=ids[rows], attention_mask=mask[rows]).last_hidden_state  # (kept, La, D)
    return states.new_zeros(b * m, la, states.shape[-1]).index_copy(0, rows, states)


def _saved_fusion(config: T5Config) -> PerceiverXattnConfig:
    """The fusion settings of a saved Zemi's config.json (AutoModelForSeq2SeqLM.from_pretrained)."""
    values = getattr(config, "perceiver_xattn_config", None)
    if values is None:
        raise ConfigError("T5ForConditionalGenerationMultiAug needs perceiver_xattn_config (a PerceiverXattnConfig, "
                          "e.g. PerceiverXattnConfig.from_json('training/perceiver_configs/...json'))")
    name = getattr(config, "name_or_path", "") or "a Zemi model"
    return PerceiverXattnConfig.from_dict(values, source=f"{name}/config.json: perceiver_xattn_config")
