"""The T5 models of the paper under the original module name; they live in `zemi.models.modeling_t5` (and the
checkpoint checks in `zemi.models.checkpoint_files`)."""

from zemi.models.checkpoint_files import (  # noqa: F401
    CheckpointMismatchError,
    check_state_dict_fits,
    load_original_checkpoint,
)
from zemi.models.modeling_t5 import *  # noqa: F401,F403
from zemi.models.modeling_t5 import __all__ as _models_all

__all__ = [*_models_all, "CheckpointMismatchError", "check_state_dict_fits", "load_original_checkpoint"]
