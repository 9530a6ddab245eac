"""End to end on fixtures: the real entry points train all four methods, evaluate them and write Table 1; the
authors' evaluation command lines run unchanged; runs on two processes match one."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from tests.helpers import REPO, STEPS_PER_EPOCH, common_flags, launch, method_flags, read_csv
from zemi import eval_original_task_only, eval_original_task_only_xattn, multi_task_fine_tune_baseline, \
    multi_task_fine_tune_xattn
from zemi.tools import report

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def runs(tmp_path_factory, backbone_dir, data_root, perceiver_json) -> dict[str, Path]:
    """The four methods, each trained for two epochs through its real entry point's main(argv)."""
    root = tmp_path_factory.mktemp("runs")
    trained = {}
    for method in ("no_aug", "concat", "fid", "zemi"):
        family, flags = method_flags(method, backbone_dir, perceiver_json)
        entry = multi_task_fine_tune_baseline if family == "baseline" else multi_task_fine_tune_xattn
        trained[method] = entry.main(flags + common_flags(data_root, root / f"{method}_base"))
    return trained


def test_training_writes_a_complete_run_directory(runs):
    for method, run_dir in runs.items():
        names = {p.name for p in run_dir.iterdir()}
        assert {"args.json", "dataset_mixture_config.json", "results.csv", "train_log.csv", "tokenizer.json",
                f"step_{STEPS_PER_EPOCH}", f"step_{2 * STEPS_PER_EPOCH}"} <= names, method
        assert ("perceiver_config.json" in names) == (method in ("fid", "zemi"))
        assert (run_dir / f"step_{STEPS_PER_EPOCH}" / "model.safetensors").is_file()
        results = read_csv(run_dir / "results.csv")
        assert [int(r["epoch"]) for r in results] == [1, 2]
        assert [int(r["step"]) for r in results] == [STEPS_PER_EPOCH, 2 * STEPS_PER_EPOCH]
        assert all(float(r["dev_loss"]) > 0 for r in results)
        mixture = json.loads((run_dir / "dataset_mixture_config.json").read_text())
        assert len(mixture["sampled_list"]) == 4 and sum("_score_eval" in p for p in mixture["sampled_list"]) <= 1
        assert json.loads((run_dir / "args.json").read_text())["learning_rate"] == 3e-3
        assert not list(run_dir.glob(".*tmp*"))


def test_loss_falls_for_every_method(runs):
    for method, run_dir in runs.items():
        losses = [float(row["loss"]) for row in read_csv(run_dir / "train_log.csv")]
        assert len(losses) == 2 * STEPS_PER_EPOCH
        first, last = sum(losses[:6]) / 6, sum(losses[-6:]) / 6
        assert last < 0.7 * first, (method, first, last)
        dev = [float(r["dev_loss"]) for r in read_csv(run_dir / "results.csv")]
        assert dev[1] < dev[0], method


def test_evaluation_and_report_for_all_four_methods(runs, data_root, tmp_path):
    eval_dirs = []
    for method, run_dir in runs.items():
        entry = eval_original_task_only_xattn if method in ("fid", "zemi") else eval_original_task_only
        for task in ("fruit_taste", "weather_effect"):
            out = tmp_path / "eval" / run_dir.name / task
            entry.main(["--processed_dataset_paths", *map(str, sorted((data_root / task).iterdir())),
                        "--model_name_or_path", str(run_dir), "--saved_model_step", "-1", "--output_dir", str(out),
                        "--per_device_eval_batch_size", "5"])
            eval_dirs.append(out)
            rows = json.loads((out / "results.json").read_text())["results"]
            assert {(r["step"], r["template"]) for r in rows} == {
                (step, f"{task}_{tpl}") for step in (STEPS_PER_EPOCH, 2 * STEPS_PER_EPOCH) for tpl in ("plain", "with_options")}
            assert all(0 <= r["accuracy"] <= 1 and r["num_examples"] == 12 for r in rows)
            assert all(r["gold_not_in_choices"] == (1 if task == "fruit_taste" else 0) for r in rows)
    labels = [f"--label={m}_base={m}" for m in runs]
    report.main([*map(str, eval_dirs), "--output_dir", str(tmp_path / "report"), *labels])
    table = json.loads((tmp_path / "report" / "results.json").read_text())
    assert list(table) == ["no_aug", "concat", "fid", "zemi"]
    for entry in table.values():
        assert set(entry["tasks"]) == {"fruit_taste", "weather_effect"}
        assert entry["checkpoint"] in (STEPS_PER_EPOCH, 2 * STEPS_PER_EPOCH)
        assert entry["average"] == pytest.approx(sum(entry["tasks"].values()) / 2)
    markdown = (tmp_path / "report" / "table1.md").read_text()
    assert markdown.count("| zemi |") == 2 and "fruit_taste" in markdown
    assert (tmp_path / "report" / "table1.png").read_bytes()[:4] == b"\x89PNG"


def test_the_authors_eval_command_lines_run_unchanged(runs, data_root, tmp_path):
    """Flags of eval/run_eval_finetuned_mixture_xattn.sh and _baseline.sh, launched on the script file from inside
    zemi/ as the authors did; _FiD.sh's flags (those of _xattn.sh and --concat_input_at_augmentation) through the
    same script's main (its launch would repeat the first one's)."""
    paths = [str(p) for p in sorted((data_root / "weather_effect").iterdir())]
    def xattn(run: Path, out: Path) -> list[str]:
        return ["--processed_dataset_paths", *paths, "--model_name_or_path", str(run), "--saved_model_step", "-1",
                "--output_dir", str(out), "--per_device_eval_batch_size", "4", "--max_length", "1024",
                "--aug_max_length", "256", "--target_max_length", "256"]

    baseline = ["--processed_dataset_paths", *paths, "--model_name_or_path", str(runs["concat"]), "--step_num", "-1",
                "--output_dir", str(tmp_path / "concat"), "--per_device_eval_batch_size", "8"]
    for script, args in (("eval_original_task_only_xattn.py", xattn(runs["zemi"], tmp_path / "zemi")),
                         ("eval_original_task_only.py", baseline)):
        done = launch("", args, script=script, cwd=REPO / "zemi")
        assert done.returncode == 0, done.stderr[-3000:]
    eval_original_task_only_xattn.main(xattn(runs["fid"], tmp_path / "fid") + ["--concat_input_at_augmentation"])
    for out in ("zemi", "concat", "fid"):
        assert len(json.loads((tmp_path / out / "results.json").read_text())["results"]) == 4


def test_two_processes_follow_the_loss_curve_of_one(no_aug_one_process, no_aug_two_processes):
    curve_one = [float(r["loss"]) for r in read_csv(no_aug_one_process / "train_log.csv")]
    curve_two = [float(r["loss"]) for r in read_csv(no_aug_two_processes / "train_log.csv")]
    assert len(curve_one) == len(curve_two) == STEPS_PER_EPOCH
    assert max(abs(a - b) for a, b in zip(curve_one, curve_two)) < 1e-4
    assert curve_one[-1] < curve_one[0]


# A run killed with SIGKILL mid-epoch and resumed: test_interrupted_runs.py (four kill points, each checked against
# an uninterrupted run's weights, loss log, results.csv and evaluation).


def test_the_authors_checkpoint_layout_evaluates_like_our_run_directory(runs, data_root, tmp_path):
    """The authors' downloads hold `torch.save` state dicts as step_N files (Zemi, FiD) beside args.json and
    perceiver_config.json; the same weights in that layout give the same accuracies as in our run directory."""
    from zemi.run.run_directory import RunDirectory

    for method in ("zemi", "fid"):
        ours = RunDirectory.open(runs[method])
        authors = tmp_path / f"authors_{method}"
        authors.mkdir()
        for name in ("args.json", "perceiver_config.json"):
            (authors / name).write_text((ours.path / name).read_text())
        step, checkpoint = ours.checkpoints()[-1]
        torch.save(ours.load_model(checkpoint).state_dict(), authors / f"step_{step}")
        assert (authors / f"step_{step}").is_file()
        accuracies = {}
        for run_dir in (ours.path, authors):
            out = tmp_path / "eval" / run_dir.name
            eval_original_task_only_xattn.main([
                "--processed_dataset_paths", *map(str, sorted((data_root / "weather_effect").iterdir())),
                "--model_name_or_path", str(run_dir), "--saved_model_step", str(step), "--output_dir", str(out)])
            rows = json.loads((out / "results.json").read_text())["results"]
            accuracies[run_dir] = {row["template"]: row["accuracy"] for row in rows}
        assert accuracies[ours.path] == accuracies[authors] and len(accuracies[authors]) == 2
