"""Two evaluated runs example by example (`zemi.tools.compare`):
python -m zemi.compare RUN_A RUN_B [--output_dir DIR]"""

from zemi.run.cli import run_entry
from zemi.tools.compare import main

__all__ = ["main"]

if __name__ == "__main__":
    run_entry(main)
