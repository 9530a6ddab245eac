"""Table 1 (zemi-report): chance levels; averages only over the tasks every method has; --label must name a run;
directories joined into one method must have evaluated alike; intervals on every number, paired comparisons and
seeds from the per-example files; a report into a used directory equals a fresh one."""

from __future__ import annotations

import json
from functools import partial
from pathlib import Path

import numpy as np
import pytest

from tests.evaluation_files import ZEMI, Template, settings_for, write_eval_dir
from tests.helpers import logged, read_csv, run_entry_here
from zemi.tools.report import main, write_report

pytestmark = pytest.mark.unit

TASKS = ("copa", "hellaswag", "piqa", "wic")


def eval_dir(path: Path, method: str, rows: list[tuple[str, str, float, float | None]]) -> Path:
    """A results.json of the old form: accuracies only (no settings, seed or per-example files)."""
    path.mkdir(parents=True)
    results = []
    for task, template, accuracy, chance in rows:
        row = {"step": 5, "template_path": f"/data/{task}/{template}", "task": task, "template": template,
               "accuracy": accuracy, "num_examples": 10, "gold_not_in_choices": 0}
        if chance is not None:
            row["chance"] = chance
        results.append(row)
    (path / "results.json").write_text(json.dumps({"model": method, "method": method, "results": results}))
    return path


def predictions(task: str, template: str, right: np.ndarray, step: int = 1) -> Template:
    """A template where the model is right exactly on `right` (2 choices; gold alternates)."""
    gold = np.arange(len(right)) % 2
    return Template(task, template, gold, np.where(right, gold, 1 - gold), step=step)


def correctness(seed: int, accuracy: float, n: int = 200) -> np.ndarray:
    return np.random.default_rng(seed).random(n) < accuracy


def method_dir(root: Path, run: str, accuracies: dict[str, float], *, seed: int | None = None, step: int = 1,
               architecture: str = "T5", documents_read: int = 0, base: dict | None = None, fix: float = 0.0,
               templates=("a", "b"), **settings) -> Path:
    """An evaluation directory over `accuracies`' tasks; with `base` ({task: correctness}), the method is right
    where the base is, and on a share `fix` of the base's errors."""
    items = []
    for number, (task, accuracy) in enumerate(accuracies.items()):
        right = correctness(1000 * (seed or 0) + number, accuracy) if base is None else base[task].copy()
        if base is not None:
            errors = np.flatnonzero(~right)
            right[errors[: int(fix * len(errors))]] = True
        items += [predictions(task, template, right, step) for template in templates]
    return write_eval_dir(root / run, run, items, seed=seed, architecture=architecture,
                          settings=settings_for(architecture, documents_read, **settings))


cli = partial(run_entry_here, main)  # zemi-report in this process: (status, stdout, stderr)


def test_chance_levels_are_averaged_over_templates_and_drawn_per_task(tmp_path):
    ours = eval_dir(tmp_path / "ours", "zemi", [("copa", "a", 0.6, 0.5), ("copa", "b", 0.7, 0.5),
                                                ("hellaswag", "a", 0.3, 0.25), ("hellaswag", "b", 0.4, 1 / 3)])
    authors = eval_dir(tmp_path / "authors", "authors", [("copa", "a", 0.65, None), ("wic", "a", 0.5, None)])
    with logged("zemi.tools.report") as warnings:
        write_report([ours, authors], tmp_path / "report")
    assert any("no chance level for ['wic']" in message for message in warnings)
    table = json.loads((tmp_path / "report" / "results.json").read_text())
    assert table["zemi"]["chance"] == pytest.approx({"copa": 0.5, "hellaswag": (0.25 + 1 / 3) / 2})
    assert table["authors"]["chance"] == {"copa": None, "wic": None}
    chance_row = [line for line in (tmp_path / "report" / "table1.md").read_text().splitlines()
                  if line.startswith("| *Chance*")]
    assert chance_row == ["| *Chance* | – | 50.00 | 29.17 | – | 50.00 |"]  # copa, hellaswag, wic; Average: copa
    csv_rows = {(row["method"], row["task"]): row["chance"] for row in read_csv(tmp_path / "report" / "table1.csv")}
    assert csv_rows[("zemi", "copa")] == "0.5" and csv_rows[("authors", "wic")] == ""
    assert (tmp_path / "report" / "table1.png").read_bytes()[:4] == b"\x89PNG"


def test_the_average_is_over_the_tasks_every_method_has(tmp_path, capsys):
    no_aug = method_dir(tmp_path, "no_aug_base", {"copa": 0.5, "hellaswag": 0.3, "piqa": 0.6, "wic": 0.5})
    zemi = method_dir(tmp_path, "zemi_base", {"copa": 0.7, "piqa": 0.8}, architecture=ZEMI, documents_read=5)
    code, out, err = cli([str(no_aug), str(zemi), "--output_dir", str(tmp_path / "report")], capsys)
    assert code == 0, err
    table = json.loads((tmp_path / "report" / "results.json").read_text())
    for method in ("no_aug_base", "zemi_base"):
        entry = table[method]
        assert entry["average"] == pytest.approx(np.mean([entry["tasks"]["copa"], entry["tasks"]["piqa"]]))
        assert entry["average_tasks"] == ["copa", "piqa"]
    assert table["zemi_base"]["missing_tasks"] == ["hellaswag", "wic"] and table["no_aug_base"]["missing_tasks"] == []
    header = out.splitlines()[0]
    assert header == "| Method | Checkpoint | copa | hellaswag | piqa | wic | Average of 2/4 |"
    assert "zemi_base lacks hellaswag, wic" in out


def test_no_common_task_leaves_the_average_out_and_says_why(tmp_path):
    a = method_dir(tmp_path, "no_aug", {"copa": 0.5})
    b = method_dir(tmp_path, "zemi", {"wic": 0.7}, architecture=ZEMI, documents_read=5)
    write_report([a, b], tmp_path / "report")
    table = json.loads((tmp_path / "report" / "results.json").read_text())
    assert table["no_aug"]["average"] is None and table["zemi"]["average"] is None
    assert "no task was evaluated for every method" in (tmp_path / "report" / "table1.md").read_text()


def test_a_label_must_name_a_run_and_help_says_what_a_run_is(tmp_path, capsys):
    no_aug = method_dir(tmp_path, "no_aug", {"copa": 0.5})
    zemi = method_dir(tmp_path, "zemi_base", {"copa": 0.7}, architecture=ZEMI, documents_read=5)
    for label in ("eval_zemi_again=Zemi", "zemi=Zemi"):
        code, _, err = cli([str(no_aug), str(zemi), "--label", label, "--output_dir", str(tmp_path / "r")], capsys)
        assert code == 2 and err.startswith("error: ")
        assert label in err and "'zemi_base'" in err and "'no_aug'" in err and str(zemi) in err
    assert not (tmp_path / "r").exists()
    code, _, err = cli([str(zemi), "--label", "zemi_base", "--output_dir", str(tmp_path / "r")], capsys)
    assert code == 2 and "RUN=NAME" in err
    code, out, _ = cli(["--help"], capsys)
    assert code == 0
    help_text = " ".join(out.split())
    assert "RUN is the name of the evaluated run" in help_text and "'method' field" in help_text


def test_directories_joined_into_one_method_must_match(tmp_path, capsys):
    first = method_dir(tmp_path / "1", "zemi_base", {"copa": 0.6}, architecture=ZEMI, documents_read=5)
    other_length = method_dir(tmp_path / "2", "zemi_base", {"wic": 0.6}, architecture=ZEMI, documents_read=5,
                              max_length=512)
    code, _, err = cli([str(first), str(other_length), "--output_dir", str(tmp_path / "r")], capsys)
    assert code == 2 and str(first) in err and str(other_length) in err and "max_length" in err
    assert "1024" in err and "512" in err
    again = method_dir(tmp_path / "3", "zemi_base", {"copa": 0.6, "wic": 0.5}, architecture=ZEMI, documents_read=5)
    code, _, err = cli([str(first), str(again), "--output_dir", str(tmp_path / "r")], capsys)
    assert code == 2 and str(first) in err and str(again) in err and "copa" in err
    # Two runs given one name, without seeds: the models differ.
    other_run = method_dir(tmp_path / "5", "zemi_other", {"wic": 0.6}, architecture=ZEMI, documents_read=5)
    code, _, err = cli([str(first), str(other_run), "--label", "zemi_base=zemi", "--label", "zemi_other=zemi",
                        "--output_dir", str(tmp_path / "r")], capsys)
    assert code == 2 and "'model'" in err and "/runs/zemi_other" in err
    # Two parts of one evaluation (other templates, the same settings otherwise) make one row.
    part = method_dir(tmp_path / "4", "zemi_base", {"wic": 0.6}, architecture=ZEMI, documents_read=5)
    code, out, err = cli([str(first), str(part), "--output_dir", str(tmp_path / "r")], capsys)
    assert code == 0, err
    assert json.loads((tmp_path / "r" / "results.json").read_text())["zemi_base"]["average_tasks"] == ["copa", "wic"]


def test_every_number_has_an_interval_and_methods_are_compared_paired(tmp_path):
    tasks = {"copa": 0.55, "piqa": 0.6}
    no_aug = method_dir(tmp_path, "no_aug_base", tasks)
    base = {task: correctness(number, accuracy) for number, (task, accuracy) in enumerate(tasks.items())}
    concat = method_dir(tmp_path, "concat_base", tasks, base=base, documents_read=5)  # the same answers as No Aug
    zemi = method_dir(tmp_path, "zemi_base", tasks, base=base, fix=0.6, architecture=ZEMI, documents_read=5)
    labels = {"no_aug_base": "no_aug", "concat_base": "concat", "zemi_base": "zemi"}
    report = write_report([no_aug, concat, zemi], tmp_path / "report", labels, order=list(labels.values()))
    table = json.loads((tmp_path / "report" / "results.json").read_text())
    for method, entry in table.items():
        assert set(entry) >= {"tasks", "average", "checkpoint", "chance"} and entry["checkpoint"] == 1
        for task, (low, high) in entry["interval"].items():
            assert low <= entry["tasks"][task] <= high and high - low > 0.02, (method, task)
        low, high = entry["average_interval"]
        assert low <= entry["average"] <= high
    assert set(table["zemi"]["differences"]) == {"no_aug", "concat"}
    assert set(table["concat"]["differences"]) == {"no_aug"}
    same = table["concat"]["differences"]["no_aug"]
    assert all(d["difference"] == 0 and d["p"] == 1 for d in same["tasks"].values()) and same["average"]["p"] == 1
    better = table["zemi"]["differences"]["no_aug"]
    assert all(d["p"] < 0.01 and d["interval"][0] > 0 for d in [*better["tasks"].values(), better["average"]])
    assert better["tasks"]["copa"]["difference"] == pytest.approx(table["zemi"]["tasks"]["copa"]
                                                                  - table["no_aug"]["tasks"]["copa"])
    markdown = (tmp_path / "report" / "table1.md").read_text()
    zemi_row = next(line for line in markdown.splitlines() if line.startswith("| zemi |"))
    assert zemi_row.count("[") == 3  # two tasks and the average
    assert "| zemi − no_aug |" in markdown and "paired bootstrap" in markdown and "docs/statistics.md" in markdown
    csv_row = next(r for r in read_csv(tmp_path / "report" / "table1.csv")
                   if (r["method"], r["task"]) == ("zemi", "copa"))
    assert float(csv_row["low"]) < float(csv_row["mean"]) < float(csv_row["high"])
    comparisons = read_csv(tmp_path / "report" / "comparisons.csv")
    assert {(r["method"], r["baseline"]) for r in comparisons} == {("concat", "no_aug"), ("zemi", "no_aug"),
                                                                  ("zemi", "concat")}
    assert [c.baseline for c in report.comparisons if c.method == "zemi"] == ["no_aug", "concat"]


def test_no_aug_and_zemi_are_found_from_the_files_without_labels(tmp_path):
    no_aug = method_dir(tmp_path, "run_a", {"copa": 0.5})
    zemi = method_dir(tmp_path, "run_b", {"copa": 0.7}, architecture=ZEMI, documents_read=5)
    fid = method_dir(tmp_path, "run_c", {"copa": 0.6}, architecture="FiD", documents_read=5)
    report = write_report([no_aug, zemi, fid], tmp_path / "report")
    assert [(c.method, c.baseline) for c in report.comparisons] == [("run_b", "run_a"), ("run_c", "run_a"),
                                                                    ("run_b", "run_c")]
    assert any("No Aug is run_a" in note and "documents_read 0" in note for note in report.notes)


def test_seeds_give_the_mean_their_spread_and_an_interval_over_both(tmp_path):
    """Each seed is its own run (its own model), evaluated alike; per seed its best checkpoint."""
    dirs = [method_dir(tmp_path, f"zemi_s{seed}", {"copa": accuracy, "piqa": accuracy}, seed=seed, step=step,
                       architecture=ZEMI, documents_read=5)
            for seed, accuracy, step in ((42, 0.5, 1), (43, 0.6, 2), (44, 0.7, 1))]
    # Seed 43 also has a worse earlier checkpoint: its best is step 2.
    worse = method_dir(tmp_path / "early", "zemi_s43", {"copa": 0.3, "piqa": 0.3}, seed=43, step=1,
                       architecture=ZEMI, documents_read=5)
    single = method_dir(tmp_path, "zemi_one", {"copa": 0.6, "piqa": 0.6}, seed=42, architecture=ZEMI,
                        documents_read=5)
    labels = {f"zemi_s{seed}": "zemi" for seed in (42, 43, 44)} | {"zemi_one": "one_seed"}
    write_report([*dirs, worse, single], tmp_path / "report", labels)
    table = json.loads((tmp_path / "report" / "results.json").read_text())
    entry = table["zemi"]
    assert entry["checkpoint"] == [1, 2, 1] and [s["seed"] for s in entry["seeds"]] == [42, 43, 44]
    per_seed = [s["tasks"]["copa"] for s in entry["seeds"]]
    assert entry["tasks"]["copa"] == pytest.approx(np.mean(per_seed))
    assert entry["sd"]["copa"] == pytest.approx(np.std(per_seed, ddof=1))
    assert entry["average_sd"] == pytest.approx(np.std([s["average"] for s in entry["seeds"]], ddof=1))
    width = np.ptp(entry["interval"]["copa"])
    assert width > 1.5 * np.ptp(table["one_seed"]["interval"]["copa"])  # the seeds' spread is in it
    assert "zemi (seeds 42, 43, 44) | step_1, step_2, step_1 |" in (tmp_path / "report" / "table1.md").read_text()
    seeds = read_csv(tmp_path / "report" / "seeds.csv")
    assert {(r["seed"], r["checkpoint"]) for r in seeds if r["method"] == "zemi"} == {("42", "1"), ("43", "2"),
                                                                                    ("44", "1")}


def test_a_task_whose_seeds_used_different_templates_is_left_out(tmp_path):
    dirs = [method_dir(tmp_path, f"zemi_s{seed}", {"copa": 0.6, "piqa": 0.6}, seed=seed, templates=templates)
            for seed, templates in ((1, ("a", "b")), (2, ("a",)))]
    report = write_report(dirs, tmp_path / "report", {"zemi_s1": "zemi", "zemi_s2": "zemi"})
    assert report.rows[0].tasks == {} and report.average_tasks == []
    assert any("['copa', 'piqa'] left out: its seeds were evaluated on different templates" in n for n in report.notes)


def test_a_report_into_a_used_directory_equals_a_fresh_one(tmp_path):
    no_aug = method_dir(tmp_path, "no_aug", {"copa": 0.5, "piqa": 0.5})
    seeds = [method_dir(tmp_path, f"zemi_{seed}", {"copa": 0.6, "piqa": 0.7}, seed=seed, architecture=ZEMI,
                        documents_read=5) for seed in (1, 2)]
    used, fresh = tmp_path / "used", tmp_path / "fresh"
    used.mkdir()
    (used / "loss.png").write_bytes(b"not the report's")  # zemi-plot writes beside the report: it stays
    write_report([no_aug, *seeds], used, {"zemi_1": "zemi", "zemi_2": "zemi"})
    assert (used / "seeds.csv").is_file() and (used / "comparisons.csv").is_file()
    write_report([seeds[0]], used, {"zemi_1": "zemi"})
    write_report([seeds[0]], fresh, {"zemi_1": "zemi"})
    assert sorted(p.name for p in used.iterdir()) == sorted([p.name for p in fresh.iterdir()] + ["loss.png"])
    for path in fresh.iterdir():
        assert path.read_bytes() == (used / path.name).read_bytes(), path.name


def test_results_without_per_example_files_have_no_intervals_and_say_why(tmp_path):
    old = write_eval_dir(tmp_path / "old", "no_aug", [predictions("copa", "a", correctness(0, 0.5))], legacy=True)
    new = method_dir(tmp_path, "zemi", {"copa": 0.7}, architecture=ZEMI, documents_read=5)
    report = write_report([old, new], tmp_path / "report")
    table = json.loads((tmp_path / "report" / "results.json").read_text())
    assert table["no_aug"]["interval"] == {"copa": None} and table["no_aug"]["no_interval"]
    assert table["zemi"]["interval"]["copa"] is not None and table["zemi"]["differences"] == {}
    markdown = (tmp_path / "report" / "table1.md").read_text()
    no_aug_row = next(line for line in markdown.splitlines() if line.startswith("| no_aug |"))
    assert "[–]" in no_aug_row and f"no_aug: no intervals, {old}: no per-example predictions" in markdown
    assert any("zemi vs no_aug: no paired comparison" in note for note in report.notes)


def test_only_checkpoints_evaluated_on_every_template_compete(tmp_path):
    complete = [predictions(task, "a", correctness(n, 0.5), step=1) for n, task in enumerate(("copa", "piqa"))]
    partial = [predictions("copa", "a", correctness(9, 0.9), step=2)]  # an interrupted evaluation of step 2
    directory = write_eval_dir(tmp_path / "eval", "zemi", complete + partial)
    report = write_report([directory], tmp_path / "report")
    assert report.rows[0].checkpoint == 1 and set(report.rows[0].tasks) == {"copa", "piqa"}
    assert any("step_2 was evaluated on 1 of the 2 templates" in note for note in report.notes)


def test_methods_evaluated_on_different_examples_are_not_compared_on_that_task(tmp_path):
    no_aug = method_dir(tmp_path, "no_aug", {"copa": 0.5, "piqa": 0.5})
    fewer = [predictions("copa", template, correctness(7, 0.7, n=150)) for template in ("a", "b")]
    fewer += [predictions("piqa", template, correctness(8, 0.7)) for template in ("a", "b")]
    zemi = write_eval_dir(tmp_path / "zemi", "zemi", fewer, architecture=ZEMI, settings=settings_for(ZEMI, 5))
    report = write_report([no_aug, zemi], tmp_path / "report")
    (comparison,) = report.comparisons
    assert comparison.tasks["copa"] is None and comparison.tasks["piqa"] is not None
    assert comparison.average is None  # the average needs every task paired
    assert any("zemi vs no_aug on copa: not the same templates and examples" in note for note in report.notes)
    assert all(score.low is not None for row in report.rows for score in row.tasks.values())


@pytest.mark.parametrize("name, ours, theirs", [("debug", False, True), ("mixed_precision", "no", "bf16"),
                                                ("max_length", 1024, 512), ("target_max_length", 256, 128)])
def test_methods_evaluated_on_other_examples_or_precision_are_refused(tmp_path, capsys, name, ours, theirs):
    no_aug = method_dir(tmp_path, "no_aug", {"copa": 0.5}, **{name: ours})
    zemi = method_dir(tmp_path, "zemi", {"copa": 0.7}, architecture=ZEMI, documents_read=5, **{name: theirs})
    code, _, err = cli([str(no_aug), str(zemi), "--output_dir", str(tmp_path / "r")], capsys)
    assert code == 2 and err.startswith("error: ") and name in err
    assert str(no_aug) in err and str(zemi) in err and repr(ours) in err and repr(theirs) in err
    assert not (tmp_path / "r").exists()


def test_what_makes_a_method_may_differ_and_padding_or_template_files_are_marked(tmp_path):
    no_aug = method_dir(tmp_path, "no_aug", {"copa": 0.5, "piqa": 0.5}, document_padding="max_length",
                        tokenizer_fingerprint="1234")
    # Its own augmentation settings (and its own tokenizer) are part of Zemi: no mark.
    zemi = method_dir(tmp_path, "zemi", {"copa": 0.7, "piqa": 0.7}, architecture=ZEMI, documents_read=5,
                      aug_max_length=64, fit_aug_num=5, document_padding="max_length", tokenizer_fingerprint="5678")
    write_report([no_aug, zemi], tmp_path / "plain")
    markdown = (tmp_path / "plain" / "table1.md").read_text()
    assert "†" not in markdown
    padded = method_dir(tmp_path / "padded", "zemi", {"copa": 0.7, "piqa": 0.7}, architecture=ZEMI, documents_read=5,
                        document_padding="longest", per_device_eval_batch_size=8, num_processes=2)  # as evaluated
    elsewhere = write_eval_dir(tmp_path / "elsewhere", "fid", [
        Template("copa", template, [0, 1] * 50, [0, 1] * 50, template_path=f"/other/copa/{template}")
        for template in ("a", "b")] + [predictions("piqa", t, correctness(3, 0.6)) for t in ("a", "b")],
        architecture="FiD", settings=settings_for("FiD", 5, document_padding="max_length"))
    write_report([no_aug, padded, elsewhere], tmp_path / "marked")
    lines = (tmp_path / "marked" / "table1.md").read_text().splitlines()
    for method in ("no_aug", "zemi", "fid"):  # padding, on the whole row; copa's files, on copa
        cells = next(line for line in lines if line.startswith(f"| {method} ")).split(" | ")
        assert cells[0] == f"| {method} †1" and cells[2].endswith("†2") and "†" not in cells[3]
    footnotes = [line for line in lines if line.startswith("- †")]
    assert "document_padding" in footnotes[0] and "'longest'" in footnotes[0] and "'max_length'" in footnotes[0]
    assert "copa/a" in footnotes[1] and "/other/copa/a" in footnotes[1] and "/data/30aug/copa/a" in footnotes[1]
    table = json.loads((tmp_path / "marked" / "results.json").read_text())
    assert set(table["fid"]["footnotes"]) == {"row", "copa"}
    assert "document_padding" in table["fid"]["footnotes"]["row"][0]


def test_template_files_are_compared_by_their_data_fingerprint_where_recorded(tmp_path):
    """The same data at other paths (a copy on another machine: the same fingerprint) is not marked; other data
    under the same path (another fingerprint) is."""
    def evaluated(run: str, root: str, fingerprint: str) -> Path:
        items = [Template("copa", t, [0, 1] * 50, [0, 1] * 50, template_path=f"{root}/copa/{t}",
                          extra={"data_fingerprint": f"{fingerprint}{t}"}) for t in ("a", "b")]
        return write_eval_dir(tmp_path / run, run, items, settings=settings_for("T5", document_padding="max_length"))

    here, there = evaluated("no_aug", "/data/30aug", "f"), evaluated("concat", "/scratch/copy/30aug", "f")
    write_report([here, there], tmp_path / "copy")
    assert "†" not in (tmp_path / "copy" / "table1.md").read_text()
    rebuilt = evaluated("fid", "/data/30aug", "g")
    write_report([here, rebuilt], tmp_path / "rebuilt")
    [footnote] = [line for line in (tmp_path / "rebuilt" / "table1.md").read_text().splitlines()
                  if line.startswith("- †")]
    assert "copa/a read from different data" in footnote
    assert "fingerprint fa" in footnote and "fingerprint ga" in footnote


def test_files_without_raw_example_keys_are_resampled_template_by_template_and_the_report_says_so(tmp_path):
    keyed = method_dir(tmp_path, "zemi", {"copa": 0.7}, architecture=ZEMI, documents_read=5)
    older = write_eval_dir(tmp_path / "older", "no_aug", [predictions("copa", t, correctness(0, 0.5)) for t in "ab"],
                           keyed=False)
    report = write_report([keyed], tmp_path / "keyed")
    assert not any("resampled template by template" in note for note in report.notes)
    report = write_report([keyed, older], tmp_path / "mixed")
    assert any(note.startswith("['copa']: resampled template by template") for note in report.notes)
    assert report.comparisons[0].tasks["copa"] is not None  # still paired, by template and row
