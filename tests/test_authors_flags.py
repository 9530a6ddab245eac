"""Every flag of the authors' argparse definitions (their two training and two evaluation scripts, listed here as data
from their files) is accepted by ours; a flag that selects behaviour we do not have fails with a ConfigError that
says so instead of being ignored; FiD's constructor takes the authors' keyword; and `--error_analysis_dir` writes
what their evaluation wrote, where their error_analysis.py reads it."""

from __future__ import annotations

import json

import pytest
from datasets import Dataset, load_from_disk

from tests.helpers import TINY_PERCEIVER, ZEMI, tiny_t5_config, write_run_dir
from zemi import eval_original_task_only, eval_original_task_only_xattn
from zemi.errors import ConfigError
from zemi.modeling_t5 import T5ForConditionalGenerationFiD
from zemi.run.config import EvalConfig, TrainConfig, parse_evaluation, parse_training

pytestmark = pytest.mark.unit

# (flags of one argument, kind): "bool" is store_true; otherwise a sample value of the argument's type.
TRAIN_XATTN = [  # zemi/multi_task_fine_tune_xattn.py
    (("--model_architecture",), "FiD"), (("-o", "--output_dir"), "out"), (("-m", "--lm_name"), "t5"),
    (("--perceiver_config",), "p.json"), (("-cia", "--concat_input_at_augmentation"), "bool"),
    (("-pa", "--parallelize"), "bool"), (("-eb", "--per_device_eval_batch_size"), "8"),
    (("-tb", "--per_device_train_batch_size"), "4"), (("-ns", "--num_shots"), "16"), (("-lr", "--learning_rate"), "1e-4"),
    (("-ep", "--num_train_epochs"), "10"), (("-ms", "--max_train_steps"), "100"),
    (("-ga", "--gradient_accumulation_steps"), "1"), (("-ie", "--input_eos"), "bool"), (("-db", "--debug"), "bool"),
    (("-ftd", "--filter_dataset"), "bool"), (("-wb", "--wandb_proj"), "proj"), (("-wbrn", "--wandb_run_name"), "run"),
    (("-sd", "--seed"), "42"), (("-cf", "--config_name"), "cfg"), (("-tk", "--tokenizer_name"), "tok"),
    (("-il", "--max_length"), "1024"), (("--aug_max_length",), "256"), (("--fit_aug_num",), "-1"),
    (("-tl", "--target_max_length"), "256"), (("-pml", "--pad_to_max_length"), "bool"),
    (("-st", "--use_slow_tokenizer"), "bool"), (("-wd", "--weight_decay"), "0.01"),
    (("-ls", "--lr_scheduler_type"), "cosine"), (("-ws", "--num_warmup_steps"), "0"), (("-wr", "--warmup_ratio"), "0.25"),
    (("--save_model",), "bool"), (("--use_processed_dataset",), "bool"), (("-ddn", "--dataset_dir_names"), "qasc"),
    (("-sample_n", "--sample_n"), "2"), (("-dr", "--dataset_root_path"), "root"), (("--num_proc",), "16"),
    (("--do_eval",), "bool"), (("--saved_model_dir",), "run"), (("--saved_model_step",), "100"),
]
TRAIN_BASELINE = [  # zemi/multi_task_fine_tune_baseline.py: the xattn flags less the fusion ones, plus these
    (("-m", "--model_name_or_path"), "t5"), (("--concat_aug_num",), "5"),
] + [entry for entry in TRAIN_XATTN if entry[0][-1] not in (
    "--model_architecture", "--lm_name", "--perceiver_config", "--concat_input_at_augmentation", "--aug_max_length",
    "--fit_aug_num")]
EVAL_XATTN = [  # zemi/eval_original_task_only_xattn.py
    (("--fit_aug_num",), "10"), (("--model_architecture",), "FiD"), (("--max_length",), "1024"),
    (("--aug_max_length",), "256"), (("--target_max_length",), "256"), (("-ftd", "--filter_dataset"), "bool"),
    (("-cia", "--concat_input_at_augmentation"), "bool"), (("--pad_to_max_length",), "bool"),
    (("--model_name_or_path",), "run"), (("--saved_model_step",), "-1"), (("--config_name",), "cfg"),
    (("--tokenizer_name",), "tok"), (("--use_slow_tokenizer",), "bool"), (("--per_device_eval_batch_size",), "8"),
    (("--output_dir",), "out"), (("--error_analysis_dir",), "errors"), (("--debug",), "bool"),
    (("--parallelize",), "bool"), (("-pdp", "--processed_dataset_paths"), "tpl"), (("--eval_average",), "bool"),
    (("--calibrate",), "bool"),
]
EVAL_BASELINE = [  # zemi/eval_original_task_only.py
    (("--max_length",), "1024"), (("--target_max_length",), "256"), (("--pad_to_max_length",), "bool"),
    (("--model_name_or_path",), "run"), (("--step_num",), "-1"), (("--concat_aug_num",), "5"),
    (("--filter_dataset",), "bool"), (("--config_name",), "cfg"), (("--tokenizer_name",), "tok"),
    (("--use_slow_tokenizer",), "bool"), (("--per_device_eval_batch_size",), "8"), (("--output_dir",), "out"),
    (("--error_analysis_dir",), "errors"), (("--debug",), "bool"), (("--parallelize",), "bool"),
    (("-pdp", "--processed_dataset_paths"), "tpl"), (("--eval_average",), "bool"),
]
# Flags that select behaviour this project does not have: accepted by the parser, refused by validation.
UNSUPPORTED = {
    TrainConfig: {"--filter_dataset", "--do_eval", "--config_name"},
    EvalConfig: {"--filter_dataset", "--config_name", "--eval_average", "--calibrate"},
}
# Flags that only go in pairs (the authors' script asserts the same).
PAIRED = {"--saved_model_dir": ["--saved_model_step", "100"], "--saved_model_step": ["--saved_model_dir", "run"]}
REQUIRED = {
    TrainConfig: ["--output_dir", "out", "--lm_name", "t5", "--dataset_root_path", "root", "--dataset_dir_names", "qasc"],
    EvalConfig: ["--model_name_or_path", "run", "--output_dir", "out", "--processed_dataset_paths", "tpl"],
}


def cases() -> list:
    found = []
    for script, config_class, flags in (("train_xattn", TrainConfig, TRAIN_XATTN),
                                        ("train_baseline", TrainConfig, TRAIN_BASELINE),
                                        ("eval_xattn", EvalConfig, EVAL_XATTN), ("eval_baseline", EvalConfig, EVAL_BASELINE)):
        for names, value in flags:
            for name in names:
                found.append(pytest.param(config_class, name, value, names[-1], id=f"{script}:{name}"))
    return found


@pytest.mark.unit
@pytest.mark.parametrize("config_class, flag, value, long_name", cases())
def test_every_flag_of_the_authors_scripts_is_accepted_or_refused_with_a_reason(config_class, flag, value, long_name):
    argv = REQUIRED[config_class] + ([flag] if value == "bool" else [flag, value])
    if config_class is TrainConfig:
        argv += PAIRED.get(long_name, [])
    parse = parse_training if config_class is TrainConfig else parse_evaluation  # an unknown flag would exit
    if long_name in UNSUPPORTED[config_class]:
        with pytest.raises(ConfigError, match=f"{long_name}.*not supported"):
            parse(argv)
    else:
        assert isinstance(parse(argv), config_class)


@pytest.mark.unit
def test_fid_takes_and_ignores_the_authors_perceiver_keyword():
    model = T5ForConditionalGenerationFiD(tiny_t5_config(), perceiver_xattn_config=dict(TINY_PERCEIVER))
    assert not hasattr(model, "perceiver_resampler")
    assert sum(p.numel() for p in model.parameters()) == \
        sum(p.numel() for p in T5ForConditionalGenerationFiD(tiny_t5_config()).parameters())


@pytest.mark.e2e
def test_error_analysis_dir_writes_the_authors_layout_that_their_analysis_script_reads(
        tmp_path, backbone_dir, data_root, one_thread):
    """Their eval/run_eval_finetuned_mixture_xattn.sh command (a Zemi run) and eval_original_task_only's (a plain
    T5, which they name step_<--step_num>), each with --error_analysis_dir; then what zemi/error_analysis.py does
    with two such directories: the same indices and targets, and the rows of `dataset` those indices name."""
    run = write_run_dir(tmp_path / "zemi_run", backbone_dir, architecture=ZEMI, steps=(1, 2), perceiver=TINY_PERCEIVER)
    task = data_root / "weather_effect"
    paths = [str(p) for p in sorted(task.iterdir())]
    errors = tmp_path / "error_analysis"
    eval_original_task_only_xattn.main([
        "--processed_dataset_paths", *paths, "--model_name_or_path", str(run), "--saved_model_step", "-1",
        "--output_dir", str(tmp_path / "eval" / "zemi_w_demo"), "--per_device_eval_batch_size", "4",
        "--max_length", "1024", "--aug_max_length", "256", "--target_max_length", "256",
        "--error_analysis_dir", str(errors)])
    eval_original_task_only.main([
        "--processed_dataset_paths", *paths, "--model_name_or_path", str(backbone_dir), "--step_num", "-1",
        "--output_dir", str(tmp_path / "eval" / "t5_no_demo"), "--per_device_eval_batch_size", "8",
        "--error_analysis_dir", str(errors)])

    ours = {(row["step"], row["template"]): row
            for row in json.loads((tmp_path / "eval" / "zemi_w_demo" / "results.json").read_text())["results"]}
    assert sorted(p.name for p in (errors / "zemi_w_demo").iterdir()) == ["step_1", "step_2"]
    assert [p.name for p in (errors / "t5_no_demo").iterdir()] == ["step_-1"]
    for step in (1, 2):
        for path in paths:
            name = f"weather_effect__{path.rsplit('/', 1)[1]}"
            with_demo = errors / "zemi_w_demo" / f"step_{step}" / name
            no_demo = errors / "t5_no_demo" / "step_-1" / name
            results = {d: json.loads((d / "prediction_target_indices.json").read_text()) for d in (with_demo, no_demo)}
            assert all(set(r) == {"predictions", "targets", "indices"} for r in results.values())
            assert results[with_demo]["indices"] == results[no_demo]["indices"] == list(range(12))
            assert results[with_demo]["targets"] == results[no_demo]["targets"]
            predictions = json.loads((tmp_path / "eval" / "zemi_w_demo" /
                                      ours[(step, path.rsplit("/", 1)[1])]["predictions"]).read_text())
            assert results[with_demo]["predictions"] == predictions["predicted"]
            assert results[with_demo]["targets"] == predictions["gold"]
            dataset = load_from_disk(str(with_demo / "dataset"))
            assert isinstance(dataset, Dataset)
            for index, prediction in zip(results[with_demo]["indices"], results[with_demo]["predictions"]):
                row = dataset[index]
                assert {"inputs_pretokenized", "targets_pretokenized", "chosen_examples"} <= set(row)
                assert row["answer_choices"][prediction]
                gold = results[with_demo]["targets"][results[with_demo]["indices"].index(index)]
                assert row["answer_choices"][gold] == row["targets_pretokenized"].strip()
