"""The presets resolved in Python: `--preset` and `--model_size` give training and evaluation every recipe value,
backbone, perceiver config, data path and task list of zemi/run/presets.py; a flag given explicitly wins; evaluation
takes the preset's held-out tasks under its data root; `zemi-preset --get` answers the training scripts."""

from __future__ import annotations

import contextlib
import io
import json

import pytest

from tests.helpers import REPO
from zemi.configs import perceiver_config_path
from zemi.data.task_lists import HELD_OUT_TASKS, TRAINING_MIXTURE
from zemi.errors import ConfigError, MissingInputError
from zemi.run import presets
from zemi.run.config import parse_evaluation, parse_training
from zemi.run.presets import DEMO, PAPER

pytestmark = pytest.mark.unit

DATA = str(REPO / "data")
ZEMI = ["--model_architecture", "SharedEncoderDecoder_MultiAug"]


def train(*argv: str):
    return parse_training(["--output_dir", "out", *argv])


def test_without_a_preset_training_takes_the_papers_recipe_backbone_data_and_mixture():
    config = train(*ZEMI)
    for name, value in PAPER.recipe.items():
        assert getattr(config, name) == value, name
    assert (config.per_device_train_batch_size, config.per_device_eval_batch_size) == (4, 8)
    assert config.lm_name == "google/t5-base-lm-adapt"
    assert config.perceiver_config == str(perceiver_config_path("base"))
    assert config.dataset_root_path == "data/p3_c4_document_level_chosen_examples/30aug"
    assert config.dataset_dir_names == list(TRAINING_MIXTURE)


def test_the_large_size_takes_its_backbone_batch_and_perceiver_config():
    config = train(*ZEMI, "--model_size", "large")
    assert (config.lm_name, config.per_device_train_batch_size) == ("google/t5-large-lm-adapt", 1)
    assert config.perceiver_config == str(perceiver_config_path("large"))


def test_no_aug_and_concat_get_no_perceiver_config():
    assert train().perceiver_config is None
    assert train("--concat_aug_num", "5").perceiver_config is None


def test_the_demo_preset_resolves_its_paths_under_the_data_and_output_roots():
    config = train(*ZEMI, "--preset", "demo", "--data_root", DATA, "--output_root", "/runs/demo")
    for name, value in DEMO.recipe.items():
        assert getattr(config, name) == value, name
    assert (config.per_device_train_batch_size, config.per_device_eval_batch_size) == (16, 32)
    assert config.lm_name == f"{DATA}/demo/backbone"
    assert config.perceiver_config == f"{DATA}/demo/perceiver_config.json"
    assert config.dataset_root_path == "/runs/demo/data/30aug"
    assert config.dataset_dir_names == json.loads((REPO / "data/demo/tasks/mixture.json").read_text())["train"]


def test_a_flag_given_explicitly_wins_over_the_preset():
    config = train(*ZEMI, "--preset", "demo", "--data_root", DATA, "-lr", "0.5", "--per_device_train_batch_size", "2",
                   "--perceiver_config", "mine.json", "--dataset_dir_names", "wn_synonym", "--num_shots", "7")
    assert (config.learning_rate, config.per_device_train_batch_size) == (0.5, 2)
    assert (config.perceiver_config, config.dataset_dir_names, config.num_shots) == ("mine.json", ["wn_synonym"], 7)
    assert config.num_train_epochs == DEMO.recipe["num_train_epochs"]


def test_the_demos_task_lists_are_read_under_the_data_root(tmp_path):
    with pytest.raises(MissingInputError) as error:
        train("--preset", "demo", "--data_root", str(tmp_path))
    assert str(tmp_path / "demo" / "tasks" / "mixture.json") in str(error.value) and "--data_root" in str(error.value)


def test_evaluation_takes_the_presets_held_out_tasks_under_its_data_root(data_root):
    config = parse_evaluation(["--model_name_or_path", "run", "--output_dir", "out", "--dataset_root_path",
                               str(data_root), "--tasks", "weather_effect", "fruit_taste"])
    expected = [str(path) for task in ("weather_effect", "fruit_taste") for path in sorted((data_root / task).iterdir())]
    assert config.processed_dataset_paths == expected  # what the scripts' glob <root>/<task>/* gave
    default = parse_evaluation(["--model_name_or_path", "run", "--output_dir", "out", "--processed_dataset_paths", "t"])
    assert default.tasks == list(HELD_OUT_TASKS) and default.per_device_eval_batch_size == PAPER.eval_batch_size
    assert default.dataset_root_path == "data/p3_c4_document_level_chosen_examples/30aug"


def test_evaluating_a_missing_held_out_task_names_it_and_the_root(data_root):
    with pytest.raises(MissingInputError) as error:
        parse_evaluation(["--model_name_or_path", "run", "--output_dir", "out", "--dataset_root_path", str(data_root),
                          "--tasks", "no_such_task"])
    assert str(data_root / "no_such_task") in str(error.value) and "--tasks" in str(error.value)


def test_evaluations_help_marks_the_required_and_shows_where_the_templates_come_from(capsys):
    with pytest.raises(SystemExit):
        parse_evaluation(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "A run directory (ours or the authors' download) or a T5 name (required)" in text
    assert "(default: every template dir of --tasks under --dataset_root_path)" in text
    assert f"(default: {' '.join(HELD_OUT_TASKS)})" in text


def printed(*argv: str) -> str:
    output = io.StringIO()
    with contextlib.redirect_stdout(output):
        presets.main(list(argv))
    return output.getvalue()


def test_zemi_preset_prints_the_values_the_scripts_ask_for():
    lines = printed("--preset", "demo", "--data_root", DATA, "--output_root", "/o", "--get", "eval_tasks",
                    "report_dir", "output_root").splitlines()
    assert lines == [" ".join(json.loads((REPO / "data/demo/tasks/mixture.json").read_text())["eval"]), "/o", "/o"]
    resolved = json.loads(printed("--model_size", "large"))
    assert resolved["lm_name"] == "google/t5-large-lm-adapt" and resolved["report_dir"] == "output/report/large"
    with pytest.raises(ConfigError, match="--get nope: no such value"):
        printed("--get", "nope")


def test_every_recipe_value_is_a_training_option():
    from zemi.run.config import TrainConfig

    fields = TrainConfig.__dataclass_fields__
    for preset in presets.PRESETS.values():
        assert set(preset.recipe) <= set(fields)


def test_an_abbreviated_preset_flag_selects_the_same_defaults():
    """argparse takes `--pres` for `--preset`; the preset's defaults must follow what the parser understood."""
    assert train(*ZEMI, "--pres", "demo", "--data_root", DATA) == train(*ZEMI, "--preset", "demo", "--data_root", DATA)
