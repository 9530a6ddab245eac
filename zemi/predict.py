"""Answer a prompt with retrieved documents (`zemi.tools.predict`): rank --choices or generate.
python -m zemi.predict --model RUN_OR_MODEL_DIR --index INDEX_DIR --prompt "..." [--choices A B ...] [--json]"""

from zemi.run.cli import run_entry
from zemi.tools.predict import main

__all__ = ["main"]

if __name__ == "__main__":
    run_entry(main)
