"""The model layer: the T5 variants (`modeling_t5`), their Hugging Face configs (`configuration_zemi`), the fusion
modules (`modeling_xattn`), and reading weight files (`checkpoint_files`). Imports nothing from the data, run or
tool layers. Importing it registers Zemi and FiD with transformers' Auto classes (`auto`)."""

import zemi.models.auto  # noqa: F401
