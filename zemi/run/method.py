"""What distinguishes the four methods at the data level: which architecture, and which texts it reads."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from zemi.config import TrainConfig
from zemi.data.processing import TextRules
from zemi.modeling_t5 import PerceiverXattnConfig, get_architecture, resolve_perceiver_config

logger = logging.getLogger(__name__)

BASELINE_ARCHITECTURES = ("T5",)


@dataclass(frozen=True)
class Method:
    architecture: str
    rules: TextRules
    perceiver_config: PerceiverXattnConfig | None = None  # with the architecture's switches applied
    perceiver_config_values: dict[str, Any] | None = None  # the JSON as given, written to the run directory


def text_rules(architecture: str, perceiver: PerceiverXattnConfig | None, *, concat_aug_num: int = 0,
               fit_aug_num: int = -1, concat_input_at_augmentation: bool = False) -> TextRules:
    if not get_architecture(architecture).uses_documents:
        return TextRules(concat_aug_num=concat_aug_num)
    if perceiver is None:
        raise ValueError(f"{architecture} needs a perceiver config for its number of document slots (num_aug_sources)")
    if concat_aug_num:
        raise ValueError("--concat_aug_num is the Concat baseline's option; FiD and Zemi read documents in slots")
    return TextRules(num_documents=perceiver.num_aug_sources, fit_aug_num=fit_aug_num,
                     concat_input_at_augmentation=concat_input_at_augmentation)


def method_for(config: TrainConfig, *, family: str) -> Method:
    architecture = config.model_architecture
    arch = get_architecture(architecture)
    if family == "baseline" and arch.uses_documents:
        raise ValueError(f"--model_architecture {architecture} is trained by zemi.multi_task_fine_tune_xattn")
    if family == "xattn" and not arch.uses_documents:
        raise ValueError("zemi.multi_task_fine_tune_xattn trains FiD or Zemi: pass --model_architecture "
                         "SharedEncoderDecoder_MultiAug[_NoTanhGate|_FrozenAugEncoder] or FiD")
    values = perceiver = None
    if arch.uses_documents:
        if config.perceiver_config is None:
            raise ValueError(f"--perceiver_config is required for {architecture} (training/perceiver_configs/*.json)")
        try:
            values = json.loads(Path(config.perceiver_config).read_text())
        except (OSError, json.JSONDecodeError) as err:
            raise ValueError(f"--perceiver_config {config.perceiver_config}: {err}") from err
        perceiver = PerceiverXattnConfig.from_dict(values, source=config.perceiver_config)
        if arch.needs_perceiver_config:
            perceiver = resolve_perceiver_config(architecture, perceiver)
        if architecture == "FiD" and not config.concat_input_at_augmentation:
            logger.warning("FiD without --concat_input_at_augmentation: documents will not see the input")
    rules = text_rules(architecture, perceiver, concat_aug_num=config.concat_aug_num, fit_aug_num=config.fit_aug_num,
                       concat_input_at_augmentation=config.concat_input_at_augmentation)
    return Method(architecture, rules, perceiver, values)
