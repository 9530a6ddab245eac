"""Impossible settings fail at start-up, through the real entry points, with a message naming the flag (or file) and
how to fix it: before any data is read (the dataset paths given here do not exist, so reading them would fail
differently), before any weights are loaded, and before anything is written to the output directory."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.helpers import TINY_PERCEIVER, ZEMI, common_flags, method_flags, write_run_dir
from zemi import eval_original_task_only_xattn, multi_task_fine_tune_baseline, multi_task_fine_tune_xattn
from zemi.configs import perceiver_config_path
from zemi.data.validation import DataError

pytestmark = [pytest.mark.unit, pytest.mark.usefixtures("one_thread")]  # tiny models: one thread is fastest

TRAIN_ERRORS = [
    (["--model_architecture", "SharedEncoderDecoder_Multi"], r"--model_architecture 'SharedEncoderDecoder_Multi' is "
                                                             r"unknown; valid names: \['FiD', 'Shared"),
    (["--max_length", "0"], "--max_length must be a positive integer, got 0"),
    (["--aug_max_length", "-5"], "--aug_max_length must be a positive integer, got -5"),
    (["--target_max_length", "0"], "--target_max_length must be a positive integer"),
    (["--per_device_train_batch_size", "0"], "--per_device_train_batch_size must be a positive integer"),
    (["--per_device_eval_batch_size", "0"], "--per_device_eval_batch_size must be a positive integer"),
    (["--num_train_epochs", "0"], "--num_train_epochs must be a positive integer"),
    (["--gradient_accumulation_steps", "0"], "--gradient_accumulation_steps must be a positive integer"),
    (["--max_train_steps", "0"], "--max_train_steps must be a positive integer, got 0"),
    (["--checkpointing_steps", "-1"], "--checkpointing_steps must be >= 0"),
    (["--sample_n", "0"], r"--sample_n must be -1 \(all templates\) or a positive number, got 0"),
    (["--fit_aug_num", "0"], r"--fit_aug_num must be -1 \(off\) or a positive number"),
    (["--num_shots", "0"], "--num_shots must be a positive integer, got 0"),
    (["--warmup_ratio", "1.5"], r"--warmup_ratio must be within \[0, 1\], got 1.5"),
    (["--warmup_ratio", "-0.1"], r"--warmup_ratio must be within \[0, 1\]"),
    (["--num_warmup_steps", "-1"], "--num_warmup_steps must be >= 0"),
    (["--learning_rate", "0"], "--learning_rate must be positive"),
    (["--fusion_learning_rate", "0"], "--fusion_learning_rate must be positive, got 0.0"),
    (["--resume_from_checkpoint", "/no/such/state"], "--resume_from_checkpoint /no/such/state is not a training state"),
]


@pytest.fixture(scope="module")
def weightless_backbone(tmp_path_factory, backbone_dir) -> Path:
    """The backbone's config and tokenizer without its weights: a check that loaded weights would fail on it."""
    path = tmp_path_factory.mktemp("weightless")
    for item in backbone_dir.iterdir():
        if not item.name.endswith(".safetensors"):
            shutil.copy(item, path / item.name)
    return path


def perceiver_file(directory: Path, **changes) -> Path:
    path = directory / f"perceiver_{len(list(directory.glob('perceiver_*')))}.json"
    path.write_text(json.dumps({**TINY_PERCEIVER, **changes}))
    return path


def train_args(tmp_path: Path, backbone: Path, perceiver: Path, *extra: str, method: str = "zemi") -> list[str]:
    _, flags = method_flags(method, backbone, perceiver)
    return flags + common_flags(tmp_path / "no_such_root", tmp_path / "out") + list(extra)


@pytest.mark.parametrize("extra, message", TRAIN_ERRORS, ids=[" ".join(e) for e, _ in TRAIN_ERRORS])
def test_impossible_training_settings_fail_at_start_up(extra, message, tmp_path, weightless_backbone):
    with pytest.raises(ValueError, match=message):
        multi_task_fine_tune_xattn.main(train_args(tmp_path, weightless_backbone, perceiver_file(tmp_path), *extra))
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("changes, message", [
    ({"dim": 64}, r"perceiver dim 64 does not match the T5 backbone's d_model 32; use .* or set \"dim\": 32"),
    ({"num_latents": 0}, "num_latents must be a positive integer, got 0"),
    ({"num_latent": 64}, r"unknown field\(s\) \['num_latent'\]"),
    ({"cross_attn_every": 0}, "cross_attn_every must be a positive integer, got 0"),
    ({"only_attend_immediate_media": True}, "only_attend_immediate_media must be false"),
])
def test_perceiver_settings_that_cannot_work_fail_at_start_up(changes, message, tmp_path, weightless_backbone):
    perceiver = perceiver_file(tmp_path, **changes)
    with pytest.raises(ValueError, match=message) as error:
        multi_task_fine_tune_xattn.main(train_args(tmp_path, weightless_backbone, perceiver))
    assert str(perceiver) in str(error.value)
    assert not (tmp_path / "out").exists()


def test_entry_points_refuse_the_other_familys_methods(tmp_path, weightless_backbone):
    perceiver = perceiver_file(tmp_path)
    with pytest.raises(ValueError, match="trained by zemi.multi_task_fine_tune_xattn"):
        multi_task_fine_tune_baseline.main(train_args(tmp_path, weightless_backbone, perceiver))
    with pytest.raises(ValueError, match="--concat_aug_num must be >= 0"):
        multi_task_fine_tune_baseline.main(train_args(tmp_path, weightless_backbone, perceiver, "--concat_aug_num",
                                                      "-1", method="concat"))
    # Without --perceiver_config, Zemi takes the preset's for the model size: the paper's base one, too wide here.
    with pytest.raises(ValueError, match="perceiver dim 768 does not match the T5 backbone's d_model 32") as error:
        multi_task_fine_tune_xattn.main([a for a in train_args(tmp_path, weightless_backbone, perceiver)
                                         if a not in ("--perceiver_config", str(perceiver))])
    assert str(perceiver_config_path("base")) in str(error.value)
    assert not (tmp_path / "out").exists()


@pytest.fixture(scope="module")
def saved_zemi(tmp_path_factory, backbone_dir) -> Path:
    """A finished Zemi run whose checkpoint has 5 document slots."""
    return write_run_dir(tmp_path_factory.mktemp("saved") / "zemi", backbone_dir, architecture=ZEMI, steps=(5,),
                         perceiver=TINY_PERCEIVER)


def test_continuing_from_a_checkpoint_with_fewer_slots_than_documents_fails_and_says_how_to_fold(
        tmp_path, backbone_dir, saved_zemi):
    """--saved_model_dir: the model keeps its 5 slots, but a --perceiver_config with num_aug_sources 10 would feed
    10 documents per example. The fix the message gives is then accepted (the run goes on to read its data)."""
    ten_slots = perceiver_file(tmp_path, num_aug_sources=10)
    saved = ["--saved_model_dir", str(saved_zemi), "--saved_model_step", "5"]
    with pytest.raises(ValueError) as error:
        multi_task_fine_tune_xattn.main(train_args(tmp_path, backbone_dir, ten_slots, *saved))
    assert str(error.value) == (
        f"{saved_zemi / 'step_5'} has 5 document slots (perceiver_resampler.time_pos_emb (5, 1, 32)) but this run "
        f"feeds 10 documents per example (num_aug_sources 10 in --perceiver_config {ten_slots}); set num_aug_sources "
        f"to 5 in --perceiver_config {ten_slots} and pass --fit_aug_num 10 to fold the 10 documents into its 5 slots")
    assert not (tmp_path / "out").exists()
    five_slots = perceiver_file(tmp_path)
    with pytest.raises(DataError, match="no_such_root/animal_colors does not exist"):
        multi_task_fine_tune_xattn.main(train_args(tmp_path, backbone_dir, five_slots, *saved, "--fit_aug_num", "10"))


def test_continuing_from_another_architecture_or_settings_fails_at_start_up(tmp_path, backbone_dir, saved_zemi):
    saved = ["--saved_model_dir", str(saved_zemi), "--saved_model_step", "5"]
    perceiver = perceiver_file(tmp_path)
    with pytest.raises(ValueError, match=f"--saved_model_dir {saved_zemi} holds a SharedEncoderDecoder_MultiAug "
                                         "model but --model_architecture is FiD"):
        multi_task_fine_tune_xattn.main(train_args(tmp_path, backbone_dir, perceiver, *saved, method="fid"))
    with pytest.raises(FileNotFoundError, match=r"step_7 does not exist; steps present: \[5\]"):
        multi_task_fine_tune_xattn.main(train_args(tmp_path, backbone_dir, perceiver, "--saved_model_dir",
                                                   str(saved_zemi), "--saved_model_step", "7"))
    wider = perceiver_file(tmp_path, xattn_ff_mult=4)
    with pytest.raises(ValueError, match=r"differs from .*perceiver_config.json in \['xattn_ff_mult'\]"):
        multi_task_fine_tune_xattn.main(train_args(tmp_path, backbone_dir, wider, *saved))
    assert not (tmp_path / "out").exists()


# --- evaluation ----------------------------------------------------------------------------------------------------


def eval_args(tmp_path: Path, run_dir: Path, *extra: str) -> list[str]:
    return ["--processed_dataset_paths", str(tmp_path / "no_such_task" / "template"), "--model_name_or_path",
            str(run_dir), "--saved_model_step", "-1", "--output_dir", str(tmp_path / "out"), *extra]


@pytest.mark.parametrize("extra, message", [
    (["--per_device_eval_batch_size", "0"], "--per_device_eval_batch_size must be a positive integer, got 0"),
    (["--max_length", "0"], "--max_length must be a positive integer, got 0"),
    (["--aug_max_length", "-1"], "--aug_max_length must be a positive integer, got -1"),
    (["--fit_aug_num", "0"], r"--fit_aug_num must be -1 \(off\) or a positive number"),
    (["--concat_aug_num", "-2"], "--concat_aug_num must be >= 0"),
    (["--saved_model_step", "-2"], r"--saved_model_step must be -1 \(every checkpoint\) or a step"),
    (["--num_proc", "0"], "--num_proc must be a positive integer"),
])
def test_impossible_evaluation_settings_fail_at_start_up(extra, message, tmp_path, saved_zemi):
    with pytest.raises(ValueError, match=message):
        eval_original_task_only_xattn.main(eval_args(tmp_path, saved_zemi, *extra))
    assert not (tmp_path / "out").exists()


def copy_run(run_dir: Path, destination: Path, *, args: dict | None = None, perceiver: dict | None = None) -> Path:
    shutil.copytree(run_dir, destination)
    if args is not None:
        values = json.loads((destination / "args.json").read_text())
        (destination / "args.json").write_text(json.dumps({**values, **args}))
    if perceiver is not None:
        (destination / "perceiver_config.json").write_text(json.dumps({**TINY_PERCEIVER, **perceiver}))
    return destination


def test_a_run_directory_that_cannot_work_fails_at_start_up(tmp_path, saved_zemi):
    unknown = copy_run(saved_zemi, tmp_path / "unknown", args={"model_architecture": "Zemi"})
    with pytest.raises(ValueError, match=r"args.json: model_architecture: unknown model architecture 'Zemi'"):
        eval_original_task_only_xattn.main(eval_args(tmp_path, unknown))
    wide = copy_run(saved_zemi, tmp_path / "wide", perceiver={"dim": 64})
    with pytest.raises(ValueError, match=f"{wide / 'perceiver_config.json'}: perceiver dim 64 does not match the T5 "
                                         "backbone's d_model 32"):
        eval_original_task_only_xattn.main(eval_args(tmp_path, wide))
    assert not (tmp_path / "out").exists()


def test_evaluating_a_checkpoint_with_fewer_slots_than_documents_fails_and_says_how_to_fold(
        tmp_path, saved_zemi, data_root):
    """perceiver_config.json of the run says 10 slots; its checkpoint has 5. Folding, as the message says, works."""
    more = copy_run(saved_zemi, tmp_path / "more", perceiver={"num_aug_sources": 10})
    with pytest.raises(ValueError, match=r"step_5 has 5 document slots .* feeds 10 documents per example "
                                         r"\(num_aug_sources 10 in .*more/perceiver_config.json\); set "
                                         r"num_aug_sources to 5 .* and pass --fit_aug_num 10"):
        eval_original_task_only_xattn.main(eval_args(tmp_path, more))
    assert not (tmp_path / "out").exists()
    templates = [str(p) for p in sorted((data_root / "weather_effect").iterdir())]
    eval_original_task_only_xattn.main(["--processed_dataset_paths", *templates, "--model_name_or_path",
                                        str(saved_zemi), "--fit_aug_num", "10", "--output_dir", str(tmp_path / "out")])
    rows = json.loads((tmp_path / "out" / "results.json").read_text())["results"]
    assert [row["num_examples"] for row in rows] == [12, 12]
