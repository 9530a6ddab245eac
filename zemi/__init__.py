"""Zemi: a T5 whose encoder output is fused with retrieved documents (Perceiver resampler + gated cross-attention).

Entry modules keep the original repository's names (`modeling_t5`, `multi_task_fine_tune_xattn`, ...). Importing
`zemi` makes `AutoConfig` / `AutoModelForSeq2SeqLM` load Zemi and FiD directories, registering the classes the
moment transformers' Auto API is first imported (`zemi.auto_registration`; `import zemi` itself stays light).
"""

from zemi import auto_registration

__version__ = "0.1.0"

auto_registration.install()
