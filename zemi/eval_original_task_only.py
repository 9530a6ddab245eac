"""Zero-shot rank-classification evaluation of No Aug and Concat checkpoints (the authors' entry point name and flags;
an alias of `zemi.evaluate`, which takes any run directory: the method is read from its args.json).

    python -m zemi.eval_original_task_only --processed_dataset_paths DATA/30aug/super_glue_cb/* \
        --model_name_or_path output/p3_finetuning/concat_base --step_num -1 --output_dir output/eval/concat_base/super_glue_cb
"""

from zemi.evaluate import main
from zemi.run.cli import run_entry

__all__ = ["main"]

if __name__ == "__main__":
    run_entry(main)
