"""One training run's checkpoint (the authors' download or ours) as a self-contained Hugging Face model directory.

    zemi-convert output/p3_finetuning/zemi_base --step 18000 --output hf/zemi_base \\
        --eval_dir output/eval/zemi_base

reads `step_N` as evaluation does (a `torch.save` file with weights_only=True and strict keys, or a save_pretrained
directory) and writes safetensors weights, a config that carries the fusion settings (model_type "zemi" or
"zemi_fid"; "t5" for No Aug and Concat), the tokenizer, the generation config, the run's args.json (the text rules
evaluation and `zemi-predict` read) and a model card (README.md) with the Hub's metadata and, given --eval_dir,
the accuracies. `AutoModelForSeq2SeqLM.from_pretrained(DIR)` loads it after `import zemi.models`; `zemi-eval` and
`zemi-predict` take DIR like a run directory.
"""

from __future__ import annotations

import json
import logging
import shutil
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import torch
from transformers import AutoTokenizer

from zemi.cli import argument, option, parse_config, setup_logging
from zemi.data.task_lists import TRAINING_MIXTURE
from zemi.errors import ConfigError, MissingInputError, ZemiError
from zemi.io import publish, temporary_sibling, write_json_atomic, write_text_atomic
from zemi.models.registry import build_model, get_architecture
from zemi.run.run_directory import RunDirectory

logger = logging.getLogger(__name__)

METHOD_NAMES = {"FiD": "FiD baseline", "SharedEncoderDecoder_MultiAug": "Zemi",
                "SharedEncoderDecoder_MultiAug_NoTanhGate": "Zemi (no tanh gate ablation)",
                "SharedEncoderDecoder_MultiAug_FrozenAugEncoder": "Zemi (frozen document encoder ablation)"}
PAPER = "https://arxiv.org/abs/2210.00185"
# The README's citation: ACL Findings 2023 (arXiv 2210.00185).
CITATION = [
    "@inproceedings{wang2023zemi,",
    "  title={Zemi: Learning Zero-Shot Semi-Parametric Language Models from Multiple Tasks},",
    "  author={Wang, Zhenhailong and Pan, Xiaoman and Yu, Dian and Yu, Dong and Chen, Jianshu and Ji, Heng},",
    "  booktitle={Findings of the Association for Computational Linguistics: ACL 2023},",
    "  year={2023},",
    "  eprint={2210.00185},",
    "  archivePrefix={arXiv}",
    "}",
]


class ConversionMismatchError(ZemiError):
    """The written directory does not load back to the checkpoint's weights."""


def convert(run_dir: str | Path, output: str | Path, *, step: int | None = None, eval_dir: str | Path | None = None,
            overwrite: bool = False) -> Path:
    """Write checkpoint `step` (default: the last) of `run_dir` to `output`, atomically; returns `output`."""
    run = RunDirectory.open(run_dir)
    step, checkpoint = run.checkpoints(-1 if step is None else step)[-1]
    output = Path(output)
    if output.exists() and not overwrite:
        raise ConfigError(f"--output {output} exists; pass --overwrite to replace it")
    results = evaluation_rows(Path(eval_dir), step) if eval_dir is not None else None
    model = run.load_model(checkpoint)
    tokenizer = AutoTokenizer.from_pretrained(run.tokenizer_source())
    tmp = temporary_sibling(output)
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp, safe_serialization=True)  # also writes generation_config.json
    tokenizer.save_pretrained(tmp)
    write_json_atomic(tmp / "args.json", {**run.args, "checkpoint_step": step,
                                          "converted_from": str(Path(run_dir).resolve())})
    write_text_atomic(tmp / "README.md", model_card(run, step, results))
    check_round_trip(model, run.architecture, tmp)
    publish(tmp, output)
    logger.info("wrote %s (step %d of %s)", output, step, run_dir)
    return output


def check_round_trip(model, architecture: str, written: Path) -> None:
    """The written directory loads back to exactly the checkpoint's weights (tied and untied heads alike)."""
    expected = model.state_dict()
    loaded = build_model(architecture, written).state_dict()
    differing = sorted(name for name in expected if name not in loaded or not torch.equal(expected[name], loaded[name]))
    if differing or loaded.keys() != expected.keys():
        raise ConversionMismatchError(f"{written}: weights differ from the checkpoint after saving: {differing[:10]}")


def evaluation_rows(eval_dir: Path, step: int) -> list[dict]:
    """The rows of `eval_dir/results.json` for checkpoint `step`."""
    results_file = eval_dir / "results.json"
    if not results_file.is_file():
        raise MissingInputError(f"--eval_dir {eval_dir}: no results.json (an evaluation output directory of "
                                "zemi-eval)")
    rows = [row for row in json.loads(results_file.read_text())["results"] if row["step"] == step]
    if not rows:
        raise ConfigError(f"--eval_dir {eval_dir}: results.json has no results for step {step}")
    return rows


def model_card(run: RunDirectory, step: int, results: list[dict] | None) -> str:
    architecture = run.architecture
    backbone = run.args.get("lm_name") or run.args.get("model_name_or_path") or ""
    hub_backbone = backbone if backbone.count("/") == 1 and not Path(backbone).exists() else None
    paper_data = set(run.args.get("dataset_dir_names") or ()) <= set(TRAINING_MIXTURE) and \
        bool(run.args.get("dataset_dir_names"))
    tags = ["zemi", "t5", "retrieval-augmented-generation", "zero-shot", "multitask-prompted-training"]
    if get_architecture(architecture).uses_documents:
        tags.append("fid" if architecture == "FiD" else "perceiver-resampler")
    metadata = ["---", "library_name: transformers", "license: apache-2.0", "language:", "- en",
                "pipeline_tag: text2text-generation", "tags:", *[f"- {tag}" for tag in tags]]
    if hub_backbone:
        metadata.append(f"base_model: {hub_backbone}")
    if paper_data:
        metadata += ["datasets:", "- bigscience/P3", "- allenai/c4"]
    metadata.append("---")
    method = method_name(run)
    documents = _documents_read(run)
    lines = [
        *metadata, "",
        f"# {method}: step {step} of `{run.path.name}`", "",
        f"A {method} model of [Zemi: Learning Zero-Shot Semi-Parametric Language Models from Multiple Tasks]({PAPER}) "
        f"(Wang et al., ACL Findings 2023), converted from a training run by `zemi-convert` (model "
        f"architecture `{architecture}`, backbone `{backbone or 'unknown'}`, {documents}).", "",
        "## Use", "",
        "```python",
        "import zemi.models  # registers Zemi and FiD with transformers' Auto classes",
        "from transformers import AutoModelForSeq2SeqLM, AutoTokenizer",
        "",
        'model = AutoModelForSeq2SeqLM.from_pretrained("PATH")',
        'tokenizer = AutoTokenizer.from_pretrained("PATH")',
        "```", "",
        "Answering a question with BM25 retrieval, with the text rules the model was trained with (args.json):", "",
        "```bash",
        'zemi-predict --model PATH --index INDEX_DIR --prompt "..." --choices "yes" "no"',
        "```", "",
    ]
    if results:
        lines += ["## Zero-shot evaluation (rank classification)", "",
                  "| task | accuracy (mean over templates) | templates |", "|---|---|---|"]
        by_task: dict[str, list[float]] = {}
        for row in results:
            by_task.setdefault(row["task"], []).append(row["accuracy"])
        for task, values in sorted(by_task.items()):
            lines.append(f"| {task} | {100 * statistics.fmean(values):.2f} | {len(values)} |")
        average = statistics.fmean(statistics.fmean(values) for values in by_task.values())
        lines += [f"| **average** | **{100 * average:.2f}** | |", ""]
    lines += ["## Citation", "", "```bibtex", *CITATION, "```", ""]
    return "\n".join(lines)


def method_name(run: RunDirectory) -> str:
    """What the run is: a plain T5 is No Aug without documents and Concat with them."""
    if run.architecture != "T5":
        return METHOD_NAMES.get(run.architecture, run.architecture)
    concat = run.args.get("concat_aug_num") or 0
    return f"Concat baseline ({concat} documents)" if concat else "No Aug baseline"


def _documents_read(run: RunDirectory) -> str:
    if run.perceiver_config is not None and get_architecture(run.architecture).uses_documents:
        return f"{run.perceiver_config.num_aug_sources} retrieved documents per input, each in its own slot"
    concat = run.args.get("concat_aug_num") or 0
    return f"{concat} retrieved documents appended to the input" if concat else "no retrieved documents"


@dataclass
class ConvertOptions:
    run_dir: str = argument("a run directory: args.json, perceiver_config.json (Zemi, FiD), step_N")
    output: str = option(None, "the Hugging Face model directory to write", required=True)
    step: int | None = option(None, "the checkpoint to convert (default: the last)")
    eval_dir: str | None = option(None, "this run's evaluation output (results.json): its accuracies go into the "
                                  "model card")
    overwrite: bool = option(False, "replace an existing --output")


def main(argv: Sequence[str] | None = None) -> Path:
    setup_logging()
    args = parse_config(ConvertOptions, argv, __doc__)
    return convert(args.run_dir, args.output, step=args.step, eval_dir=args.eval_dir, overwrite=args.overwrite)
