"""Zero-shot rank-classification evaluation of any run directory (ours or the authors' download, every method: it
is read from the run's args.json), or of a plain T5 by hub name or directory. The authors' two entry names,
`zemi.eval_original_task_only` and `zemi.eval_original_task_only_xattn`, are aliases of this one.

    python -m zemi.evaluate --processed_dataset_paths DATA/30aug/super_glue_cb/* \\
        --model_name_or_path output/p3_finetuning/zemi_base --saved_model_step -1 --output_dir output/eval/zemi_base
"""

from zemi.run.cli import run_entry
from zemi.run.evaluation import main

__all__ = ["main"]

if __name__ == "__main__":
    run_entry(main)
