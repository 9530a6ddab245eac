"""The T5 models of the paper under the original module name; they live in `zemi.models` (the models in
`modeling_t5`, the fusion settings in `configuration_zemi`, the registry and builders in `registry`, the
checkpoint checks in `checkpoint_files`). Importing it registers Zemi and FiD with transformers' Auto classes."""

from zemi.models.checkpoint_files import (  # noqa: F401
    CheckpointMismatchError,
    check_state_dict_fits,
    load_original_checkpoint,
)
from zemi.models.configuration_zemi import PerceiverXattnConfig, ZemiConfig, ZemiFiDConfig  # noqa: F401
from zemi.models.modeling_t5 import *  # noqa: F401,F403
from zemi.models.modeling_t5 import __all__ as _models_all
from zemi.models.registry import *  # noqa: F401,F403
from zemi.models.registry import __all__ as _registry_all

__all__ = [*_models_all, *_registry_all, "CheckpointMismatchError", "PerceiverXattnConfig", "ZemiConfig",
           "ZemiFiDConfig", "check_state_dict_fits", "load_original_checkpoint"]
