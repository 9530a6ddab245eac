"""Entry point kept for `python -m zemi.visualize_retrieval` (training/demo.sh); the tool is
`zemi.tools.visualize_retrieval`."""

from zemi.errors import run_entry
from zemi.tools.visualize_retrieval import main

if __name__ == "__main__":
    run_entry(main)
