"""Task specs for the 30aug builder: the authors' 15 datasets (hub location, query fields, promptsource names) and
custom local tasks (raw splits as jsonl plus promptsource-format templates), all loaded and prompted the same way.
"""

from __future__ import annotations

import functools
import logging
import random
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import yaml

from zemi.data.task_lists import HELD_OUT_TASKS, TRAINING_MIXTURE
from zemi.data.validation import DataError, check_task_config, check_templates, read_jsonl, read_yaml
from zemi.errors import ConfigError

logger = logging.getLogger(__name__)

# Every public dataset has a Parquet export on this branch of its hub repository, laid out as
# `<config>/<split>/*.parquet`, including the datasets whose main branch still holds a loading script that
# datasets >= 4 no longer runs. Set `revision` to a commit of that branch to pin the exact bytes.
PARQUET_BRANCH = "refs/convert/parquet"
SPLITS = ("train", "validation", "test")
# Which promptsource templates are built: the authors used the original-task templates with the answer choices
# in the prompt; the other filters are for experiments.
TEMPLATE_FILTERS = ("original_task_choices_in_prompt", "original_task", "all")
TASK_FILE = "task.yaml"
TEMPLATES_FILE = "templates.yaml"


@dataclass(frozen=True)
class TaskSpec:
    """One dataset of the mixture and where its raw examples and templates come from."""

    dataset_dir: str  # the 30aug directory, e.g. "super_glue_cb"
    dataset_name: str  # promptsource's dataset name, e.g. "super_glue"
    subset_name: str | None  # promptsource's subset name, e.g. "cb"
    query_fields: tuple[str, ...]  # raw fields whose texts are the BM25 queries
    hub_path: str | None = None  # hub repository of the raw data
    parquet_config: str | None = None  # config directory on the Parquet branch
    revision: str = PARQUET_BRANCH
    local_dir: Path | None = None  # custom task: raw `<split>.jsonl` files and `templates.yaml`
    template_filter: str = "original_task_choices_in_prompt"
    splits: tuple[str, ...] = field(default=SPLITS)


def _hub_task(dataset_dir, dataset_name, subset_name, query_fields, hub_path, parquet_config) -> TaskSpec:
    return TaskSpec(dataset_dir, dataset_name, subset_name, tuple(query_fields), hub_path, parquet_config)


BUILTIN_TASKS: dict[str, TaskSpec] = {
    spec.dataset_dir: spec
    for spec in [
        _hub_task("cos_e_v1.11", "cos_e", "v1.11", ["question"], "Salesforce/cos_e", "v1.11"),
        _hub_task("cosmos_qa", "cosmos_qa", None, ["question"], "allenai/cosmos_qa", "default"),
        _hub_task("dream", "dream", None, ["question"], "dataset-org/dream", "plain_text"),
        _hub_task("qasc", "qasc", None, ["question"], "allenai/qasc", "default"),
        _hub_task("quartz", "quartz", None, ["question"], "allenai/quartz", "default"),
        _hub_task("sciq", "sciq", None, ["question"], "allenai/sciq", "default"),
        _hub_task("social_i_qa", "social_i_qa", None, ["context"], "allenai/social_i_qa", "default"),
        _hub_task("wiqa", "wiqa", None, ["question_stem"], "allenai/wiqa", "default"),
        _hub_task("openbookqa_main", "openbookqa", "main", ["question_stem"], "allenai/openbookqa", "main"),
        _hub_task("piqa", "piqa", None, ["goal"], "ybisk/piqa", "plain_text"),
        _hub_task("super_glue_wic", "super_glue", "wic", ["sentence1", "sentence2"], "aps/super_glue", "wic"),
        _hub_task("super_glue_cb", "super_glue", "cb", ["hypothesis"], "aps/super_glue", "cb"),
        _hub_task("super_glue_copa", "super_glue", "copa", ["premise"], "aps/super_glue", "copa"),
        _hub_task("rotten_tomatoes", "rotten_tomatoes", None, ["text"],
                  "cornell-movie-review-data/rotten_tomatoes", "default"),
        _hub_task("hellaswag", "hellaswag", None, ["ctx"], "Rowan/hellaswag", "default"),
    ]
}
TASK_GROUPS = {"train": list(TRAINING_MIXTURE), "eval": list(HELD_OUT_TASKS)}
TASK_GROUPS["all"] = TASK_GROUPS["train"] + TASK_GROUPS["eval"]


def load_custom_task(directory: str | Path) -> TaskSpec:
    """A local task: `task.yaml` (dataset_dir, query_fields; optional dataset_name, subset_name, template_filter),
    raw splits `train.jsonl` / `validation.jsonl` / `test.jsonl`, templates in promptsource's `templates.yaml`."""
    directory = Path(directory)
    path = directory / TASK_FILE
    config = read_yaml(path, what="a mapping with dataset_dir and query_fields")
    check_task_config(config, path=path, template_filters=TEMPLATE_FILTERS)
    splits = tuple(split for split in SPLITS if (directory / f"{split}.jsonl").exists())
    if "train" not in splits and "validation" not in splits:
        raise DataError(f"{directory} has neither train.jsonl nor validation.jsonl (one raw example per line)")
    return TaskSpec(
        dataset_dir=config["dataset_dir"],
        dataset_name=config.get("dataset_name", config["dataset_dir"]),
        subset_name=config.get("subset_name"),
        query_fields=tuple(config["query_fields"]),
        local_dir=directory,
        template_filter=config.get("template_filter", TEMPLATE_FILTERS[0]),
        splits=splits,
    )


def resolve_tasks(names: Sequence[str]) -> list[TaskSpec]:
    """Task specs from names: a group (train, eval, all), a built-in dataset_dir, or a custom task directory."""
    specs: list[TaskSpec] = []
    for name in names:
        if name in TASK_GROUPS:
            specs.extend(BUILTIN_TASKS[member] for member in TASK_GROUPS[name])
        elif name in BUILTIN_TASKS:
            specs.append(BUILTIN_TASKS[name])
        elif (Path(name) / TASK_FILE).exists():
            specs.append(load_custom_task(name))
        else:
            raise ConfigError(f"unknown task {name!r}: not a group {sorted(TASK_GROUPS)}, a built-in task "
                             f"{sorted(BUILTIN_TASKS)}, or a directory with {TASK_FILE}")
    seen: set[str] = set()
    unique = [spec for spec in specs if not (spec.dataset_dir in seen or seen.add(spec.dataset_dir))]
    return unique


def load_raw_splits(task: TaskSpec) -> dict[str, list[dict]]:
    """The raw examples of each split the task has, as lists of dicts (custom: jsonl; built-in: the hub)."""
    if task.local_dir is not None:
        return {split: read_jsonl(task.local_dir / f"{split}.jsonl", required=task.query_fields)
                for split in task.splits}
    from datasets import load_dataset

    logger.info("loading %s from %s@%s/%s", task.dataset_dir, task.hub_path, task.revision, task.parquet_config)
    raw = load_dataset(task.hub_path, revision=task.revision, data_dir=task.parquet_config)
    return {split: raw[split].to_list() for split in SPLITS if split in raw}


def _keep_template(template, template_filter: str) -> bool:
    metadata = template.metadata
    if template_filter == "all":
        return True
    if template_filter == "original_task":
        return bool(metadata.original_task)
    return bool(metadata.original_task) and bool(metadata.choices_in_prompt)


def _compile_each_template_once() -> None:
    """promptsource compiles a template's Jinja source again on every `apply()` (95 % of the time spent prompting);
    the compiled template depends only on its source, so its environment keeps each one (same renders)."""
    from promptsource import templates

    if not hasattr(templates.env.from_string, "cache_info"):
        templates.env.from_string = functools.lru_cache(maxsize=1024)(templates.env.from_string)


def load_templates(task: TaskSpec) -> list:
    """The task's promptsource templates that pass its filter, sorted by name."""
    from promptsource.templates import DatasetTemplates, Template

    _compile_each_template_once()

    if task.local_dir is not None:
        path = task.local_dir / TEMPLATES_FILE
        loaded = read_yaml(path, loader=_template_loader(), what="promptsource templates (templates: {id: !Template})")
        templates = check_templates(loaded, path=path, template_class=Template)
    else:
        templates = DatasetTemplates(task.dataset_name, task.subset_name).templates.values()
    kept = [template for template in templates if _keep_template(template, task.template_filter)]
    if not kept:
        raise ConfigError(f"{task.dataset_dir}: no template passes the filter {task.template_filter!r}")
    return sorted(kept, key=lambda template: template.name)


def _template_loader() -> type:
    """A safe YAML loader that knows promptsource's two tags and nothing else: unlike the FullLoader promptsource
    registers them on, it builds no other Python objects. (The Jinja inside a template is still code that
    promptsource runs unsandboxed: use only templates you trust.)"""
    from promptsource.templates import Template

    class TemplateLoader(yaml.SafeLoader):
        pass

    TemplateLoader.add_constructor(Template.yaml_tag, Template.from_yaml)
    TemplateLoader.add_constructor(Template.Metadata.yaml_tag, Template.Metadata.from_yaml)
    return TemplateLoader


def template_dir_name(task: TaskSpec, template_name: str) -> str:
    """The 30aug directory of a template, named as the authors' `process_p3_C4_retrieval_datasets.py` named it:
    `<dataset_dir>_<template name>` with '/' removed and spaces turned into '_', every other character kept
    ("…As a result, C1 or C2?" -> "super_glue_copa_…As_a_result,_C1_or_C2?"). Training samples templates from
    the sorted directory names, so the names decide which templates it trains on."""
    return f"{task.dataset_dir}_{template_name.replace('/', '').replace(' ', '_')}"


def template_seed(task: TaskSpec, template_name: str) -> int:
    """A fixed seed per template: some templates draw random words (jinja `choice`), and rebuilds must agree."""
    return zlib.crc32(template_dir_name(task, template_name).encode("utf-8"))


def apply_template(template, example: dict) -> dict | None:
    """Prompt one raw example as P3 did: None when the template yields no input or is split wrongly; an empty
    target becomes "<NO LABEL>"; answer choices are [] when the template has none."""
    example = {key.replace("-", "_"): value for key, value in example.items()}  # promptsource's removeHyphen
    parts = template.apply(example)
    if len(parts) != 2 or not parts[0]:
        return None
    choices = template.get_answer_choices_list(example) or []
    return {
        "inputs_pretokenized": parts[0],
        "targets_pretokenized": parts[1] or "<NO LABEL>",
        "answer_choices": list(choices),
    }


def prompt_split(task: TaskSpec, template, examples: Sequence[dict]) -> tuple[list[dict], list[int]]:
    """Prompted examples of one split and, for each, the index of its raw example (to attach its documents)."""
    saved_state = random.getstate()
    random.seed(template_seed(task, template.name))
    prompted, sources = [], []
    try:
        for position, example in enumerate(examples):
            row = apply_template(template, example)
            if row is not None:
                prompted.append(row)
                sources.append(position)
    finally:
        random.setstate(saved_state)
    return prompted, sources
