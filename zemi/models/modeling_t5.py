"""The T5 models of the paper: plain T5 (No Aug, Concat), FiD, and Zemi (`T5ForConditionalGenerationMultiAug`).

All three subclass transformers' `T5ForConditionalGeneration`; FiD and Zemi only change how the encoder side is
computed (`encode`), so decoding, loss, `generate()` and `save_pretrained` are the library's. State-dict keys are
those of the authors' published checkpoints. Shapes: B batch, M document slots, La document tokens, L input tokens.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import torch
from torch import nn
from transformers import T5Config, T5EncoderModel, T5ForConditionalGeneration
from transformers.masking_utils import create_bidirectional_mask
from transformers.modeling_outputs import BaseModelOutput, Seq2SeqLMOutput
from transformers.models.t5.modeling_t5 import T5Attention, T5Block, T5DenseActDense, T5DenseGatedActDense, T5LayerNorm

from zemi.errors import ConfigError
from zemi.models.configuration_zemi import ZemiConfig, ZemiFiDConfig, convert_config, load_model_config
from zemi.models.modeling_xattn import GATES, GatedCrossAttentionBlock, PerceiverResampler

logger = logging.getLogger(__name__)

__all__ = [
    "AUG_INPUT_NAMES", "MODEL_INPUT_NAMES", "ARCHITECTURES", "Architecture", "Encoded", "PerceiverXattnConfig",
    "T5WithOwnLMHead", "T5ForConditionalGenerationFiD", "T5ForConditionalGenerationMultiAug", "build_model",
    "encode_slots", "get_architecture", "model_config_for", "model_from_config", "model_inputs", "read_perceiver_json",
    "resolve_perceiver_config",
]

AUG_INPUT_NAMES = ("aug_input_ids", "aug_attention_mask", "aug_exist_idx")
MODEL_INPUT_NAMES = ("input_ids", "attention_mask") + AUG_INPUT_NAMES


def model_inputs(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The entries of a collated batch that the models' `forward` and `encode` take."""
    return {name: batch[name] for name in MODEL_INPUT_NAMES if name in batch}


def read_perceiver_json(path: str | os.PathLike) -> dict[str, Any]:
    """The values of a perceiver config file as written (the one reader of these files)."""
    try:
        values = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise ConfigError(f"cannot read perceiver config {path}: {err}") from err
    if not isinstance(values, dict):
        raise ConfigError(f"perceiver config {path}: expected a JSON object of fusion settings, got "
                         f"{type(values).__name__}")
    return values


@dataclass
class PerceiverXattnConfig:
    """The fusion settings: the fields of `training/perceiver_configs/*.json`, plus our two ablation switches."""

    dim: int = 768  # must equal the backbone's d_model
    depth: int = 1  # resampler layers
    dim_head: int = 64
    heads: int = 8
    num_latents: int = 64  # latents per document slot
    num_aug_sources: int = 5  # document slots M
    ff_mult: int = 2  # resampler feed-forward width multiplier
    xattn_ff_mult: int = 4  # cross-attention block feed-forward width multiplier
    freeze_lm: bool = False  # train only the fusion modules
    cross_attn_every: int = 1  # with num_xattn_layers > 1: a gated block before every n-th extra T5 block
    only_attend_immediate_media: bool = False  # kept for the original files; must stay False
    num_xattn_layers: int = 1  # > 1: that many fresh T5 blocks interleaved with gated blocks (see fusion_stack)
    gate: str = "tanh"  # "none": the "no tanh gate" ablation
    separate_aug_encoder: bool = False  # encode documents with a frozen copy of the encoder (`frozen_encoder.*`)

    @classmethod
    def from_dict(cls, values: dict[str, Any], *, source: str = "perceiver config") -> PerceiverXattnConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(f"{source}: unknown field(s) {unknown}; valid fields are {sorted(known)}")
        config = cls(**values)
        config.check(source=source)
        return config

    @classmethod
    def from_json(cls, path: str | os.PathLike) -> PerceiverXattnConfig:
        return cls.from_dict(read_perceiver_json(path), source=str(path))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def check(self, *, d_model: int | None = None, source: str = "perceiver config") -> None:
        positive = ("dim", "depth", "dim_head", "heads", "num_latents", "num_aug_sources", "ff_mult",
                    "xattn_ff_mult", "num_xattn_layers", "cross_attn_every")
        for name in positive:
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"{source}: {name} must be a positive integer, got {value!r}")
        if self.gate not in GATES:
            raise ConfigError(f"{source}: gate must be one of {GATES}, got {self.gate!r}")
        if self.only_attend_immediate_media:
            raise ConfigError(
                f"{source}: only_attend_immediate_media must be false (the value of every published config; Zemi's "
                "encoder output has no media positions to restrict attention to)"
            )
        if d_model is not None and self.dim != d_model:
            raise ConfigError(
                f"{source}: perceiver dim {self.dim} does not match the T5 backbone's d_model {d_model}; "
                f"use training/perceiver_configs/xattn_multi_aug_config_v1_v3_5aug.json for t5-base (768) or "
                f"..._t5_large.json for t5-large (1024), or set \"dim\": {d_model}"
            )


class Encoded(NamedTuple):
    """What the decoder cross-attends to: states (B, S, D) and their mask (B, S)."""

    hidden_states: torch.Tensor
    attention_mask: torch.Tensor


class T5WithOwnLMHead(T5ForConditionalGeneration):
    """Plain T5, the No Aug and Concat model, and the base of FiD and Zemi.

    transformers 5 always ties the LM head to the input embedding when it builds a T5; t5-lm-adapt (T5 v1.1)
    has its own LM head, recorded in the config as `scale_decoder_outputs=False`. Tying it would silently merge two
    different matrices when a published `step_N` checkpoint is loaded, so here the head is tied only when the
    config says the checkpoint is an original (tied) T5.
    """

    def get_expanded_tied_weights_keys(self, all_submodels: bool = False) -> dict:
        keys = super().get_expanded_tied_weights_keys(all_submodels=all_submodels)
        if not getattr(self.config, "scale_decoder_outputs", True):
            keys.pop("lm_head.weight", None)
        return keys

    def encode(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, **unused: Any) -> Encoded:
        """Encoder states of the prompted input (augmentation inputs, if any, are ignored)."""
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state  # (B, L, D)
        return Encoded(hidden, attention_mask)


class _DocumentFusedT5(T5WithOwnLMHead):
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


class T5ForConditionalGenerationFiD(_DocumentFusedT5):
    """Fusion-in-Decoder: each `input + "\\n" + document_i` is encoded alone; the decoder reads all of them joined.

    The bare input is not encoded on its own (it is inside every augmentation text); `aug_exist_idx` is accepted
    and ignored, padded slots being hidden from the decoder by `aug_attention_mask`.
    """

    config_class = ZemiFiDConfig  # model_type "zemi_fid": AutoModelForSeq2SeqLM loads a saved FiD as FiD

    def __init__(self, config: T5Config, *, perceiver_xattn_config: Any = None):
        # perceiver_xattn_config: accepted and ignored, as the authors' FiD constructor does (FiD has no fusion modules)
        if not isinstance(config, ZemiFiDConfig):  # a backbone's T5Config
            config = convert_config(config, ZemiFiDConfig)
        super().__init__(config)

    def encode(self, input_ids, attention_mask, aug_input_ids, aug_attention_mask, aug_exist_idx=None) -> Encoded:
        b, m, la = aug_input_ids.shape
        # Padding slots (no token at all) are hidden from the decoder by their mask: no need to encode them.
        states = encode_slots(self.encoder, aug_input_ids, aug_attention_mask, aug_attention_mask.any(-1))
        return Encoded(states.reshape(b, m * la, -1), aug_attention_mask.reshape(b, m * la))


class T5ForConditionalGenerationMultiAug(_DocumentFusedT5):
    """Zemi: T5 whose encoder output reads the retrieved documents through a Perceiver resampler and gated
    cross-attention before the decoder sees it.

    The shared encoder encodes the input (B, L) and every document slot (B*M, La); the resampler turns each slot
    into `num_latents` vectors; the gated block(s) let every input position attend to the latents of the present
    slots (`aug_exist_idx` 1). With the gates at 0 (fresh model) the output is exactly the backbone T5's.
    """

    config_class = ZemiConfig  # model_type "zemi": AutoModelForSeq2SeqLM loads a saved Zemi as Zemi

    def __init__(self, config: T5Config, perceiver_xattn_config: PerceiverXattnConfig | dict | None = None):
        fusion = _perceiver_config_for(config, perceiver_xattn_config)
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
        # The FrozenAugEncoder ablation's document encoder, laid out as the authors' (a T5EncoderModel):
        # `frozen_encoder.shared.*`, `frozen_encoder.encoder.*`.
        self.frozen_encoder = T5EncoderModel(copy.deepcopy(config)) if fusion.separate_aug_encoder else None
        self.apply_freezing()

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

    def copy_encoder_to_frozen_encoder(self) -> None:
        """Start the separate document encoder as a frozen copy of the (pretrained) shared encoder, as the original
        loads it from the backbone checkpoint."""
        if self.frozen_encoder is not None:
            self.frozen_encoder.encoder.load_state_dict(self.encoder.state_dict())  # its embedding is `shared`
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


def reset_t5_block(block: T5Block, config: T5Config) -> None:
    """T5's initialisation (the formulas of T5PreTrainedModel._init_weights) of a fresh block, which the authors'
    post_init gives the extra blocks of a deeper fusion stack. Plain tensor methods: transformers' loading guards
    the init functions of weights its generic init has already marked as initialised."""
    factor, d_model, d_ff = config.initializer_factor, config.d_model, config.d_ff
    with torch.no_grad():
        for module in block.modules():
            if isinstance(module, T5Attention):
                inner = module.n_heads * module.key_value_proj_dim
                module.q.weight.normal_(0.0, factor * (d_model * module.key_value_proj_dim) ** -0.5)
                module.k.weight.normal_(0.0, factor * d_model**-0.5)
                module.v.weight.normal_(0.0, factor * d_model**-0.5)
                module.o.weight.normal_(0.0, factor * inner**-0.5)
            elif isinstance(module, T5DenseGatedActDense):
                module.wi_0.weight.normal_(0.0, factor * d_model**-0.5)
                module.wi_1.weight.normal_(0.0, factor * d_model**-0.5)
                module.wo.weight.normal_(0.0, factor * d_ff**-0.5)
            elif isinstance(module, T5DenseActDense):
                module.wi.weight.normal_(0.0, factor * d_model**-0.5)
                module.wo.weight.normal_(0.0, factor * d_ff**-0.5)
            elif isinstance(module, T5LayerNorm):
                module.weight.fill_(factor)


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


def _perceiver_config_for(config: T5Config, given: PerceiverXattnConfig | dict | None) -> PerceiverXattnConfig:
    if given is None:
        given = getattr(config, "perceiver_xattn_config", None)
        if given is None:
            raise ConfigError(
                "T5ForConditionalGenerationMultiAug needs perceiver_xattn_config (a dict or PerceiverXattnConfig, "
                "e.g. from training/perceiver_configs/*.json)"
            )
    fusion = given if isinstance(given, PerceiverXattnConfig) else PerceiverXattnConfig.from_dict(dict(given))
    fusion.check(d_model=config.d_model)
    return fusion


# ---------------------------------------------------------------------------------------------------------------
# Registry: the original --model_architecture names, plus "T5" for the No Aug and Concat baselines.


@dataclass(frozen=True)
class Architecture:
    model_class: type[T5WithOwnLMHead]
    fusion_overrides: dict[str, Any] = dataclasses.field(default_factory=dict)

    @property
    def uses_documents(self) -> bool:
        return issubclass(self.model_class, _DocumentFusedT5)

    @property
    def needs_perceiver_config(self) -> bool:
        return issubclass(self.model_class, T5ForConditionalGenerationMultiAug)


ARCHITECTURES: dict[str, Architecture] = {
    "SharedEncoderDecoder_MultiAug": Architecture(T5ForConditionalGenerationMultiAug),
    "SharedEncoderDecoder_MultiAug_NoTanhGate": Architecture(T5ForConditionalGenerationMultiAug, {"gate": "none"}),
    "SharedEncoderDecoder_MultiAug_FrozenAugEncoder": Architecture(
        T5ForConditionalGenerationMultiAug, {"separate_aug_encoder": True}
    ),
    "FiD": Architecture(T5ForConditionalGenerationFiD),
    "T5": Architecture(T5WithOwnLMHead),
}


def get_architecture(name: str) -> Architecture:
    try:
        return ARCHITECTURES[name]
    except KeyError:
        raise ConfigError(f"unknown model architecture {name!r}; valid names: {sorted(ARCHITECTURES)}") from None


def resolve_perceiver_config(
    architecture: str, perceiver_config: PerceiverXattnConfig | dict | str | os.PathLike | None
) -> PerceiverXattnConfig | None:
    """The fusion settings for `architecture`: the given config (object, dict or JSON path) plus the
    architecture's ablation switches; None for architectures without fusion modules."""
    arch = get_architecture(architecture)
    if not arch.needs_perceiver_config:
        return None
    if perceiver_config is None:
        raise ConfigError(f"architecture {architecture} needs a perceiver config (--perceiver_config PATH)")
    if isinstance(perceiver_config, (str, os.PathLike)):
        perceiver_config = PerceiverXattnConfig.from_json(perceiver_config)
    elif isinstance(perceiver_config, dict):
        perceiver_config = PerceiverXattnConfig.from_dict(perceiver_config)
    return dataclasses.replace(perceiver_config, **arch.fusion_overrides)


def model_from_config(
    architecture: str, t5_config: T5Config, perceiver_config: PerceiverXattnConfig | dict | str | None = None
) -> T5WithOwnLMHead:
    """A randomly initialised model (tests, benchmarks; build under `torch.device("meta")` to only count)."""
    fusion = resolve_perceiver_config(architecture, perceiver_config)
    model_class = get_architecture(architecture).model_class
    config = model_config_for(architecture, t5_config, fusion or perceiver_config)
    return model_class(config, fusion) if fusion is not None else model_class(config)


def model_config_for(architecture: str, config: T5Config,
                     perceiver_config: PerceiverXattnConfig | dict | str | os.PathLike | None = None) -> T5Config:
    """The config a model of `architecture` carries (a copy): for Zemi and FiD the T5 settings as their own config
    class (model_type "zemi" / "zemi_fid", which AutoConfig reads), with `model_architecture` and the fusion
    settings (FiD keeps them for its number of document slots); for plain T5 a T5Config."""
    config_class = get_architecture(architecture).model_class.config_class
    if config_class is T5Config:
        return copy.deepcopy(config)
    settings: dict[str, Any] = {"model_architecture": architecture}
    if isinstance(perceiver_config, (str, os.PathLike)):
        settings["perceiver_xattn_config"] = PerceiverXattnConfig.from_json(perceiver_config).to_dict()
    elif perceiver_config is not None:
        fusion = perceiver_config if isinstance(perceiver_config, PerceiverXattnConfig) else \
            PerceiverXattnConfig.from_dict(dict(perceiver_config))
        settings["perceiver_xattn_config"] = fusion.to_dict()
    return convert_config(config, config_class, **settings)


def build_model(
    architecture: str,
    model_name_or_path: str | os.PathLike,
    perceiver_config: PerceiverXattnConfig | dict | str | None = None,
    **from_pretrained_kwargs: Any,
) -> T5WithOwnLMHead:
    """Load every backbone weight of a T5 checkpoint (hub name or directory) into `architecture`; only the new
    fusion modules start fresh. Also loads our own saved Zemi/FiD directories (their config carries the fusion
    settings), in both formats: model_type "zemi" / "zemi_fid", or "t5" with a `perceiver_xattn_config` key as
    written before those classes existed."""
    arch = get_architecture(architecture)
    config = load_model_config(model_name_or_path)
    saved_fusion = getattr(config, "perceiver_xattn_config", None)  # set in our own saved Zemi (and FiD) directories
    fusion = resolve_perceiver_config(architecture, perceiver_config or saved_fusion)
    if fusion is not None:
        # Fail before loading (or downloading) any weights.
        fusion.check(d_model=config.d_model, source=f"perceiver config for {model_name_or_path}")
    config = model_config_for(architecture, config, fusion or perceiver_config or saved_fusion)
    model = arch.model_class.from_pretrained(model_name_or_path, config=config, **from_pretrained_kwargs)
    if isinstance(model, T5ForConditionalGenerationMultiAug):
        if saved_fusion is None:
            model.copy_encoder_to_frozen_encoder()  # a plain T5 backbone: the document encoder starts as its copy
        model.apply_freezing()  # loading replaces parameters, and with them their requires_grad flags
    return model
