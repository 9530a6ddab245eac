"""The recipes, written once: the paper's (the default of zemi-train and zemi-eval) and the embedded demo's.

`--preset paper|demo --model_size base|large` resolves every recipe value, backbone, perceiver config, data path and
task list from these tables (`zemi.run.config`); a flag given explicitly wins. Paths may start with {data_root}
(`--data_root`, the authors' $DATA_ROOT) or {output} (`--output_root`, their $OUTPUT_SRC_ROOT).
`zemi-preset --preset demo` prints a preset as it resolves; `--get NAME` one value of it (the training scripts).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Sequence

from zemi.cli import option, parse_config
from zemi.configs import perceiver_config_path
from zemi.data.task_lists import HELD_OUT_TASKS, TRAINING_MIXTURE
from zemi.errors import ConfigError, MissingInputError

SIZES = ("base", "large")
DEMO_MIXTURE_FILE = "{data_root}/demo/tasks/mixture.json"  # the demo's task lists, written by its task builder


@dataclass(frozen=True)
class Preset:
    """What one reproduction trains and evaluates, and how."""

    recipe: dict[str, Any]  # TrainConfig field -> value, the same for every method and size
    batch_size: dict[str, int]  # per process, by model size (the paper: 8 processes, a global batch of 32 for base)
    eval_batch_size: int  # examples per process in validation and evaluation
    backbones: dict[str, str]
    perceiver_configs: dict[str, str]  # for FiD and Zemi, by model size
    output: str  # the output root: run directories (p3_finetuning/), evaluations (eval/) and reports below it
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
    backbones={"base": "google/t5-base-lm-adapt", "large": "google/t5-large-lm-adapt"},
    # The published files, shipped in the package (training/perceiver_configs/ links to them).
    perceiver_configs={size: str(perceiver_config_path(size)) for size in SIZES},
    output="output",
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
            "target_max_length": 16, "num_shots": 125, "group_by_length": True},
    batch_size={"base": 16, "large": 16},
    eval_batch_size=32,
    backbones={"base": "{data_root}/demo/backbone", "large": "{data_root}/demo/backbone"},
    perceiver_configs={"base": "{data_root}/demo/perceiver_config.json",
                       "large": "{data_root}/demo/perceiver_config.json"},
    output="output/demo",
    data="{output}/data/30aug",
    reports={"base": "{output}", "large": "{output}"},
)

PRESETS = {"paper": PAPER, "demo": DEMO}


@dataclass(frozen=True)
class Resolved:
    """A preset for one model size, its paths filled in: the values the commands take as defaults."""

    preset: str
    model_size: str
    recipe: dict[str, Any]
    per_device_train_batch_size: int
    per_device_eval_batch_size: int
    lm_name: str
    perceiver_config: str
    dataset_root_path: str
    train_tasks: list[str]
    eval_tasks: list[str]
    output_root: str
    report_dir: str


def get_preset(name: str) -> Preset:
    try:
        return PRESETS[name]
    except KeyError:
        raise ConfigError(f"unknown preset {name!r} (--preset, ZEMI_PRESET); valid names: {sorted(PRESETS)}") from None


def resolve(name: str, model_size: str = "base", *, data_root: str = "data", output_root: str | None = None) -> Resolved:
    preset = get_preset(name)
    if model_size not in SIZES:
        raise ConfigError(f"unknown model size {model_size!r} (--model_size); valid sizes: {list(SIZES)}")
    output = output_root or preset.output

    def path(template: str) -> str:
        return template.format(data_root=data_root, output=output)

    train, held_out = task_lists(preset, data_root)
    return Resolved(
        preset=name, model_size=model_size, recipe=dict(preset.recipe),
        per_device_train_batch_size=preset.batch_size[model_size], per_device_eval_batch_size=preset.eval_batch_size,
        lm_name=path(preset.backbones[model_size]), perceiver_config=path(preset.perceiver_configs[model_size]),
        dataset_root_path=path(preset.data), train_tasks=train, eval_tasks=held_out, output_root=output,
        report_dir=path(preset.reports[model_size]))


def task_lists(preset: Preset, data_root: str = "data") -> tuple[list[str], list[str]]:
    if preset.train_tasks is not None:
        return list(preset.train_tasks), list(preset.eval_tasks)
    path = Path(DEMO_MIXTURE_FILE.format(data_root=data_root))
    if not path.is_file():
        raise MissingInputError(f"{path}: no such file (the demo's task lists, under --data_root {data_root})")
    mixture = json.loads(path.read_text())
    return list(mixture["train"]), list(mixture["eval"])


# --- zemi-preset ---------------------------------------------------------------------------------------------------


@dataclass
class PresetOptions:
    preset: str = option("paper", "The recipe and inputs the other defaults come from: paper (the published recipe, "
                         "the authors' 30aug data, google/t5-*-lm-adapt) or demo (the embedded demo, data/demo)",
                         choices=sorted(PRESETS))
    data_root: str = option("data", "What the preset's data paths start from (the authors' $DATA_ROOT): the paper's "
                            "30aug root is <data_root>/p3_c4_document_level_chosen_examples/30aug, the demo's assets "
                            "are under <data_root>/demo")
    output_root: str | None = option(None, "The output root (the authors' $OUTPUT_SRC_ROOT; default: the preset's, "
                                     "output or output/demo); the demo builds its 30aug data under it")


@dataclass
class SizedPresetOptions(PresetOptions):
    model_size: str = option("base", "The model size: the preset's backbone, batch size and perceiver config",
                             choices=SIZES)


@dataclass
class PrintOptions(SizedPresetOptions):
    get: list[str] = option((), "Print only these values, one per line (lists space-separated), e.g. --get "
                            "eval_tasks report_dir; names: the fields of the JSON printed without it", nargs="+")


def main(argv: Sequence[str] | None = None) -> Resolved:
    options = parse_config(PrintOptions, argv, __doc__)
    resolved = resolve(options.preset, options.model_size, data_root=options.data_root,
                       output_root=options.output_root)
    values = asdict(resolved)
    unknown = sorted(set(options.get) - set(values))
    if unknown:
        raise ConfigError(f"--get {' '.join(unknown)}: no such value; the names are {sorted(values)}")
    for name in options.get:
        value = values[name]
        print(" ".join(map(str, value)) if isinstance(value, list) else value)
    if not options.get:
        print(json.dumps(values, indent=2))
    return resolved
