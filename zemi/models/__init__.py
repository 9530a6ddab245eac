"""The model layer: the T5 variants (`modeling_t5`), their settings and Hugging Face configs (`configuration_zemi`),
the architecture registry and builders (`registry`), the fusion modules (`modeling_xattn`), and reading weight files
(`checkpoint_files`). Imports nothing from the data, run or tool layers. Importing it registers Zemi and FiD with
transformers' Auto classes (`auto`)."""

from zemi.models import auto

auto.register()
