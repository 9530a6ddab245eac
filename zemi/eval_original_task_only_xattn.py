"""Zero-shot rank-classification evaluation of FiD and Zemi checkpoints (the authors' entry point name and flags;
an alias of `zemi.evaluate`, which takes any run directory, ours or the authors' downloaded one: the method is read from its args.json).

    python -m zemi.eval_original_task_only_xattn --processed_dataset_paths DATA/30aug/super_glue_cb/* \
        --model_name_or_path output/p3_finetuning/zemi_base --saved_model_step -1 --output_dir output/eval/zemi_base/super_glue_cb
"""

from zemi.evaluate import main
from zemi.run.cli import run_entry

__all__ = ["main"]

if __name__ == "__main__":
    run_entry(main)
