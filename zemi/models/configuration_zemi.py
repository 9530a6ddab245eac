"""The settings of the models: the fusion settings (`PerceiverXattnConfig`, read from the perceiver JSON files) and
the Hugging Face configs of Zemi and FiD (a `T5Config` under its own `model_type`, which `AutoConfig` reads).
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from transformers import T5Config

from zemi.errors import ConfigError
from zemi.models.modeling_xattn import GATES

POSITIVE_FIELDS = ("dim", "depth", "dim_head", "heads", "num_latents", "num_aug_sources", "ff_mult", "xattn_ff_mult",
                   "num_xattn_layers", "cross_attn_every")
SWITCHES = ("freeze_lm", "separate_aug_encoder")
# In every published file, and false there: Zemi's encoder output has no media positions to restrict attention to.
RETIRED_FIELD = "only_attend_immediate_media"


@dataclass(frozen=True)
class PerceiverXattnConfig:
    """The fusion settings: the fields of `training/perceiver_configs/*.json`, plus the two ablation switches that
    the architecture name sets (`gate`, `separate_aug_encoder`). Values are checked when an instance is made."""

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
    num_xattn_layers: int = 1  # > 1: that many fresh T5 blocks interleaved with gated blocks (see fusion_stack)
    gate: str = "tanh"  # "none": the "no tanh gate" ablation
    separate_aug_encoder: bool = False  # encode documents with a frozen copy of the encoder (`frozen_encoder.*`)
    # Where the values come from (a file, a flag), for messages; not a setting.
    source: str = dataclasses.field(default="perceiver config", compare=False, repr=False)

    def __post_init__(self) -> None:
        for name in POSITIVE_FIELDS:
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"{self.source}: {name} must be a positive integer, got {value!r}")
        for name in SWITCHES:
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f"{self.source}: {name} must be true or false, got {getattr(self, name)!r}")
        if self.gate not in GATES:
            raise ConfigError(f"{self.source}: gate must be one of {GATES}, got {self.gate!r}")

    @classmethod
    def from_dict(cls, values: Mapping[str, Any], *, source: str, **overrides: Any) -> PerceiverXattnConfig:
        """The settings of a perceiver JSON object (a file, or the `perceiver_xattn_config` of a saved model's
        config.json), with `overrides` (an architecture's switches) applied."""
        values = dict(values)
        if values.pop(RETIRED_FIELD, False) is not False:
            raise ConfigError(f"{source}: {RETIRED_FIELD} must be false (the value of every published config; "
                              "Zemi's encoder output has no media positions to restrict attention to)")
        known = {field.name for field in dataclasses.fields(cls)} - {"source"}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(f"{source}: unknown field(s) {unknown}; valid fields are {sorted(known)}")
        return cls(**{**values, **overrides}, source=source)

    @classmethod
    def from_json(cls, path: str | os.PathLike, **overrides: Any) -> PerceiverXattnConfig:
        """The settings of a perceiver config file (the one reader of these files)."""
        try:
            values = json.loads(Path(path).read_text())
        except (OSError, json.JSONDecodeError) as err:
            raise ConfigError(f"cannot read perceiver config {path}: {err}") from err
        if not isinstance(values, dict):
            raise ConfigError(f"perceiver config {path}: expected a JSON object of fusion settings, got "
                              f"{type(values).__name__}")
        return cls.from_dict(values, source=str(path), **overrides)

    def to_dict(self) -> dict[str, Any]:
        """The settings as written to a run's perceiver_config.json and a saved model's config.json."""
        return {field.name: getattr(self, field.name) for field in dataclasses.fields(self) if field.name != "source"}

    def check_fits(self, d_model: int) -> None:
        """The fusion modules work on the backbone's hidden states: `dim` must be its d_model."""
        if self.dim != d_model:
            raise ConfigError(
                f"{self.source}: perceiver dim {self.dim} does not match the T5 backbone's d_model {d_model}; "
                f"use training/perceiver_configs/xattn_multi_aug_config_v1_v3_5aug.json for t5-base (768) or "
                f"..._t5_large.json for t5-large (1024), or set \"dim\": {d_model}"
            )


class ZemiConfig(T5Config):
    """The backbone's T5 settings, plus `perceiver_xattn_config` (the fusion settings as a JSON object, switches
    applied: `PerceiverXattnConfig.to_dict()`) and `model_architecture` (the original --model_architecture name,
    e.g. "SharedEncoderDecoder_MultiAug_NoTanhGate")."""

    model_type = "zemi"

    model_architecture: str = "SharedEncoderDecoder_MultiAug"
    perceiver_xattn_config: dict | None = None


class ZemiFiDConfig(T5Config):
    """The backbone's T5 settings for Fusion-in-Decoder. FiD has no fusion modules; `perceiver_xattn_config` keeps
    the run's settings for `num_aug_sources`, its number of document slots."""

    model_type = "zemi_fid"

    model_architecture: str = "FiD"
    perceiver_xattn_config: dict | None = None


CONFIG_CLASSES: dict[str, type[T5Config]] = {"t5": T5Config, "zemi": ZemiConfig, "zemi_fid": ZemiFiDConfig}


def load_model_config(source: str | os.PathLike) -> T5Config:
    """The config.json of a model directory or hub name, as the class its `model_type` names."""
    values, _ = T5Config.get_config_dict(source)
    model_type = values.get("model_type", "t5")
    if model_type not in CONFIG_CLASSES:
        raise ConfigError(f"{source}: config.json has model_type {model_type!r}; expected one of "
                          f"{sorted(CONFIG_CLASSES)} (a T5, Zemi or FiD model)")
    return CONFIG_CLASSES[model_type].from_dict(values)


def saved_fusion_values(config: T5Config) -> dict | None:
    """The fusion settings a saved Zemi or FiD directory's config carries; None for a T5 backbone."""
    return config.perceiver_xattn_config if isinstance(config, (ZemiConfig, ZemiFiDConfig)) else None


def convert_config(config: T5Config, config_class: type[T5Config], **settings: Any) -> T5Config:
    """`config` as an instance of `config_class` (e.g. a backbone's `T5Config` as a `ZemiConfig`), with `settings`."""
    values = {name: value for name, value in config.to_dict().items() if name != "model_type"}  # the class's own
    return config_class.from_dict({**values, **settings})
