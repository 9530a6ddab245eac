"""Train the No Aug (`--concat_aug_num 0`) or Concat (`--concat_aug_num 5`) baseline on the P3 multitask mixture
(the authors' entry point name and flags; `zemi-train` is the same command for every method).

    accelerate launch -m zemi.multi_task_fine_tune_baseline --model_name_or_path google/t5-base-lm-adapt \\
        --dataset_root_path DATA/p3_c4_document_level_chosen_examples/30aug --dataset_dir_names cos_e_v1.11 ... \\
        --concat_aug_num 5 --output_dir output/p3_finetuning/concat_base
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from zemi.cli import run_entry
from zemi.run.training import main as train_main


def main(argv: Sequence[str] | None = None) -> Path:
    return train_main(argv, family="baseline", description=__doc__)


if __name__ == "__main__":
    run_entry(main)
