"""Training curves of run directories (`zemi.tools.plot`): python -m zemi.plot RUN_DIR... [--output DIR]"""

from zemi.run.cli import run_entry
from zemi.tools.plot import main

__all__ = ["main"]

if __name__ == "__main__":
    run_entry(main)
