"""Build a retrieval index directory from a local corpus (`zemi.retrieval.local_index`), for `zemi.predict`:
python -m zemi.build_index --corpus corpus.jsonl --output INDEX_DIR"""

from zemi.retrieval.local_index import main
from zemi.run.cli import run_entry

__all__ = ["main"]

if __name__ == "__main__":
    run_entry(main)
