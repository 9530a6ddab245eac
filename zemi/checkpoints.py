"""Checkpoints: atomic writes of ours, and reading run directories (ours and the authors' downloads).

A run directory holds `args.json`, optionally `perceiver_config.json`, and `step_<N>` checkpoints: ours are
`save_pretrained` directories (safetensors); the authors' are `torch.save` state-dict files (Zemi, FiD) or
`save_pretrained` directories (No Aug, Concat). Everything is written to a temporary name, synced, then renamed,
so a crash mid-write never leaves a half checkpoint under a real name.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from transformers import T5Config

from zemi.faults import crash_point
from zemi.modeling_t5 import (
    PerceiverXattnConfig,
    T5WithOwnLMHead,
    build_model,
    get_architecture,
    load_original_checkpoint,
    model_from_config,
)

logger = logging.getLogger(__name__)

STEP_PATTERN = re.compile(r"^step_(\d+)$")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "spiece.model")


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


def write_text_atomic(path: str | Path, text: str) -> None:
    path = Path(path)
    tmp = temporary_sibling(path)
    tmp.write_text(text)
    publish(tmp, path)


def write_json_atomic(path: str | Path, data: Any) -> None:
    write_text_atomic(path, json.dumps(data, indent=2, default=str) + "\n")


def write_csv_atomic(path: str | Path, rows: list[dict]) -> None:
    buffer = io.StringIO()
    if rows:
        writer = csv.DictWriter(buffer, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    write_text_atomic(path, buffer.getvalue())


def save_model_atomic(model, path: str | Path, *, state_dict: dict | None = None) -> None:
    path = Path(path)
    tmp = temporary_sibling(path)
    if tmp.exists():
        shutil.rmtree(tmp)
    model.save_pretrained(tmp, state_dict=state_dict, safe_serialization=True)
    crash_point("checkpoint_write")
    publish(tmp, path)


def remove_stale_temporaries(directory: Path) -> None:
    """Left-overs of a crash mid-write (never under a real checkpoint name)."""
    for item in directory.glob(".*.tmp-*"):
        logger.warning("removing an unfinished write from an interrupted run: %s", item)
        shutil.rmtree(item) if item.is_dir() else item.unlink()


def step_checkpoints(run_dir: str | Path) -> list[tuple[int, Path]]:
    """`step_<N>` entries of a run directory, in step order."""
    found = []
    for item in Path(run_dir).iterdir():
        match = STEP_PATTERN.match(item.name)
        if match:
            found.append((int(match.group(1)), item))
    return sorted(found)


@dataclass
class RunDirectory:
    """A training run to evaluate: its architecture, fusion settings, text settings and checkpoints."""

    path: Path
    args: dict[str, Any] = field(default_factory=dict)
    perceiver_config: PerceiverXattnConfig | None = None

    @classmethod
    def open(cls, path: str | Path) -> RunDirectory:
        path = Path(path)
        args_file = path / "args.json"
        if not args_file.is_file():
            raise FileNotFoundError(f"{path} has no args.json: not a training run directory")
        try:
            args = json.loads(args_file.read_text())
        except json.JSONDecodeError as err:
            raise ValueError(f"{args_file}: not valid JSON ({err})") from err
        run = cls(path=path, args=args)
        config_file = path / "perceiver_config.json"
        if config_file.is_file():  # Zemi's fusion settings; FiD's run keeps it for num_aug_sources
            try:
                values = json.loads(config_file.read_text())
            except json.JSONDecodeError as err:
                raise ValueError(f"{config_file}: not valid JSON ({err})") from err
            run.perceiver_config = PerceiverXattnConfig.from_dict(values, source=str(config_file))
        elif get_architecture(run.architecture).needs_perceiver_config:
            raise FileNotFoundError(f"{path}: architecture {run.architecture} needs perceiver_config.json beside args.json")
        return run

    @property
    def architecture(self) -> str:
        # The authors' baseline runs (No Aug, Concat) have no model_architecture in args.json.
        return self.args.get("model_architecture") or "T5"

    @property
    def backbone(self) -> str:
        name = self.args.get("lm_name") or self.args.get("model_name_or_path")
        if not name:
            raise ValueError(f"{self.path}/args.json names no backbone (lm_name or model_name_or_path)")
        return name

    def tokenizer_source(self) -> str:
        """Our runs keep the tokenizer beside the checkpoints; the authors' name it in args.json."""
        if any((self.path / name).is_file() for name in TOKENIZER_FILES):
            return str(self.path)
        return self.args.get("tokenizer_name") or self.backbone

    def checkpoints(self, step: int = -1) -> list[tuple[int, Path]]:
        found = step_checkpoints(self.path)
        if step == -1:
            if not found:
                raise FileNotFoundError(f"{self.path} holds no step_* checkpoints")
            return found
        chosen = [(s, p) for s, p in found if s == step]
        if not chosen:
            raise FileNotFoundError(f"{self.path}/step_{step} does not exist; steps present: {[s for s, _ in found]}")
        return chosen

    def load_model(self, checkpoint: Path) -> T5WithOwnLMHead:
        """A `save_pretrained` directory (ours, or the authors' baselines) or a `torch.save` state dict (the
        authors' Zemi and FiD files, loaded with weights_only=True and strict key checking)."""
        if checkpoint.is_dir():
            return build_model(self.architecture, checkpoint, self.perceiver_config)
        config = T5Config.from_pretrained(self.args.get("config_name") or self.backbone)
        model = model_from_config(self.architecture, config, self.perceiver_config)
        load_original_checkpoint(model, checkpoint)
        return model

