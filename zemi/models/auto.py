"""Zemi and FiD in transformers' Auto API: `AutoConfig` and `AutoModelForSeq2SeqLM` load a directory saved by
this package as its own class. Importing `zemi.models` registers them; `import zemi` does it as soon as a program
first imports transformers' Auto API (`zemi.auto_registration`), so that `import zemi` alone stays light.
"""

from __future__ import annotations

from transformers import AutoConfig, AutoModelForSeq2SeqLM, T5Config, T5ForConditionalGeneration

from zemi.models.configuration_zemi import ZemiConfig, ZemiFiDConfig
from zemi.models.modeling_t5 import (
    T5ForConditionalGenerationFiD,
    T5ForConditionalGenerationMultiAug,
    T5WithOwnLMHead,
    build_model,
)

MODELS = {ZemiConfig: T5ForConditionalGenerationMultiAug, ZemiFiDConfig: T5ForConditionalGenerationFiD}


# Directories saved before the config classes existed say `model_type: t5`; save_pretrained recorded the class in
# `architectures`, which is what tells our Zemi and FiD apart from a plain T5 (FiD's weights are a T5's).
PREVIOUS_FORMAT = {T5ForConditionalGenerationMultiAug.__name__: "SharedEncoderDecoder_MultiAug",
                   T5ForConditionalGenerationFiD.__name__: "FiD"}


class T5OrPreviousFormat:
    """What `AutoModelForSeq2SeqLM` builds for a `model_type: t5` config once zemi is imported: transformers' own
    T5 for every T5 directory, except those this package saved in its previous format (Zemi, with its fusion
    settings, the ablations included, and FiD), which load as their class; a No Aug run's `T5WithOwnLMHead` keeps
    its own LM head."""

    @staticmethod
    def _saved_as(config) -> str | None:
        return next(iter(getattr(config, "architectures", None) or []), None)

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, *model_args, config=None, **kwargs):
        saved_as = cls._saved_as(config)
        kwargs.pop("trust_remote_code", None)
        if saved_as in PREVIOUS_FORMAT:
            return build_model(PREVIOUS_FORMAT[saved_as], pretrained_model_name_or_path, **kwargs)
        model_class = T5WithOwnLMHead if saved_as == T5WithOwnLMHead.__name__ else T5ForConditionalGeneration
        return model_class.from_pretrained(pretrained_model_name_or_path, *model_args, config=config, **kwargs)

    @classmethod
    def _from_config(cls, config, **kwargs):
        return T5ForConditionalGeneration._from_config(config, **kwargs)


def register() -> None:
    """Register the configs under their model types and the models for them (again: a no-op)."""
    for config_class, model_class in MODELS.items():
        AutoConfig.register(config_class.model_type, config_class, exist_ok=True)
        AutoModelForSeq2SeqLM.register(config_class, model_class, exist_ok=True)
    # transformers' register() declines native configs, so the one entry for T5Config goes in directly. Without
    # that private attribute (another transformers version), previous-format directories still load through
    # build_model, zemi.evaluate and zemi.predict.
    extra = getattr(AutoModelForSeq2SeqLM._model_mapping, "_extra_content", None)
    if isinstance(extra, dict):
        extra[T5Config] = T5OrPreviousFormat


register()
