"""Training killed with SIGKILL at several points resumes to the same run: the same final weights, the same loss log
(no step missing, none twice), the same results.csv and the same evaluation numbers as a run never interrupted; and
right after each kill, every checkpoint under a real name is complete (a crash mid-write leaves only a temporary).
An evaluation killed between two templates resumes to the results of one never interrupted."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file

from tests.helpers import (STEPS_PER_EPOCH, common_flags, final_weights, method_flags, read_csv, run_module,
                           subprocess_env, write_run_dir)
from zemi import eval_original_task_only_xattn, multi_task_fine_tune_xattn

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("one_thread")]  # tiny models: one thread is fastest

LAST_STEP = 2 * STEPS_PER_EPOCH
CHECKPOINTING_STEPS = 4  # resumable state at steps 4, 8, ..., and at every epoch end

# kill point -> (ZEMI_CRASH_AT, what must exist right after the kill, the temporary the kill must leave behind)
KILL_POINTS = {
    # after optimizer step 23 (epoch 2): the newest state is checkpoints/step_20
    "between_steps": ("step:23", ["step_18", "checkpoints/step_20"], None),
    # step_36 written to its temporary directory, not yet renamed: step_18 must be intact, step_36 absent
    "mid_checkpoint_write": ("checkpoint_write:2", ["step_18", "checkpoints/step_36"], ".step_36.tmp-*"),
    # the third training state (step 12) written, not yet renamed: checkpoints/step_8 must be intact
    "mid_state_write": ("state_write:3", ["checkpoints/step_8"], "checkpoints/.step_12.tmp-*"),
    # inside epoch 2's validation loop (its second batch), after the state of step 36 was saved
    "mid_validation": ("validation:10", ["step_18", "checkpoints/step_36"], None),
}


def train_args(output_dir: Path, backbone: Path, data_root: Path, perceiver: Path) -> list[str]:
    _, flags = method_flags("zemi", backbone, perceiver)
    # Validation batches of 4 (8 per epoch) put "validation:10" in epoch 2's loop, whatever the preset's default.
    return flags + ["--checkpointing_steps", str(CHECKPOINTING_STEPS), "--resume_from_checkpoint", "latest",
                    "--per_device_eval_batch_size", "4"] + common_flags(data_root, output_dir)


def train_killed(output_dir: Path, backbone: Path, data_root: Path, perceiver: Path, crash_at: str):
    """Training in its own process, which kills itself with SIGKILL at `crash_at` (zemi/faults.py)."""
    return run_module("zemi.multi_task_fine_tune_xattn", train_args(output_dir, backbone, data_root, perceiver),
                      env=subprocess_env(ZEMI_CRASH_AT=crash_at))


def train(output_dir: Path, backbone: Path, data_root: Path, perceiver: Path) -> Path:
    """Training to its end in this process (starting, or resuming what a killed process left)."""
    return multi_task_fine_tune_xattn.main(train_args(output_dir, backbone, data_root, perceiver))


def evaluate(run_dir: Path, data_root: Path, output_dir: Path) -> list[dict]:
    paths = [str(p) for task in ("fruit_taste", "weather_effect") for p in sorted((data_root / task).iterdir())]
    eval_original_task_only_xattn.main(["--processed_dataset_paths", *paths, "--model_name_or_path", str(run_dir),
                                        "--saved_model_step", str(LAST_STEP), "--output_dir", str(output_dir),
                                        "--per_device_eval_batch_size", "5"])
    rows = json.loads((output_dir / "results.json").read_text())["results"]
    return [{k: row[k] for k in ("step", "task", "template", "accuracy", "num_examples", "gold_not_in_choices")}
            for row in rows]


@pytest.fixture(scope="module")
def reference(tmp_path_factory, backbone_dir, data_root, perceiver_json) -> dict:
    """One uninterrupted run, shared by every kill point, and its evaluation."""
    root = tmp_path_factory.mktemp("reference")
    train(root / "run", backbone_dir, data_root, perceiver_json)
    return {"run": root / "run", "evaluation": evaluate(root / "run", data_root, root / "eval")}


def assert_complete_and_as_in_reference(run_dir: Path, reference_dir: Path, names: list[str]) -> None:
    """Every checkpoint and training state under a real name is whole and equals the reference's at that step."""
    for name in names:
        assert (run_dir / name).is_dir(), f"{name} should have survived the kill"
    for step_dir in run_dir.glob("step_*"):
        got = load_file(step_dir / "model.safetensors")
        expected = load_file(reference_dir / step_dir.name / "model.safetensors")
        assert got.keys() == expected.keys()
        assert all(torch.allclose(got[k], expected[k], atol=1e-6, rtol=0) for k in got), step_dir.name
    for state_dir in (run_dir / "checkpoints").glob("step_*"):
        state = json.loads((state_dir / "trainer_state.json").read_text())
        assert state["global_step"] == int(state_dir.name.split("_")[1])
        with safe_open(state_dir / "model.safetensors", framework="pt") as handle:  # fails on a truncated file
            assert len(list(handle.keys())) > 0
        assert (state_dir / "optimizer.bin").stat().st_size > 0


@pytest.mark.parametrize("kill_point", list(KILL_POINTS))
def test_a_run_killed_and_resumed_equals_an_uninterrupted_one(kill_point, reference, tmp_path, backbone_dir,
                                                              data_root, perceiver_json):
    crash_at, survivors, temporary = KILL_POINTS[kill_point]
    run_dir = tmp_path / "run"
    killed = train_killed(run_dir, backbone_dir, data_root, perceiver_json, crash_at)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    assert not (run_dir / f"step_{LAST_STEP}").exists()
    assert_complete_and_as_in_reference(run_dir, reference["run"], survivors)
    if temporary is not None:  # the kill really happened mid-write, and the half-written copy is not under a real name
        assert list(run_dir.glob(temporary)), f"no {temporary}: the kill did not happen mid-write"

    train(run_dir, backbone_dir, data_root, perceiver_json)
    expected, got = final_weights(reference["run"]), final_weights(run_dir)
    assert expected.keys() == got.keys()
    for name in expected:
        assert torch.allclose(expected[name], got[name], atol=1e-6, rtol=0), name
    log, reference_log = read_csv(run_dir / "train_log.csv"), read_csv(reference["run"] / "train_log.csv")
    assert [int(row["step"]) for row in log] == list(range(1, LAST_STEP + 1))  # no step missing, none twice
    assert [float(row["loss"]) for row in log] == pytest.approx([float(row["loss"]) for row in reference_log],
                                                                abs=1e-6)
    assert read_csv(run_dir / "results.csv") == read_csv(reference["run"] / "results.csv")
    assert not list(run_dir.glob(".*tmp*")) and not list((run_dir / "checkpoints").glob(".*"))
    assert evaluate(run_dir, data_root, tmp_path / "eval") == reference["evaluation"]


def test_an_evaluation_killed_between_templates_resumes_to_the_results_of_an_uninterrupted_one(
        tmp_path, backbone_dir, data_root):
    run_dir = write_run_dir(tmp_path / "run", backbone_dir, steps=(1, 2))
    paths = [str(p) for task in ("fruit_taste", "weather_effect") for p in sorted((data_root / task).iterdir())]

    def args(output_dir: Path) -> list[str]:
        return ["--processed_dataset_paths", *paths, "--model_name_or_path", str(run_dir), "--output_dir",
                str(output_dir), "--per_device_eval_batch_size", "5", "--max_length", "48", "--target_max_length", "8"]

    killed = run_module("zemi", ["eval", *args(tmp_path / "eval")],
                        env=subprocess_env(ZEMI_CRASH_AT="evaluation_row:3"))
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    written = json.loads((tmp_path / "eval" / "results.json").read_text())["results"]
    assert len(written) == 3
    kept = {row["predictions"]: (tmp_path / "eval" / row["predictions"]).stat().st_mtime_ns for row in written}

    eval_original_task_only_xattn.main(args(tmp_path / "eval"))  # resumed here, in this process
    eval_original_task_only_xattn.main(args(tmp_path / "fresh"))
    got, expected = (json.loads((tmp_path / name / "results.json").read_text()) for name in ("eval", "fresh"))
    assert got == expected and len(got["results"]) == 8
    assert {name: (tmp_path / "eval" / name).stat().st_mtime_ns for name in kept} == kept  # resumed, not redone
    for row in expected["results"]:
        name = row["predictions"]
        assert (tmp_path / "eval" / name).read_text() == (tmp_path / "fresh" / name).read_text()
