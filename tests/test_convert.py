"""zemi-convert: a run in the authors' layout (torch.save step files) becomes a Hugging Face
directory that AutoModelForSeq2SeqLM loads as Zemi / FiD and that evaluates to exactly the run's accuracies."""

from __future__ import annotations

import json

import pytest
import torch
from transformers import AutoModelForSeq2SeqLM

from tests.helpers import TINY_PERCEIVER, ZEMI, evaluate, write_run_dir
from zemi.errors import ConfigError
from zemi.models.modeling_t5 import T5ForConditionalGenerationFiD, T5ForConditionalGenerationMultiAug
from zemi.run.evaluation import main as evaluate_main
from zemi.tools.convert import convert

pytestmark = pytest.mark.unit


def authors_run(path, backbone, architecture):
    """An authors'-layout run whose step_2 has open gates and moved fusion weights (a fresh Zemi equals its T5)."""
    run = write_run_dir(path, backbone, architecture=architecture, steps=(1, 2), file_form=True,
                        perceiver=TINY_PERCEIVER)
    state = torch.load(run / "step_2", weights_only=True)
    generator = torch.Generator().manual_seed(0)
    for name, tensor in state.items():
        if name.startswith(("perceiver_resampler", "xattn_stack")) or "gate" in name:
            tensor.copy_(torch.randn(tensor.shape, generator=generator) * 0.3)
        elif name.startswith("encoder.block.0"):
            tensor.add_(torch.randn(tensor.shape, generator=generator) * 0.05)
    torch.save(state, run / "step_2")
    return run


def accuracies(results: dict) -> dict:
    return {(row["task"], row["template"]): row["accuracy"] for row in results["results"]}


@pytest.mark.e2e
@pytest.mark.parametrize("architecture, model_class", [(ZEMI, T5ForConditionalGenerationMultiAug),
                                                        ("FiD", T5ForConditionalGenerationFiD)])
def test_converted_directory_evaluates_like_the_run(tmp_path, backbone_dir, data_root, architecture, model_class):
    run = authors_run(tmp_path / "run", backbone_dir, architecture)
    original = evaluate(run, data_root, tmp_path / "eval_run", step=2)
    converted = convert(run, tmp_path / "hf", step=2, eval_dir=tmp_path / "eval_run")

    files = {path.name for path in converted.iterdir()}
    assert {"config.json", "model.safetensors", "generation_config.json", "tokenizer.json", "args.json",
            "README.md"} <= files
    config = json.loads((converted / "config.json").read_text())
    assert config["model_type"] == ("zemi" if architecture == ZEMI else "zemi_fid")
    assert config["model_architecture"] == architecture
    assert config["perceiver_xattn_config"]["num_aug_sources"] == TINY_PERCEIVER["num_aug_sources"]
    assert isinstance(AutoModelForSeq2SeqLM.from_pretrained(converted), model_class)

    card = (converted / "README.md").read_text()
    header = card.split("---")[1]
    for key in ("library_name: transformers", "license: apache-2.0", "pipeline_tag:", "tags:", "- zemi"):
        assert key in header
    assert "| weather_effect |" in card and "**average**" in card

    paths = [str(p) for p in sorted((data_root / "weather_effect").iterdir())]
    evaluate_main(["--processed_dataset_paths", *paths, "--model_name_or_path", str(converted), "--output_dir",
                   str(tmp_path / "eval_hf"), "--per_device_eval_batch_size", "6"])
    again = json.loads((tmp_path / "eval_hf" / "results.json").read_text())
    assert accuracies(again) == accuracies(original)
    assert {row["step"] for row in again["results"]} == {2}


def test_refuses_to_overwrite_and_names_a_missing_evaluation_step(tmp_path, backbone_dir):
    run = write_run_dir(tmp_path / "run", backbone_dir, architecture="T5", steps=(1,))
    (tmp_path / "eval").mkdir()
    (tmp_path / "eval" / "results.json").write_text(json.dumps({"results": [{"step": 7, "task": "t",
                                                                             "accuracy": 0.5}]}))
    with pytest.raises(ConfigError, match="no results for step 1"):
        convert(run, tmp_path / "hf", eval_dir=tmp_path / "eval")
    convert(run, tmp_path / "hf")
    assert json.loads((tmp_path / "hf" / "config.json").read_text())["model_type"] == "t5"
    with pytest.raises(ConfigError, match="--overwrite"):
        convert(run, tmp_path / "hf")
