"""Convert a run's checkpoint (the authors' download or ours) into a Hugging Face model directory with a model card
(`zemi.tools.convert`): python -m zemi.convert_original_checkpoint RUN_DIR [--step N] --output DIR"""

from zemi.run.cli import run_entry
from zemi.tools.convert import main

__all__ = ["main"]

if __name__ == "__main__":
    run_entry(main)
