"""Checkpoints: atomic writes of ours, and reading run directories (ours and the authors' downloads).

A run directory holds `args.json`, optionally `perceiver_config.json`, and `step_<N>` checkpoints: ours are
`save_pretrained` directories (safetensors); the authors' are `torch.save` state-dict files (Zemi, FiD) or
`save_pretrained` directories (No Aug, Concat). Everything is written to a temporary name, synced, then renamed,
so a crash mid-write never leaves a half checkpoint under a real name. Reading checks a checkpoint before loading it:
unreadable ones raise `CheckpointReadError` (an evaluation sweep skips them), ones whose keys or shapes do not fit
the run's architecture raise `CheckpointMismatchError`, since transformers would silently initialise missing weights.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import os
import pickle
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from transformers import T5Config

from zemi.faults import crash_point
from zemi.data.processing import TextRules
from zemi.modeling_t5 import (
    CheckpointMismatchError,
    PerceiverXattnConfig,
    T5WithOwnLMHead,
    build_model,
    check_state_dict_fits,
    get_architecture,
    load_original_checkpoint,
    model_from_config,
)

logger = logging.getLogger(__name__)

STEP_PATTERN = re.compile(r"^step_(\d+)$")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "spiece.model")
SLOT_EMBEDDING = "perceiver_resampler.time_pos_emb"  # (num_aug_sources, 1, D): one embedding per document slot
WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin",
                "pytorch_model.bin.index.json")


class CheckpointReadError(OSError):
    """A checkpoint that cannot be read: missing, truncated or corrupt files, or a pickle that asks to run code."""


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


def step_checkpoints(run_dir: str | Path) -> list[tuple[int, Path]]:
    """`step_<N>` entries of a run directory, in step order."""
    found = []
    for item in Path(run_dir).iterdir():
        match = STEP_PATTERN.match(item.name)
        if match:
            found.append((int(match.group(1)), item))
    return sorted(found)


TORCH_LOAD_ERRORS = (pickle.UnpicklingError, RuntimeError, EOFError, OSError, ValueError)


def _torch_load_error(path: Path, err: Exception) -> CheckpointReadError:
    """weights_only=True raises UnpicklingError both for a pickle that names Python code (a GLOBAL: an import, as
    in a `__reduce__` calling os.system) and for bytes that are no pickle at all; tell the two apart."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    detail = next((line for line in lines if "GLOBAL" in line or "Unsupported" in line), lines[0] if lines else "")
    if isinstance(err, pickle.UnpicklingError) and "GLOBAL" in detail:
        return CheckpointReadError(f"{path}: refused: it is not a plain state dict of tensors; loading it would "
                                   f"import or call Python code ({detail})")
    return CheckpointReadError(f"{path}: cannot be read as a torch.save file (truncated or corrupt?): {detail}")


def _load_lazily(path: Path) -> Any:
    """torch.load with weights_only=True, memory-mapped (no tensor data read) when the file's format allows it."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except RuntimeError as err:
        if "mmap" not in str(err):
            raise
        return torch.load(path, map_location="cpu", weights_only=True)  # the pre-zip format cannot be mapped


def _pickled_shapes(path: Path) -> dict[str, tuple[int, ...]]:
    """Shapes of the tensors of a `torch.save` state dict."""
    try:
        state = _load_lazily(path)
    except TORCH_LOAD_ERRORS as err:
        raise _torch_load_error(path, err) from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointReadError(f"{path}: holds a {type(state).__name__}, not a state dict of tensors")
    return {name: tuple(tensor.shape) for name, tensor in state.items()}


def _safetensors_shapes(path: Path) -> dict[str, tuple[int, ...]]:
    try:
        with safe_open(path, framework="pt") as handle:  # checks the header covers the whole file (truncation)
            return {name: tuple(handle.get_slice(name).get_shape()) for name in handle.keys()}
    except (SafetensorError, OSError) as err:
        raise CheckpointReadError(f"{path}: cannot be read as safetensors (truncated or corrupt?): {err}") from None


def _indexed_files(index: Path) -> list[Path]:
    try:
        weight_map = json.loads(index.read_text())["weight_map"]
        return [index.parent / name for name in sorted(set(weight_map.values()))]
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as err:
        raise CheckpointReadError(f"{index}: not a valid weight index ({err!r})") from None


def checkpoint_shapes(checkpoint: Path) -> dict[str, tuple[int, ...]]:
    """Name -> shape of every weight a checkpoint holds, from file headers only; `CheckpointReadError` if it
    cannot be read. A `save_pretrained` directory or a `torch.save` file."""
    if not checkpoint.is_dir():
        if not checkpoint.is_file():
            raise CheckpointReadError(f"{checkpoint}: does not exist")
        return _pickled_shapes(checkpoint)
    present = [name for name in WEIGHT_FILES if (checkpoint / name).is_file()]
    if not present:
        raise CheckpointReadError(f"{checkpoint}: holds none of {list(WEIGHT_FILES)}: not a complete checkpoint")
    weights = checkpoint / present[0]
    files = _indexed_files(weights) if weights.name.endswith(".index.json") else [weights]
    read = _safetensors_shapes if weights.name.startswith("model.safetensors") else _pickled_shapes
    shapes: dict[str, tuple[int, ...]] = {}
    for path in files:
        if not path.is_file():
            raise CheckpointReadError(f"{path}: missing (listed in {weights.name})")
        shapes.update(read(path))
    return shapes


def check_weights_fit(model: torch.nn.Module, shapes: dict[str, tuple[int, ...]], *, source: Path) -> None:
    """`CheckpointMismatchError` listing missing, unexpected and mis-shaped weights. Tied weights (the T5 embedding
    under three names) count as present when the checkpoint holds any one of their names, as save_pretrained
    writes one. A directory may hold the weights transformers knowingly drops (an unused relative-attention bias
    of old T5 files); a torch.save file is loaded strictly, so there they count as unexpected."""
    dropped = (getattr(model, "_keys_to_ignore_on_load_unexpected", None) or []) if source.is_dir() else []
    held = {name: torch.empty(shape, device="meta") for name, shape in shapes.items()
            if not any(re.search(pattern, name) for pattern in dropped)}
    aliases: dict[int, list[str]] = {}
    for name, tensor in [*model.named_parameters(remove_duplicate=False), *model.named_buffers(remove_duplicate=False)]:
        aliases.setdefault(id(tensor), []).append(name)
    for names in aliases.values():
        present = [name for name in names if name in held]
        if present:
            held.update({name: held[present[0]] for name in names if name not in held})
    check_state_dict_fits(model, held, source=str(source))


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
        try:
            architecture = get_architecture(run.architecture)
        except ValueError as err:
            raise ValueError(f"{args_file}: model_architecture: {err}") from None
        config_file = path / "perceiver_config.json"
        if config_file.is_file():  # Zemi's fusion settings; FiD's run keeps it for num_aug_sources
            try:
                values = json.loads(config_file.read_text())
            except json.JSONDecodeError as err:
                raise ValueError(f"{config_file}: not valid JSON ({err})") from err
            run.perceiver_config = PerceiverXattnConfig.from_dict(values, source=str(config_file))
        elif architecture.needs_perceiver_config:
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

    def model_config(self, checkpoint: Path) -> T5Config:
        """Ours: the checkpoint directory's config.json; the authors' state-dict files: the backbone's."""
        source = checkpoint if checkpoint.is_dir() else self.args.get("config_name") or self.backbone
        try:
            return T5Config.from_pretrained(source)
        except (OSError, ValueError) as err:
            if checkpoint.is_dir():
                raise CheckpointReadError(f"{checkpoint}: no readable config.json ({err})") from None
            raise ValueError(f"{self.path}/args.json: cannot read the T5 config of backbone {source} ({err})") from err

    def expected_model(self, config: T5Config) -> T5WithOwnLMHead:
        """The run's architecture without weights (meta tensors): what a checkpoint's keys and shapes must match."""
        fusion = self.perceiver_config or getattr(config, "perceiver_xattn_config", None)
        if self.perceiver_config is not None and get_architecture(self.architecture).needs_perceiver_config:
            self.perceiver_config.check(d_model=config.d_model, source=str(self.path / "perceiver_config.json"))
        with torch.device("meta"):
            return model_from_config(self.architecture, config, fusion)

    def check_checkpoint(self, checkpoint: Path, rules: TextRules, *, fix: str) -> None:
        """Before any data or weights are loaded: the checkpoint is readable, has a slot for every document the
        run feeds an example (`fix` says where num_aug_sources is set), and fits the architecture."""
        shapes = checkpoint_shapes(checkpoint)
        slots = shapes.get(SLOT_EMBEDDING, (None,))[0]
        fed = min(rules.documents_taken, rules.num_documents)
        if slots is not None and fed > slots:
            raise ValueError(
                f"{checkpoint} has {slots} document slots ({SLOT_EMBEDDING} {shapes[SLOT_EMBEDDING]}) but this run "
                f"feeds {fed} documents per example (num_aug_sources {rules.num_documents} in {fix}); set "
                f"num_aug_sources to {slots} in {fix} and pass --fit_aug_num {rules.documents_taken} to fold the "
                f"{rules.documents_taken} documents into its {slots} slots")
        check_weights_fit(self.expected_model(self.model_config(checkpoint)), shapes, source=checkpoint)

    def load_model(self, checkpoint: Path) -> T5WithOwnLMHead:
        """A `save_pretrained` directory (ours, or the authors' baselines) or a `torch.save` state dict (the
        authors' Zemi and FiD files, loaded with weights_only=True and strict key checking). Unreadable files raise
        `CheckpointReadError`; weights that do not fit the architecture `CheckpointMismatchError`."""
        if checkpoint.is_dir():
            check_weights_fit(self.expected_model(self.model_config(checkpoint)), checkpoint_shapes(checkpoint),
                              source=checkpoint)
            return build_model(self.architecture, checkpoint, self.perceiver_config)
        model = model_from_config(self.architecture, self.model_config(checkpoint), self.perceiver_config)
        try:
            load_original_checkpoint(model, checkpoint)
        except CheckpointMismatchError:
            raise
        except TORCH_LOAD_ERRORS as err:
            raise _torch_load_error(checkpoint, err) from None
        return model
