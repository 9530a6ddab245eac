"""The training scripts: they fail in seconds, with directions, when the data or the model is not there; they pass
zemi-train and zemi-eval the preset and only the overrides that are set; SEEDS trains and evaluates one run per seed
and the report aggregates them."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
from pathlib import Path
import pytest

pytestmark = pytest.mark.e2e

import pytest

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[1]
DOWNLOAD = "https://uofi.box.com/s/wnt6cv7icuir4q3wb2a6viuyklme5dga"


def run_script(name: str, **env: str) -> subprocess.CompletedProcess:
    full_env = dict(os.environ, NUM_GPUS="0", ZEMI_QUIET="1", HF_HUB_OFFLINE="1", **env)
    return subprocess.run(["bash", f"training/{name}"], cwd=REPO, env=full_env, capture_output=True, text=True,
                          timeout=120)


def test_missing_data_root_says_where_the_data_is_and_how_to_build_it(tmp_path, backbone_dir):
    done = run_script("zemi_base.sh", LM_BASE=str(backbone_dir), AUG_DATA_ROOT=str(tmp_path / "nowhere"),
                      OUTPUT_SRC_ROOT=str(tmp_path / "out"))
    assert done.returncode == 2
    assert "nowhere does not exist" in done.stderr
    assert DOWNLOAD in done.stderr and "zemi-build-data" in done.stderr
    assert not (tmp_path / "out").exists()


def test_a_missing_dataset_dir_is_named(tmp_path, backbone_dir, data_root):
    done = run_script("fid_base.sh", LM_BASE=str(backbone_dir), AUG_DATA_ROOT=str(data_root),
                      TRAIN_MIXTURE="animal_colors cosmos_qa", EVAL_TASKS="fruit_taste",
                      OUTPUT_SRC_ROOT=str(tmp_path / "out"))
    assert done.returncode == 2
    assert f"{data_root}/cosmos_qa is missing" in done.stderr


def test_unreachable_model_fails_fast(tmp_path, data_root):
    done = run_script("no_aug_base.sh", LM_BASE="google/t5-base-lm-adapt-does-not-exist",
                      AUG_DATA_ROOT=str(data_root), OUTPUT_SRC_ROOT=str(tmp_path / "out"))
    assert done.returncode == 2
    assert "cannot load model 'google/t5-base-lm-adapt-does-not-exist'" in done.stderr


def test_skip_train_needs_a_run_directory_and_says_where_checkpoints_go(tmp_path, data_root):
    done = run_script("zemi_large.sh", SKIP_TRAIN="1", AUG_DATA_ROOT=str(data_root),
                      OUTPUT_SRC_ROOT=str(tmp_path / "out"))
    assert done.returncode == 2
    assert "p3_finetuning/zemi_large has no args.json" in done.stderr and DOWNLOAD in done.stderr


def test_an_unknown_preset_ends_the_script_at_once(tmp_path):
    done = run_script("zemi_base.sh", ZEMI_PRESET="nope", OUTPUT_SRC_ROOT=str(tmp_path / "out"))
    assert done.returncode == 2
    assert "cannot read preset 'nope'" in done.stderr and "unbound variable" not in done.stderr
    assert not (tmp_path / "out").exists()


def launched(stderr: str, command: str) -> list[list[str]]:
    """The arguments of every `-m zemi <command>` a script printed before running it (the `+ ...` lines)."""
    found = []
    for line in stderr.splitlines():
        words = shlex.split(line[2:]) if line.startswith("+ ") else []
        for i in range(1, len(words) - 1):
            if words[i - 1:i + 2] == ["-m", "zemi", command]:
                found.append(words[i + 2:])
    return found


def value(args: list[str], flag: str) -> str | None:
    return args[args.index(flag) + 1] if flag in args else None


def test_seeds_train_and_evaluate_one_run_each_and_the_report_aggregates_them(tmp_path, backbone_dir, data_root):
    """SEEDS="42 43" through no_aug_base.sh on the tiny fixtures: seed 42's run keeps the paper's name, seed 43's
    gets _seed43, each is evaluated, and Table 1's No Aug row holds both seeds. Only the overrides set here (and the
    preset) reach the commands."""
    out = tmp_path / "out"
    done = run_script("no_aug_base.sh", SEEDS="42 43", LM_BASE=str(backbone_dir), AUG_DATA_ROOT=str(data_root),
                      TRAIN_MIXTURE="animal_colors animal_homes", EVAL_TASKS="weather_effect", OUTPUT_SRC_ROOT=str(out),
                      BS_BASE="4", EVAL_BS="6", MAX_LENGTH="48", AUG_MAX_LENGTH="24", TARGET_MAX_LENGTH="8",
                      MIXED_PRECISION="no", CPU_THREADS="1", EXTRA_TRAIN_ARGS="--max_train_steps 2 --report_to none",
                      EXTRA_EVAL_ARGS="--report_to none")
    assert done.returncode == 0, done.stderr[-4000:]
    trainings, evaluations = launched(done.stderr, "train"), launched(done.stderr, "eval")
    assert [value(args, "--seed") for args in trainings] == ["42", "43"]
    assert [value(args, "--output_dir") for args in trainings] == [str(out / "p3_finetuning" / name)
                                                                   for name in ("no_aug_base", "no_aug_base_seed43")]
    for args in trainings:  # the preset and the overrides that are set, nothing of the recipe the preset gives
        assert value(args, "--preset") == "paper" and value(args, "--lm_name") == str(backbone_dir)
        assert args[args.index("--dataset_dir_names") + 1:][:2] == ["animal_colors", "animal_homes"]
        assert not {"--learning_rate", "--num_train_epochs", "--sample_n", "--weight_decay"} & set(args)
    assert [value(args, "--output_dir") for args in evaluations] == [str(out / "eval" / name)
                                                                     for name in ("no_aug_base", "no_aug_base_seed43")]
    assert all(value(args, "--tasks") == "weather_effect" for args in evaluations)
    for name, seed in (("no_aug_base", 42), ("no_aug_base_seed43", 43)):
        assert json.loads((out / "p3_finetuning" / name / "args.json").read_text())["seed"] == seed
    report = json.loads((out / "report" / "base" / "results.json").read_text())
    assert list(report) == ["no_aug"]
    assert sorted(run["seed"] for run in report["no_aug"]["seeds"]) == [42, 43]
