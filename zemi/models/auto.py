"""Zemi and FiD in transformers' Auto API: `AutoConfig` and `AutoModelForSeq2SeqLM` load a directory saved by this
package as its own class (model_type "zemi" / "zemi_fid"). `import zemi.models` registers them, with transformers'
public `register()`; any T5 directory stays transformers' own T5.
"""

from __future__ import annotations

from transformers import AutoConfig, AutoModelForSeq2SeqLM

from zemi.models.configuration_zemi import ZemiConfig, ZemiFiDConfig
from zemi.models.modeling_t5 import T5ForConditionalGenerationFiD, T5ForConditionalGenerationMultiAug

MODELS = {ZemiConfig: T5ForConditionalGenerationMultiAug, ZemiFiDConfig: T5ForConditionalGenerationFiD}


def register() -> None:
    """Register the configs under their model types and the models for them (again: a no-op)."""
    for config_class, model_class in MODELS.items():
        AutoConfig.register(config_class.model_type, config_class, exist_ok=True)
        AutoModelForSeq2SeqLM.register(config_class, model_class, exist_ok=True)
