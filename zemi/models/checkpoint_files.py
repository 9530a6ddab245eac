"""Reading weight files and checking that they fit a model, before anything is loaded.

A checkpoint is a `save_pretrained` directory (safetensors or bin, possibly sharded) or a `torch.save` state-dict
file (the authors' Zemi and FiD `step_N`). Shapes come from file headers only; unreadable files raise
`CheckpointReadError`, weights whose keys or shapes do not fit `CheckpointMismatchError` (transformers would
silently initialise missing weights).
"""

from __future__ import annotations

import json
import os
import pickle
import re
import struct
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from torch import nn

from zemi.errors import ZemiError

SLOT_EMBEDDING = "perceiver_resampler.time_pos_emb"  # (num_aug_sources, 1, D): one embedding per document slot
WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin",
                "pytorch_model.bin.index.json")


class CheckpointReadError(ZemiError, OSError):
    """A checkpoint that cannot be read: missing, truncated or corrupt files, or a pickle that asks to run code."""


# torch's weights-only unpickler meets bytes that are no pickle with any of these (struct.error: a truncated
# number; IndexError, KeyError: an opcode on an empty stack or memo), about one random file in twelve.
TORCH_LOAD_ERRORS = (pickle.UnpicklingError, RuntimeError, EOFError, OSError, ValueError, struct.error, IndexError,
                     KeyError)


def torch_load_error(path: Path, err: Exception) -> CheckpointReadError:
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
        raise torch_load_error(path, err) from None
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
    of old T5 files), and may lack those loading ties to another it holds (`tied_if_absent`: a T5 without a head of
    its own); a torch.save file is loaded strictly, so there they count as unexpected or missing."""
    directory = source.is_dir()
    dropped = (getattr(model, "_keys_to_ignore_on_load_unexpected", None) or []) if directory else []
    held = {name: torch.empty(shape, device="meta") for name, shape in shapes.items()
            if not any(re.search(pattern, name) for pattern in dropped)}
    aliases: dict[int, list[str]] = {}
    for name, tensor in [*model.named_parameters(remove_duplicate=False), *model.named_buffers(remove_duplicate=False)]:
        aliases.setdefault(id(tensor), []).append(name)
    for names in aliases.values():
        present = [name for name in names if name in held]
        if present:
            held.update({name: held[present[0]] for name in names if name not in held})
    for target, tied_to in (getattr(model, "tied_if_absent", {}) if directory else {}).items():
        if target not in held and tied_to in held:
            held[target] = held[tied_to]
    check_state_dict_fits(model, held, source=str(source))


class CheckpointMismatchError(ZemiError, ValueError):
    """A state dict whose keys or shapes do not fit the model it is loaded into."""


def check_state_dict_fits(model: nn.Module, state_dict: dict[str, torch.Tensor], *, source: str) -> None:
    expected = {name: tuple(t.shape) for name, t in model.state_dict().items()}
    missing = sorted(set(expected) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(expected))
    wrong_shape = sorted(
        f"{name}: checkpoint {tuple(state_dict[name].shape)} vs model {expected[name]}"
        for name in set(expected) & set(state_dict)
        if tuple(state_dict[name].shape) != expected[name]
    )
    if missing or unexpected or wrong_shape:
        parts = [f"{source} does not fit {type(model).__name__}:"]
        for label, items in (("missing keys", missing), ("unexpected keys", unexpected), ("shape mismatches", wrong_shape)):
            if items:
                parts.append(f"  {len(items)} {label}: {items[:20]}{' ...' if len(items) > 20 else ''}")
        raise CheckpointMismatchError("\n".join(parts))


def load_original_checkpoint(model: nn.Module, path: str | os.PathLike) -> None:
    """Load a published `step_N` file (a `torch.save` of the state dict) with `weights_only=True`, strictly."""
    state_dict = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(state_dict, dict):
        raise CheckpointMismatchError(f"{path} holds a {type(state_dict).__name__}, not a state dict")
    check_state_dict_fits(model, state_dict, source=str(path))
    model.load_state_dict(state_dict, strict=True)

