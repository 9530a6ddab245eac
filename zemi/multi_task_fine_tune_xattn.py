"""Train FiD or Zemi on the P3 multitask mixture (the authors' entry point name and flags; `zemi-train` is the same
command for every method).

    accelerate launch -m zemi.multi_task_fine_tune_xattn --model_architecture SharedEncoderDecoder_MultiAug \\
        --lm_name google/t5-base-lm-adapt --perceiver_config training/perceiver_configs/xattn_multi_aug_config_v1_v3_5aug.json \\
        --dataset_root_path DATA/p3_c4_document_level_chosen_examples/30aug --dataset_dir_names cos_e_v1.11 ... \\
        --output_dir output/p3_finetuning/zemi_base
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from zemi.cli import run_entry
from zemi.run.training import main as train_main


def main(argv: Sequence[str] | None = None) -> Path:
    return train_main(argv, family="xattn", description=__doc__)


if __name__ == "__main__":
    run_entry(main)
