"""Table 1 from evaluation directories (`zemi.tools.report`): python -m zemi.report EVAL_DIR... --output_dir DIR"""

from zemi.run.cli import run_entry
from zemi.tools.report import main

__all__ = ["main"]

if __name__ == "__main__":
    run_entry(main)
