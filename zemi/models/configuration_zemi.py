"""The Hugging Face configs of Zemi and FiD: a `T5Config` plus the fusion settings, each under its own `model_type`
("zemi", "zemi_fid") so that `AutoConfig` and `AutoModelForSeq2SeqLM` load a saved directory as its own class.
"""

from __future__ import annotations

import os
from typing import Any

from transformers import T5Config

from zemi.errors import ConfigError


class ZemiConfig(T5Config):
    """The backbone's T5 settings, plus `perceiver_xattn_config` (the fusion settings: the fields of
    `training/perceiver_configs/*.json` with the architecture's ablation switches applied) and `model_architecture`
    (the original --model_architecture name, e.g. "SharedEncoderDecoder_MultiAug_NoTanhGate")."""

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
    """The config.json of a model directory or hub name as the class its `model_type` names. Directories saved
    before these classes existed say "t5" (with a `perceiver_xattn_config` key for Zemi) and load as `T5Config`."""
    values, _ = T5Config.get_config_dict(source)
    model_type = values.get("model_type", "t5")
    if model_type not in CONFIG_CLASSES:
        raise ConfigError(f"{source}: config.json has model_type {model_type!r}; expected one of "
                          f"{sorted(CONFIG_CLASSES)} (a T5, Zemi or FiD model)")
    return CONFIG_CLASSES[model_type].from_dict(values)


def convert_config(config: T5Config, config_class: type[T5Config], **settings: Any) -> T5Config:
    """`config` as an instance of `config_class` (e.g. a backbone's `T5Config` as a `ZemiConfig`), with `settings`."""
    values = {name: value for name, value in config.to_dict().items() if name != "model_type"}  # the class's own
    return config_class.from_dict({**values, **settings})
