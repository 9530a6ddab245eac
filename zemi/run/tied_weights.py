"""Tensors stored under several names when a model is saved: the ties its config declares (T5's token embeddings,
and the LM head of an original, tied T5) are written once without a word; any other sharing is reported."""

from __future__ import annotations

import logging
from collections import defaultdict
from pathlib import Path

import torch

from zemi.run.loss import unwrap

logger = logging.getLogger(__name__)


def declared_ties(model: torch.nn.Module) -> dict[str, str]:
    """{alias: kept name} as the config declares them: transformers 5's `all_tied_weights_keys` (documented with
    `PreTrainedModel.tie_weights`), which T5WithOwnLMHead narrows to the embeddings when the head is the model's own."""
    return dict(getattr(unwrap(model), "all_tied_weights_keys", None) or {})


def shared_groups(state_dict: dict) -> list[list[str]]:
    """The names of each storage that more than one name of `state_dict` points into."""
    groups = defaultdict(list)
    for name, tensor in state_dict.items():
        if isinstance(tensor, torch.Tensor) and tensor.device.type != "meta":
            groups[(tensor.device, tensor.untyped_storage().data_ptr())].append(name)
    return [names for names in groups.values() if len(names) > 1]


def _is_declared(name: str, group: list[str], ties: dict[str, str]) -> bool:
    """`name` is a declared alias of a name in its group; a wrapper's prefix ("module.", "_orig_mod.") is allowed."""
    for alias, kept in ties.items():
        if name == alias or name.endswith("." + alias):
            return name[: len(name) - len(alias)] + kept in group
    return False


def drop_declared_ties(state_dict: dict, ties: dict[str, str]) -> list[list[str]]:
    """Removes from `state_dict` every declared alias that shares its storage with its kept name; returns the groups
    of names that still share a storage (ties nobody declared)."""
    undeclared = []
    for group in shared_groups(state_dict):
        aliases = [name for name in group if _is_declared(name, group, ties)]
        for name in aliases:
            del state_dict[name]
        rest = [name for name in group if name not in aliases]
        if len(rest) > 1:
            undeclared.append(rest)
    return undeclared


def drop_declared_ties_before_save_state(models: list, weights: list[dict], _output_dir: str) -> None:
    """A save-state pre-hook (`Accelerator.register_save_state_pre_hook`). accelerate writes the model of the
    training state as safetensors, which cannot alias, so it keeps one name of each shared tensor and warns about the
    others ("Removed shared tensor ... while saving"), declared ties included: at every save, for every T5. With the
    declared ties gone first, that warning is left to sharing the config does not declare. `load_state` restores the
    aliases from the kept names (safetensors' `load_model`)."""
    for model, state_dict in zip(models, weights):
        drop_declared_ties(state_dict, declared_ties(model))


def untie_undeclared(state_dict: dict, model: torch.nn.Module, path: Path) -> dict:
    """`state_dict` with each tensor shared without a declared tie stored as its own copy, and a warning.
    save_pretrained would keep only one name of such a group and, for a name its class lists as tieable (the LM head
    of every T5), say nothing: a T5 v1.1 checkpoint would then reload with a random head."""
    state_dict = dict(state_dict)
    for group in drop_declared_ties(dict(state_dict), declared_ties(model)):
        logger.warning("%s: %s share the storage of %s although the config ties no such weights (an LM head tied to "
                       "the embedding of a T5 v1.1?); each is saved as its own copy, so the checkpoint reloads as "
                       "trained", path, ", ".join(group[1:]), group[0])
        for name in group[1:]:
            state_dict[name] = state_dict[name].clone()
    return state_dict
