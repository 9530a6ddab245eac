"""The training scripts fail in seconds, with directions, when the data or the model is not there."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
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
    assert DOWNLOAD in done.stderr and "zemi.data.build" in done.stderr
    assert not (tmp_path / "out").exists()


def test_a_missing_dataset_dir_is_named(tmp_path, backbone_dir, data_root):
    done = run_script("fid_base.sh", LM_BASE=str(backbone_dir), AUG_DATA_ROOT=str(data_root),
                      TRAIN_MIXTURE="animal_colors cosmos_qa", EVAL_TASKS="fruit_taste",
                      OUTPUT_SRC_ROOT=str(tmp_path / "out"))
    assert done.returncode == 2
    assert "cosmos_qa is missing" in done.stderr


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
