"""Crash-safe file writing, reading a JSON file, and the run directory's naming rules, with the standard library.

Everything is written to a temporary sibling, synced, then renamed, so a crash mid-write never leaves a half file
under a real name; `recover_interrupted_writes` tidies what a killed process left behind. Every writer of the
project (results, logs, checkpoints, the visualization page) goes through `publish`.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import os
import re
import shutil
from pathlib import Path
from typing import Any, Callable

logger = logging.getLogger(__name__)

STEP_PATTERN = re.compile(r"^step_(\d+)$")


def step_of(path: str | Path) -> int | None:
    """N for a `step_N` entry, None for anything else."""
    match = STEP_PATTERN.match(Path(path).name)
    return int(match.group(1)) if match else None


def step_entries(directory: str | Path) -> list[tuple[int, Path]]:
    """The `step_N` entries (files or directories) of `directory`, in step order; [] when it does not exist."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    found = [(step_of(item), item) for item in directory.iterdir()]
    return sorted((step, item) for step, item in found if step is not None)


def fsync_tree(path: Path) -> None:
    for item in sorted(path.rglob("*")) if path.is_dir() else [path]:
        if item.is_file():
            with open(item, "rb") as handle:
                os.fsync(handle.fileno())
    _fsync_dir(path if path.is_dir() else path.parent)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def temporary_sibling(path: Path) -> Path:
    return path.with_name(f".{path.name}.tmp-{os.getpid()}")


def publish(tmp: Path, final: Path) -> None:
    """Make a fully written `tmp` (file or directory) visible as `final`, replacing an older `final`."""
    fsync_tree(tmp)
    if final.is_dir() and tmp.is_dir():
        old = final.with_name(f".{final.name}.old-{os.getpid()}")
        os.replace(final, old)
        os.replace(tmp, final)
        shutil.rmtree(old)
    else:
        os.replace(tmp, final)
    _fsync_dir(final.parent)


def read_json(path: str | Path, error: Callable[[str], Exception]) -> Any:
    """A JSON file's content; a file that is not valid JSON (or not text) raises `error(message)`, the message
    naming the file."""
    try:
        return json.loads(Path(path).read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise error(f"{path}: not valid JSON ({err})") from None


def write_bytes_atomic(path: str | Path, data: bytes) -> None:
    path = Path(path)
    tmp = temporary_sibling(path)
    tmp.write_bytes(data)
    publish(tmp, path)


def write_text_atomic(path: str | Path, text: str) -> None:
    write_bytes_atomic(path, text.encode("utf-8"))


def write_json_atomic(path: str | Path, data: Any) -> None:
    write_text_atomic(path, json.dumps(data, indent=2, default=str) + "\n")


def write_csv_atomic(path: str | Path, rows: list[dict]) -> None:
    buffer = io.StringIO()
    if rows:
        writer = csv.DictWriter(buffer, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    write_text_atomic(path, buffer.getvalue())


def recover_interrupted_writes(directory: Path) -> None:
    """Clean up after a crash mid-write in `directory`: unfinished temporaries are removed (never under a real
    name), and a `.<name>.old-*` left between `publish`'s two renames is put back when `<name>` is missing."""
    if not directory.is_dir():
        return
    for old in directory.glob(".*.old-*"):
        final = directory / old.name[1:].rsplit(".old-", 1)[0]
        if final.exists():
            shutil.rmtree(old) if old.is_dir() else old.unlink()
        else:
            logger.warning("restoring %s, moved aside by a write that was interrupted", final)
            os.replace(old, final)
    for item in directory.glob(".*.tmp-*"):
        logger.warning("removing an unfinished write from an interrupted run: %s", item)
        shutil.rmtree(item) if item.is_dir() else item.unlink()
