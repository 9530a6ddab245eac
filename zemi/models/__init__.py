"""The model layer: the T5 variants (`modeling_t5`), the fusion modules (`modeling_xattn`), and reading weight
files (`checkpoint_files`). Imports nothing from the data, run or tool layers."""
