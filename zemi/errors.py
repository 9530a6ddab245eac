"""The project's error types: problems with the user's input that a message can explain. The commands print them as
`error: <message>` and exit with status 2 (`zemi.cli.run_entry`); any other exception is a bug and keeps its
traceback."""

from __future__ import annotations


class ZemiError(Exception):
    """An input the user can fix: a flag, a file, a directory, a checkpoint."""


class ConfigError(ZemiError, ValueError):
    """An impossible flag value, or flags that do not fit together or with the files they name."""


class MissingInputError(ZemiError, FileNotFoundError):
    """A file or directory that a flag names, or that a run directory should hold, does not exist."""
