"""The project's error types: problems with the user's input that a message can explain. The entry points print
them as `error: <message>` and exit with status 2 (`run_entry`; `--debug`, the authors' flag that also shortens a
run, or ZEMI_DEBUG=1 shows the traceback); any other exception is a bug and keeps its traceback."""

from __future__ import annotations

import os
import sys
from typing import Callable, Sequence, TypeVar

T = TypeVar("T")
DEBUG_FLAGS = ("--debug", "-db")


class ZemiError(Exception):
    """An input the user can fix: a flag, a file, a directory, a checkpoint."""


class ConfigError(ZemiError, ValueError):
    """An impossible flag value, or flags that do not fit together or with the files they name."""


class MissingInputError(ZemiError, FileNotFoundError):
    """A file or directory that a flag names, or that a run directory should hold, does not exist."""


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
