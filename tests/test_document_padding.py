"""--document_padding reaches the collator of both entry points: `longest` (the authors' Zemi padding, to the
batch's longest document) is recorded in the run's args.json and announced by a start-up warning that Zemi scores
then depend on the batch; the default pads Zemi's documents to --aug_max_length and warns of nothing."""

from __future__ import annotations

import json

import pytest

from tests.helpers import TINY_PERCEIVER, ZEMI, common_flags, logged, method_flags, write_run_dir
from zemi import eval_original_task_only_xattn, multi_task_fine_tune_xattn
from zemi.run.config import EvalConfig, TrainConfig, parse_evaluation, parse_training

pytestmark = pytest.mark.e2e

WARNING_SOURCE = "zemi.run.method"


def batch_warnings(messages: list[str]) -> list[str]:
    return [message for message in messages if "--document_padding longest" in message]


def test_training_passes_the_flag_to_its_collator(tmp_path, backbone_dir, data_root, perceiver_json):
    _, flags = method_flags("zemi", backbone_dir, perceiver_json)
    flags += common_flags(data_root, tmp_path / "zemi", batch=1, epochs=1) + ["--max_train_steps", "2"]
    with logged(WARNING_SOURCE) as messages:
        run_dir = multi_task_fine_tune_xattn.main(flags + ["--document_padding", "longest"])
    assert len(batch_warnings(messages)) == 1
    assert json.loads((run_dir / "args.json").read_text())["document_padding"] == "longest"


def test_evaluation_passes_the_flag_to_its_collator(tmp_path, backbone_dir, data_root):
    run = write_run_dir(tmp_path / "run", backbone_dir, architecture=ZEMI, steps=(1,), perceiver=TINY_PERCEIVER)
    paths = [str(p) for p in sorted((data_root / "weather_effect").iterdir())]
    found = {}
    for padding in ("max_length", "longest"):
        with logged(WARNING_SOURCE) as messages:
            eval_original_task_only_xattn.main([
                "--processed_dataset_paths", *paths, "--model_name_or_path", str(run), "--saved_model_step", "1",
                "--output_dir", str(tmp_path / padding), "--per_device_eval_batch_size", "1",
                "--document_padding", padding])
        found[padding] = batch_warnings(messages)
        assert (tmp_path / padding / "results.json").is_file()
    assert not found["max_length"] and len(found["longest"]) == 1


PARSE = {TrainConfig: parse_training, EvalConfig: parse_evaluation}


@pytest.mark.unit
@pytest.mark.parametrize("config_class, required", [
    (TrainConfig, ["--output_dir", "o", "--lm_name", "t5", "--dataset_root_path", "d", "--dataset_dir_names", "x"]),
    (EvalConfig, ["--processed_dataset_paths", "p", "--model_name_or_path", "m", "--output_dir", "o"]),
])
def test_the_flag_defaults_to_our_padding_and_takes_only_its_two_values(config_class, required):
    assert PARSE[config_class](required).document_padding == "max_length"
    assert PARSE[config_class](required + ["--document_padding", "longest"]).document_padding == "longest"
    with pytest.raises(SystemExit):
        PARSE[config_class](required + ["--document_padding", "shortest"])
