"""A run directory: what training writes and evaluation reads (ours and the authors' downloads).

It holds `args.json`, optionally `perceiver_config.json`, and `step_<N>` checkpoints: ours are `save_pretrained`
directories (safetensors); the authors' are `torch.save` state-dict files (Zemi, FiD) or `save_pretrained`
directories (No Aug, Concat). A converted run (`zemi-convert`) is one Hugging Face model
directory with the run's `args.json` beside its config.json: its one checkpoint is the directory itself, and its
fusion settings are the config's. Checkpoints are written atomically (`zemi.io.publish`) and checked before loading
(`zemi.models.checkpoint_files`): an evaluation sweep skips unreadable ones.
"""

from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from transformers import T5Config

from zemi.errors import ConfigError, MissingInputError
from zemi.data.processing import TextRules
from zemi.faults import crash_point
from zemi.io import publish, read_json, step_entries, temporary_sibling
from zemi.models.checkpoint_files import (
    SLOT_EMBEDDING,
    TORCH_LOAD_ERRORS,
    CheckpointMismatchError,
    CheckpointReadError,
    check_weights_fit,
    checkpoint_shapes,
    load_original_checkpoint,
    torch_load_error,
)
from zemi.models.configuration_zemi import PerceiverXattnConfig, load_model_config, saved_fusion_values
from zemi.models.modeling_t5 import T5WithOwnLMHead
from zemi.models.registry import build_model, fusion_from_json, fusion_from_values, get_architecture, model_from_config
from zemi.run.tied_weights import untie_undeclared

logger = logging.getLogger(__name__)

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "spiece.model")


def save_model_atomic(model, path: str | Path, *, state_dict: dict | None = None) -> None:
    """`save_pretrained` into a temporary sibling, then published as `path`; weights shared without a tie the
    config declares are saved as copies, with a warning (zemi.run.tied_weights)."""
    path = Path(path)
    tmp = temporary_sibling(path)
    if tmp.exists():
        shutil.rmtree(tmp)
    state_dict = untie_undeclared(model.state_dict() if state_dict is None else state_dict, model, path)
    model.save_pretrained(tmp, state_dict=state_dict, safe_serialization=True)
    crash_point("checkpoint_write")
    publish(tmp, path)


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
            raise MissingInputError(f"{path} has no args.json: not a training run directory")
        run = cls(path=path, args=read_json(args_file, ConfigError))
        try:
            architecture = get_architecture(run.architecture)
        except ValueError as err:
            raise ConfigError(f"{args_file}: model_architecture: {err}") from None
        config_file = path / "perceiver_config.json"
        if config_file.is_file():  # Zemi's fusion settings; FiD's run keeps it for num_aug_sources
            run.perceiver_config = fusion_from_json(run.architecture, config_file)
        elif run.is_model_directory and (saved := saved_fusion_values(run.model_config(path))) is not None:
            run.perceiver_config = fusion_from_values(run.architecture, saved, source=str(path / "config.json"))
        elif architecture.needs_perceiver_config:
            raise MissingInputError(f"{path}: architecture {run.architecture} needs perceiver_config.json beside args.json")
        return run

    @property
    def is_model_directory(self) -> bool:
        """A converted run: the directory itself is the model (config.json beside args.json), not step_* dirs."""
        return (self.path / "config.json").is_file()

    @property
    def architecture(self) -> str:
        # The authors' baseline runs (No Aug, Concat) have no model_architecture in args.json.
        return self.args.get("model_architecture") or "T5"

    @property
    def backbone(self) -> str:
        name = self.args.get("lm_name") or self.args.get("model_name_or_path")
        if not name:
            raise ConfigError(f"{self.path}/args.json names no backbone (lm_name or model_name_or_path)")
        return name

    def tokenizer_source(self) -> str:
        """Our runs keep the tokenizer beside the checkpoints; the authors' name it in args.json."""
        if any((self.path / name).is_file() for name in TOKENIZER_FILES):
            return str(self.path)
        return self.args.get("tokenizer_name") or self.backbone

    def checkpoints(self, step: int = -1) -> list[tuple[int, Path]]:
        found = step_entries(self.path)
        if not found and self.is_model_directory:  # the step it was converted from, recorded in args.json
            found = [(int(self.args.get("checkpoint_step", 0)), self.path)]
        if step == -1:
            if not found:
                raise MissingInputError(f"{self.path} holds no step_* checkpoints")
            return found
        chosen = [(s, p) for s, p in found if s == step]
        if not chosen:
            raise MissingInputError(f"{self.path}/step_{step} does not exist; steps present: {[s for s, _ in found]}")
        return chosen

    def model_config(self, checkpoint: Path) -> T5Config:
        """Ours: the checkpoint directory's config.json; the authors' state-dict files: the backbone's."""
        source = checkpoint if checkpoint.is_dir() else self.args.get("config_name") or self.backbone
        try:
            return load_model_config(source)
        except (OSError, ValueError) as err:
            if checkpoint.is_dir():
                raise CheckpointReadError(f"{checkpoint}: no readable config.json ({err})") from None
            raise ConfigError(f"{self.path}/args.json: cannot read the T5 config of backbone {source} ({err})") from err

    def expected_model(self, config: T5Config) -> T5WithOwnLMHead:
        """The run's architecture without weights (meta tensors): what a checkpoint's keys and shapes must match."""
        with torch.device("meta"):
            return model_from_config(self.architecture, config, self.perceiver_config)

    def check_checkpoint(self, checkpoint: Path, rules: TextRules, *, fix: str) -> None:
        """Before any data or weights are loaded: the checkpoint is readable, has a slot for every document the
        run feeds an example (`fix` says where num_aug_sources is set), and fits the architecture."""
        shapes = checkpoint_shapes(checkpoint)
        slots = shapes.get(SLOT_EMBEDDING, (None,))[0]
        fed = min(rules.documents_taken, rules.num_documents)
        if slots is not None and fed > slots:
            raise ConfigError(
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
            raise torch_load_error(checkpoint, err) from None
        return model
