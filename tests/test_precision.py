"""The fast path gives the reference path's results: exactly in fp32, and within tolerance in bf16."""

from __future__ import annotations

import random

import pytest
import torch
from datasets import DatasetDict
from transformers import AutoTokenizer

from tests.fixture_data import _eval_examples, _template_split
from tests.helpers import read_csv, run_module
from zemi import multi_task_fine_tune_xattn
from zemi.data.collate import Collator
from zemi.data.mixture import load_eval_templates
from zemi.data.processing import Featurizer, MaxLengths, TextRules
from zemi.run.objectives import rank_choices, rank_choices_reencoding
from zemi.modeling_t5 import build_model

pytestmark = pytest.mark.e2e


def train_args(backbone, data_root, perceiver, output_dir, precision: str) -> list[str]:
    """One epoch of Zemi (18 steps)."""
    return [
        "--model_architecture", "SharedEncoderDecoder_MultiAug", "--lm_name", str(backbone), "--perceiver_config",
        str(perceiver), "--dataset_root_path", str(data_root), "--dataset_dir_names", "animal_colors", "animal_homes",
        "--num_train_epochs", "1", "--learning_rate", "3e-3", "--warmup_ratio", "0.1", "--max_length", "48",
        "--aug_max_length", "24", "--target_max_length", "8", "--mixed_precision", precision,
        "--output_dir", str(output_dir)]


def loss_curve(run) -> list[float]:
    return [float(row["loss"]) for row in read_csv(run / "train_log.csv")]


@pytest.fixture(scope="module")
def trained(tmp_path_factory, backbone_without_dropout, data_root, perceiver_json):
    """The fp32 run, in this process (no dropout, so that the bf16 run's curve can be held against it)."""
    output_dir = tmp_path_factory.mktemp("precision") / "fp32"
    return multi_task_fine_tune_xattn.main(train_args(backbone_without_dropout, data_root, perceiver_json,
                                                      output_dir, "no"))


@pytest.fixture(scope="module")
def large_eval_set(tmp_path_factory):
    """A few hundred held-out examples, so that "99 % agreement" means something."""
    root = tmp_path_factory.mktemp("large_eval")
    rows = _eval_examples(random.Random(1), 150, "fruit") + _eval_examples(random.Random(2), 150, "weather")
    DatasetDict({"validation": _template_split(rows, "with_options", with_choices=True)}).save_to_disk(
        str(root / "mixed" / "mixed_with_options"))
    return load_eval_templates([root / "mixed" / "mixed_with_options"])[0]


def predictions(model, template, tokenizer, rank, dtype) -> torch.Tensor:
    featurizer = Featurizer(tokenizer, TextRules(num_documents=5), MaxLengths(48, 24, 8))
    rows = template.dataset.map(featurizer.eval_features, batched=True, remove_columns=template.dataset.column_names)
    collate = Collator(tokenizer.pad_token_id)
    out = []
    for start in range(0, len(rows), 16):
        batch = collate([rows[i] for i in range(start, min(start + 16, len(rows)))])
        with torch.autocast("cpu", dtype=dtype, enabled=dtype != torch.float32):
            out.append(rank(model, batch))
    return torch.cat(out)


def test_fp32_fast_path_predicts_exactly_like_the_reference_path(trained, large_eval_set):
    tokenizer = AutoTokenizer.from_pretrained(trained)
    step = max(trained.glob("step_*"), key=lambda p: int(p.name.split("_")[1]))
    reference = build_model("SharedEncoderDecoder_MultiAug", step, attn_implementation="eager").eval()
    fast = build_model("SharedEncoderDecoder_MultiAug", step, attn_implementation="sdpa").eval()
    assert reference.config._attn_implementation == "eager" and fast.config._attn_implementation == "sdpa"
    expected = predictions(reference, large_eval_set, tokenizer, rank_choices_reencoding, torch.float32)
    got = predictions(fast, large_eval_set, tokenizer, rank_choices, torch.float32)
    assert torch.equal(expected, got)


def test_bf16_predictions_agree_with_fp32_on_99_percent(trained, large_eval_set):
    tokenizer = AutoTokenizer.from_pretrained(trained)
    step = max(trained.glob("step_*"), key=lambda p: int(p.name.split("_")[1]))
    model = build_model("SharedEncoderDecoder_MultiAug", step).eval()
    fp32 = predictions(model, large_eval_set, tokenizer, rank_choices, torch.float32)
    bf16 = predictions(model, large_eval_set, tokenizer, rank_choices, torch.bfloat16)
    assert len(fp32) == 300
    assert (fp32 == bf16).float().mean() >= 0.99


def test_bf16_training_loss_stays_within_2_percent_of_fp32(tmp_path, trained, backbone_without_dropout, data_root,
                                                           perceiver_json):
    """bf16 in its own process: accelerate fixes the precision once per process."""
    done = run_module("zemi.multi_task_fine_tune_xattn",
                      train_args(backbone_without_dropout, data_root, perceiver_json, tmp_path / "bf16", "bf16"))
    assert done.returncode == 0, done.stderr[-3000:]
    fp32, bf16 = loss_curve(trained), loss_curve(tmp_path / "bf16")
    assert len(fp32) == len(bf16) == 18
    worst = max(abs(a - b) / a for a, b in zip(fp32, bf16))
    assert worst <= 0.02, worst
