"""Zero-shot rank-classification evaluation of No Aug and Concat checkpoints (the authors' entry point name and
flags; `zemi-eval` is the same command, for any run directory: the method is read from its args.json).

    python -m zemi.eval_original_task_only --processed_dataset_paths DATA/30aug/super_glue_cb/* \\
        --model_name_or_path output/p3_finetuning/concat_base --step_num -1 --output_dir output/eval/concat_base/super_glue_cb
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from zemi.cli import run_entry
from zemi.run.evaluation import main as evaluate_main


def main(argv: Sequence[str] | None = None) -> Path:
    return evaluate_main(argv, description=__doc__)


if __name__ == "__main__":
    run_entry(main)
