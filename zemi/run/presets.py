"""The recipes, written once: the paper's (the default of every training flag) and the embedded demo's.

`TrainConfig`'s defaults, the training scripts (`SETUP_ENV.sh` runs `python -m zemi.run.presets NAME --shell`) and
the docs read these tables: change a number here and all of them follow. Paths may start with {repo} (the
repository), {data_root} (`data/`, or $DATA_ROOT) or {output} (the preset's output root, or $OUTPUT_SRC_ROOT).
`python -m zemi.run.presets paper` prints a preset.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Sequence

from zemi.data.task_lists import HELD_OUT_TASKS, TRAINING_MIXTURE

DEMO_MIXTURE_FILE = "data/demo/tasks/mixture.json"  # the demo's task lists, written by its task builder


@dataclass(frozen=True)
class Preset:
    """What one reproduction trains and evaluates, and how."""

    recipe: dict[str, Any]  # TrainConfig field -> value, the same for every method and size
    batch_size: dict[str, int]  # per process, by model size (the paper: 8 processes, a global batch of 32 for base)
    eval_batch_size: int  # examples per process in validation and evaluation
    concat_aug_num: int  # documents the Concat baseline appends
    backbones: dict[str, str]
    perceiver_configs: dict[str, str]
    output: str  # run directories (p3_finetuning/), evaluations (eval/) and reports go below it
    data: str  # the 30aug root
    reports: dict[str, str]  # where Table 1 of each model size goes
    train_tasks: tuple[str, ...] | None = None  # None: read from DEMO_MIXTURE_FILE
    eval_tasks: tuple[str, ...] | None = None


PAPER = Preset(
    recipe=dict(
        learning_rate=1e-4, weight_decay=0.01, lr_scheduler_type="cosine", warmup_ratio=0.25, num_train_epochs=10,
        gradient_accumulation_steps=1, sample_n=2, max_length=1024, aug_max_length=256, target_max_length=256,
        # A resumable state every 2,000 optimizer steps (only the newest is kept): a preempted job loses minutes.
        checkpointing_steps=2000,
    ),
    batch_size={"base": 4, "large": 1},
    eval_batch_size=8,
    concat_aug_num=5,
    backbones={"base": "google/t5-base-lm-adapt", "large": "google/t5-large-lm-adapt"},
    perceiver_configs={"base": "{repo}/training/perceiver_configs/xattn_multi_aug_config_v1_v3_5aug.json",
                       "large": "{repo}/training/perceiver_configs/xattn_multi_aug_config_v1_v3_5aug_t5_large.json"},
    output="{repo}/output",
    data="{data_root}/p3_c4_document_level_chosen_examples/30aug",
    reports={"base": "{output}/report/base", "large": "{output}/report/large"},
    train_tasks=TRAINING_MIXTURE,
    eval_tasks=HELD_OUT_TASKS,
)

# The paper's recipe on a laptop-CPU budget: one epoch over 125 examples per template (8 tasks x 2 templates x
# 125 = 2,000 examples, 125 steps of 16, batches of similar length), lengths that fit the demo's short texts
# (documents are at most ~64 tokens; answers a few words), and a larger learning rate for the tiny backbone.
DEMO = Preset(
    recipe={**PAPER.recipe, "learning_rate": 1e-3, "num_train_epochs": 1, "max_length": 320, "aug_max_length": 64,
            "target_max_length": 16, "num_shots": 125, "group_by_length": True, "checkpointing_steps": None},
    batch_size={"base": 16, "large": 16},
    eval_batch_size=32,
    concat_aug_num=5,
    backbones={"base": "{data_root}/demo/backbone", "large": "{data_root}/demo/backbone"},
    perceiver_configs={"base": "{data_root}/demo/perceiver_config.json",
                       "large": "{data_root}/demo/perceiver_config.json"},
    output="{repo}/output/demo",
    data="{output}/data/30aug",
    reports={"base": "{output}", "large": "{output}"},
)

PRESETS = {"paper": PAPER, "demo": DEMO}


def get_preset(name: str) -> Preset:
    try:
        return PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown preset {name!r} (ZEMI_PRESET); valid names: {sorted(PRESETS)}") from None


def task_lists(preset: Preset, repo_root: str | Path = ".") -> tuple[list[str], list[str]]:
    if preset.train_tasks is not None:
        return list(preset.train_tasks), list(preset.eval_tasks)
    mixture = json.loads((Path(repo_root) / DEMO_MIXTURE_FILE).read_text())
    return list(mixture["train"]), list(mixture["eval"])


# Recipe fields that SETUP_ENV.sh exports as variables, so that they can be overridden from the environment
# (EPOCHS=3 bash training/zemi_base.sh); the others reach training as PRESET_TRAIN_ARGS.
SHELL_RECIPE = {"num_train_epochs": "EPOCHS", "learning_rate": "LR", "sample_n": "SAMPLE_N",
                "gradient_accumulation_steps": "GRAD_ACCUM", "max_length": "MAX_LENGTH",
                "aug_max_length": "AUG_MAX_LENGTH", "target_max_length": "TARGET_MAX_LENGTH",
                "warmup_ratio": "WARMUP_RATIO", "lr_scheduler_type": "LR_SCHEDULER", "weight_decay": "WEIGHT_DECAY"}
SHELL_PLACEHOLDERS = {"{repo}": "$ZEMI_REPO_ROOT", "{data_root}": "$DATA_ROOT", "{output}": "$OUTPUT_SRC_ROOT"}


def recipe_flags(preset: Preset) -> list[str]:
    """The recipe's fields without a shell variable, as training flags."""
    flags = []
    for name, value in preset.recipe.items():
        if name in SHELL_RECIPE or value is None or value is False:
            continue
        flags += [f"--{name}"] if value is True else [f"--{name}", str(value)]
    return flags


def shell_variables(name: str, repo_root: str | Path) -> dict[str, str]:
    """SETUP_ENV.sh's variables and their defaults, in the order they must be set (later ones refer to earlier)."""
    preset = get_preset(name)
    train, held_out = task_lists(preset, repo_root)
    values = {SHELL_RECIPE[field]: preset.recipe[field] for field in SHELL_RECIPE}
    values.update(
        BS_BASE=preset.batch_size["base"], BS_LARGE=preset.batch_size["large"], EVAL_BS=preset.eval_batch_size,
        CONCAT_AUG_NUM=preset.concat_aug_num, PRESET_TRAIN_ARGS=" ".join(recipe_flags(preset)),
        TRAIN_MIXTURE=" ".join(train), EVAL_TASKS=" ".join(held_out),
        OUTPUT_SRC_ROOT=preset.output, AUG_DATA_ROOT=preset.data,
        LM_BASE=preset.backbones["base"], LM_LARGE=preset.backbones["large"],
        PERCEIVER_CONFIG_BASE=preset.perceiver_configs["base"], PERCEIVER_CONFIG_LARGE=preset.perceiver_configs["large"],
        REPORT_DIR_BASE=preset.reports["base"], REPORT_DIR_LARGE=preset.reports["large"],
    )
    return {key: str(value) for key, value in values.items()}


def shell_default(value: str) -> str:
    """`value` inside a double-quoted ${VAR:-...}: what the shell would expand is escaped, except the placeholders,
    which become the variables SETUP_ENV.sh has set before."""
    escaped = "".join("\\" + c if c in '"$`\\' else c for c in value)
    for placeholder, variable in SHELL_PLACEHOLDERS.items():
        escaped = escaped.replace(placeholder, variable)
    return escaped


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Print a recipe preset (as JSON, or as shell defaults).",
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("name", choices=sorted(PRESETS))
    parser.add_argument("--shell", action="store_true",
                        help="print `export VAR=\"${VAR:-default}\"` lines (what SETUP_ENV.sh evaluates)")
    parser.add_argument("--repo_root", default=".", help="the repository (where the demo's task list is read)")
    args = parser.parse_args(argv)
    if args.shell:
        for key, value in shell_variables(args.name, args.repo_root).items():
            print(f'export {key}="${{{key}:-{shell_default(value)}}}"')
    else:
        print(json.dumps(asdict(get_preset(args.name)), indent=2))


if __name__ == "__main__":
    main()
