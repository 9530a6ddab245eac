"""Experiment tracking through accelerate's trackers (TensorBoard, Weights & Biases), for training and evaluation.

`--report_to` picks the trackers; the authors' `--wandb_proj` / `--wandb_run_name` name the W&B project and run.
Everything logged here also goes to the run's CSV files, so a run without any tracker loses nothing.
"""

from __future__ import annotations

import importlib.util
import logging
import math
from pathlib import Path
from typing import Any, Mapping

import torch
from accelerate import Accelerator
from accelerate.tracking import GeneralTracker, TensorBoardTracker, WandBTracker

from zemi.errors import ConfigError

logger = logging.getLogger(__name__)

REPORT_TO = ("tensorboard", "wandb", "all", "none")
TRACKERS = ("tensorboard", "wandb")  # what "all" means: every one of these that is installed
TENSORBOARD_DIR = "tensorboard"  # <output_dir>/tensorboard/ holds the event files
DEFAULT_WANDB_PROJECT = "zemi"
INSTALL_HINT = "pip install 'zemi[tracking]'"


def installed(tracker: str) -> bool:
    return importlib.util.find_spec(tracker) is not None


def resolve_report_to(report_to: str | None, wandb_proj: str | None = None) -> list[str]:
    """The trackers to start. `None` (the training default): TensorBoard when it is installed (local files only, safe
    offline), plus W&B when `--wandb_proj` is given, as the authors' scripts enabled it."""
    if report_to is None:
        return (["tensorboard"] if installed("tensorboard") else []) + (["wandb"] if wandb_proj else [])
    if report_to not in REPORT_TO:
        raise ConfigError(f"--report_to must be one of {REPORT_TO}, got {report_to!r}")
    if report_to == "none":
        return []
    if report_to == "all":
        chosen = [name for name in TRACKERS if installed(name)]
        if not chosen:
            raise ConfigError(f"--report_to all: neither tensorboard nor wandb is installed ({INSTALL_HINT})")
        return chosen
    if not installed(report_to):
        raise ConfigError(f"--report_to {report_to}: the {report_to} package is not installed ({INSTALL_HINT}), "
                          "or pass --report_to none")
    return [report_to]


def tracker_kwargs(report_to: str | None, project_dir: str | Path, *, wandb_proj: str | None = None,
                   wandb_run_name: str | None = None) -> dict[str, Any]:
    """`Accelerator(**tracker_kwargs(...))`: TensorBoard events in `<project_dir>/tensorboard/`; a W&B run in
    project `wandb_proj` (default "zemi") named `wandb_run_name` (default: the directory's name, as the authors'
    scripts named it), its files under `<project_dir>/wandb/`."""
    trackers: list[GeneralTracker] = []
    project_dir = Path(project_dir)
    for name in resolve_report_to(report_to, wandb_proj):
        if name == "tensorboard":
            trackers.append(TensorBoardTracker(TENSORBOARD_DIR, project_dir))
        else:
            trackers.append(WandBTracker(wandb_proj or DEFAULT_WANDB_PROJECT, name=wandb_run_name or project_dir.name,
                                         dir=str(project_dir)))
    if wandb_proj and not any(isinstance(t, WandBTracker) for t in trackers):
        logger.warning("--wandb_proj %s is set but --report_to %s does not include wandb: nothing goes to W&B",
                       wandb_proj, report_to)
    return {"log_with": trackers or None, "project_dir": str(project_dir)}


def make_accelerator(config: Any, **accelerator_kwargs: Any) -> Accelerator:
    """The Accelerator of an entry point, its trackers chosen by the config's `report_to` (absent: none), `wandb_proj`
    and `wandb_run_name`, writing under its `output_dir`."""
    tracking = tracker_kwargs(getattr(config, "report_to", "none"), config.output_dir,
                              wandb_proj=getattr(config, "wandb_proj", None),
                              wandb_run_name=getattr(config, "wandb_run_name", None))
    return Accelerator(mixed_precision=config.mixed_precision, **tracking, **accelerator_kwargs)


def start_tracking(accelerator: Accelerator, settings: Mapping[str, Any], *, project: str = DEFAULT_WANDB_PROJECT) \
        -> None:
    """Start the trackers and record the run's settings as hyperparameters (TensorBoard's HPARAMS, W&B's config)."""
    if accelerator.log_with:
        accelerator.init_trackers(project, config=hyperparameters(settings))
        names = [tracker.name for tracker in accelerator.trackers]
        if accelerator.is_main_process:
            logger.info("tracking with %s", ", ".join(names))


def log_metrics(accelerator: Accelerator, metrics: Mapping[str, float], step: int) -> None:
    """Scalars at `step` to every tracker (main process; a no-op without trackers). Non-finite values are dropped:
    TensorBoard would plot them as spikes, W&B rejects them."""
    if accelerator.trackers:
        accelerator.log({k: float(v) for k, v in metrics.items() if math.isfinite(float(v))}, step=step)


def end_tracking(accelerator: Accelerator) -> None:
    """Flush and close the trackers (accelerate's `end_training`, which also ends the process group)."""
    accelerator.end_training()


def hyperparameters(settings: Mapping[str, Any]) -> dict[str, bool | int | float | str]:
    """Settings as trackers take them: TensorBoard's HPARAMS accept only scalars and strings."""
    return {key: value if isinstance(value, (bool, int, float, str)) else
            " ".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value)
            for key, value in settings.items()}


def fusion_gates(model: torch.nn.Module, accelerator: Accelerator) -> dict[str, float]:
    """Zemi's gates after `tanh`, the factors that scale each cross-attention block's output: `tanh_attn_gate_<i>`
    and `tanh_ff_gate_<i>` for block `xattn_stack[i]` (the checkpoint's `xattn_stack.<i>.attn_gate`; plain T5 blocks
    of a deeper stack, and the NoTanhGate ablation's ungated blocks, have none to show). Every process must call it: under FSDP a gate lives on one process only, so the values are summed over
    processes with their element counts."""
    blocks = getattr(model, "xattn_stack", None)
    if blocks is None:
        return {}
    names, values, counts = [], [], []
    for i, block in enumerate(blocks):
        for gate in ("attn_gate", "ff_gate"):
            parameter = getattr(block, gate, None)
            if parameter is None:
                continue
            local = parameter.to_local() if hasattr(parameter, "to_local") else parameter  # FSDP2's DTensor
            local = local.detach().float()
            names.append(f"tanh_{gate}_{i}" if getattr(block, "gated", True) else f"{gate}_{i}")
            values.append(local.sum())
            counts.append(torch.tensor(float(local.numel()), device=local.device))
    if not names:
        return {}
    totals = torch.stack([torch.stack(values), torch.stack(counts)]).to(accelerator.device)  # (2, gates)
    if accelerator.num_processes > 1:
        totals = accelerator.reduce(totals, reduction="sum")
    raw = totals[0] / totals[1].clamp(min=1)
    shown = [value.tanh() if name.startswith("tanh_") else value for name, value in zip(names, raw)]
    # A gate no process holds whole (ZeRO-3 partitions parameters out of the module) is left out, not shown as 0.
    return {name: float(value) for name, value, count in zip(names, shown, totals[1]) if count > 0}
