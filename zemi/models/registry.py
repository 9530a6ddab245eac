"""The original --model_architecture names (plus "T5" for No Aug and Concat), and the builders: a model from a
config, or from a checkpoint directory. Fusion settings arrive here resolved (`fusion_from_json` at the edge).
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import logging
import os
from collections import Counter
from dataclasses import dataclass
from typing import Any, Mapping

from transformers import T5Config

from zemi.errors import ConfigError
from zemi.models.configuration_zemi import (
    PerceiverXattnConfig,
    convert_config,
    load_model_config,
    saved_fusion_values,
)
from zemi.models.modeling_t5 import (
    T5ForConditionalGenerationFiD,
    T5ForConditionalGenerationMultiAug,
    T5WithOwnLMHead,
    DocumentFusedT5,
)

logger = logging.getLogger(__name__)

__all__ = ["ARCHITECTURES", "Architecture", "build_model", "fusion_for", "fusion_from_json", "fusion_from_values",
           "get_architecture", "model_config_for", "model_from_config"]


@dataclass(frozen=True)
class Architecture:
    model_class: type[T5WithOwnLMHead]
    fusion_overrides: Mapping[str, Any] = dataclasses.field(default_factory=dict)  # the ablation's switches

    @property
    def uses_documents(self) -> bool:
        return issubclass(self.model_class, DocumentFusedT5)

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


# --- fusion settings: read once at the edge, then passed inward as one PerceiverXattnConfig (or None) -------------


def fusion_from_json(architecture: str, path: str | os.PathLike) -> PerceiverXattnConfig | None:
    """A perceiver config file's settings for `architecture` (its switches applied); None for plain T5."""
    arch = get_architecture(architecture)
    return PerceiverXattnConfig.from_json(path, **arch.fusion_overrides) if arch.uses_documents else None


def fusion_from_values(architecture: str, values: Mapping[str, Any], *, source: str) -> PerceiverXattnConfig | None:
    """As `fusion_from_json`, for settings already read (a saved model's config.json)."""
    arch = get_architecture(architecture)
    return PerceiverXattnConfig.from_dict(values, source=source, **arch.fusion_overrides) if arch.uses_documents \
        else None


def fusion_for(architecture: str, fusion: PerceiverXattnConfig | None) -> PerceiverXattnConfig | None:
    """The settings a model of `architecture` is built with: `fusion` with the architecture's switches (unchanged
    when they are set already), None for plain T5; Zemi cannot do without."""
    arch = get_architecture(architecture)
    if not arch.uses_documents:
        return None
    if fusion is None:
        if arch.needs_perceiver_config:
            raise ConfigError(f"architecture {architecture} needs a perceiver config (--perceiver_config PATH)")
        return None
    changed = {name: value for name, value in arch.fusion_overrides.items() if getattr(fusion, name) != value}
    return dataclasses.replace(fusion, **changed) if changed else fusion


# --- builders --------------------------------------------------------------------------------------------------


def model_config_for(architecture: str, config: T5Config, fusion: PerceiverXattnConfig | None = None) -> T5Config:
    """The config a model of `architecture` carries (a copy): for Zemi and FiD the T5 settings as their own config
    class (model_type "zemi" / "zemi_fid", which AutoConfig reads), with `model_architecture` and the fusion
    settings (FiD keeps them for its number of document slots); for plain T5 a T5Config."""
    config_class = get_architecture(architecture).model_class.config_class
    if config_class is T5Config:
        return copy.deepcopy(config)
    return convert_config(config, config_class, model_architecture=architecture,
                          perceiver_xattn_config=fusion.to_dict() if fusion is not None else None)


def model_from_config(architecture: str, t5_config: T5Config, perceiver_config: PerceiverXattnConfig | None = None
                      ) -> T5WithOwnLMHead:
    """A randomly initialised model (tests, benchmarks; build under `torch.device("meta")` to only count)."""
    fusion = fusion_for(architecture, perceiver_config)
    model_class = get_architecture(architecture).model_class
    config = model_config_for(architecture, t5_config, fusion)
    return model_class(config, fusion) if get_architecture(architecture).needs_perceiver_config else model_class(config)


def build_model(
    architecture: str,
    model_name_or_path: str | os.PathLike,
    perceiver_config: PerceiverXattnConfig | None = None,
    **from_pretrained_kwargs: Any,
) -> T5WithOwnLMHead:
    """Load every backbone weight of a T5 checkpoint (hub name or directory) into `architecture`; only the new
    fusion modules start fresh. Also loads our own saved Zemi and FiD directories, whose config.json carries the
    fusion settings (`perceiver_config`, when given, takes their place)."""
    arch = get_architecture(architecture)
    config = load_model_config(model_name_or_path)
    saved = saved_fusion_values(config)  # set in our own saved Zemi (and FiD) directories
    if perceiver_config is None and saved is not None:
        perceiver_config = fusion_from_values(architecture, saved, source=f"{model_name_or_path}/config.json")
    fusion = fusion_for(architecture, perceiver_config)
    config = model_config_for(architecture, config, fusion)
    fusion_args = (fusion,) if arch.needs_perceiver_config else ()
    with _loading_messages_held() as held:
        model, info = arch.model_class.from_pretrained(model_name_or_path, *fusion_args, config=config,
                                                       output_loading_info=True, **from_pretrained_kwargs)
    if isinstance(model, T5ForConditionalGenerationMultiAug) and saved is None:
        model.copy_encoder_to_frozen_encoder()  # a plain T5 backbone: the document encoder starts as its copy
        _summarise_new_modules(model, model_name_or_path, info, held)
    held.release()
    return model


class _HeldMessages(logging.Filter):
    """transformers' loading messages, kept back until the load has ended (all of them go out if it fails)."""

    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def filter(self, record: logging.LogRecord) -> bool:
        self.records.append(record)
        return False

    def release(self) -> None:
        for record in self.records:
            logging.getLogger(record.name).handle(record)
        self.records = []


@contextlib.contextmanager
def _loading_messages_held():
    source = logging.getLogger("transformers.modeling_utils")
    held = _HeldMessages()
    source.addFilter(held)
    try:
        yield held
    except BaseException:
        source.removeFilter(held)
        held.release()  # transformers' report is what explains its error
        raise
    source.removeFilter(held)


def _summarise_new_modules(model: T5ForConditionalGenerationMultiAug, source: str | os.PathLike,
                           info: Mapping[str, Any], held: _HeldMessages) -> None:
    """Zemi built from a T5 checkpoint: the modules T5 does not have are missing from it by design. One line says
    so, in place of transformers' table of their tensors; anything else missing, unexpected or of another shape
    keeps transformers' report."""
    new = Counter(key.split(".")[0] for key in info["missing_keys"])
    if not new or not set(new) <= set(model.modules_not_in_t5) or info["unexpected_keys"] or info["mismatched_keys"]:
        return
    held.records = [record for record in held.records if "LOAD REPORT" not in record.getMessage()]
    fresh = ", ".join(f"{name} ({count} tensors)" for name, count in sorted(new.items()) if name != "frozen_encoder")
    copied = "; frozen_encoder copied from the encoder" if "frozen_encoder" in new else ""
    logger.info("%s: every T5 weight loaded; new, as at the start of the authors' training: %s%s", source, fresh,
                copied)
