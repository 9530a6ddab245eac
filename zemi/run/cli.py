"""What every entry point does around its work: logging set-up, and turning the project's own errors (a bad flag,
file or checkpoint: `zemi.errors.ZemiError`) into `error: <message>` and exit status 2 instead of a traceback.
`--debug` (the authors' flag, which also shortens the run) or ZEMI_DEBUG=1 keeps the traceback; any other
exception is a bug and always keeps it."""

from __future__ import annotations

import logging
import os
import sys
from typing import Callable, Sequence, TypeVar

from zemi.errors import ZemiError

T = TypeVar("T")
DEBUG_FLAGS = ("--debug", "-db")


def setup_logging(accelerator=None) -> None:
    """INFO on the local main process, errors only on the others; the libraries' chatter at WARNING."""
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.INFO)
    if accelerator is not None and not accelerator.is_local_main_process:
        logging.getLogger().setLevel(logging.ERROR)
    for noisy in ("transformers", "datasets", "accelerate", "httpx", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def run_entry(main: Callable[[Sequence[str] | None], T], argv: Sequence[str] | None = None) -> T:
    """Call `main(argv)`; a `ZemiError` ends the process with its message and status 2."""
    args = sys.argv[1:] if argv is None else list(argv)
    try:
        return main(args)
    except ZemiError as err:
        if os.environ.get("ZEMI_DEBUG") or any(flag in args for flag in DEBUG_FLAGS):
            raise
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
