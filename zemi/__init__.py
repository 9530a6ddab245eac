"""Zemi: a T5 whose encoder output is fused with retrieved documents (Perceiver resampler + gated cross-attention).

Entry modules keep the original repository's names (`modeling_t5`, `multi_task_fine_tune_xattn`, ...). `import zemi`
stays light (no torch, no transformers); `import zemi.models` registers Zemi and FiD with transformers' Auto classes.
"""

__version__ = "0.1.0"
