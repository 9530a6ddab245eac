"""The fusion modules (Perceiver resampler, gated cross-attention) under the original module name; they live in
`zemi.models.modeling_xattn`."""

from zemi.models.modeling_xattn import *  # noqa: F401,F403
from zemi.models.modeling_xattn import __all__  # noqa: F401 (re-exported)
