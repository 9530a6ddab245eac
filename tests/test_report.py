"""Table 1's chance level: each task's mean over its templates of the evaluation's `chance`, in table1.md, table1.csv,
results.json and as a line on table1.png; a results.json without it (the authors', or an older run) draws none."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.helpers import logged, read_csv
from zemi.tools.report import write_report

pytestmark = pytest.mark.unit


def eval_dir(path: Path, method: str, rows: list[tuple[str, str, float, float | None]]) -> Path:
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
    assert chance_row == ["| *Chance* | – | 50.00 | 29.17 | – | – |"]  # copa, hellaswag, wic, Average
    csv_rows = {(row["method"], row["task"]): row["chance"] for row in read_csv(tmp_path / "report" / "table1.csv")}
    assert csv_rows[("zemi", "copa")] == "0.5" and csv_rows[("authors", "wic")] == ""
    assert (tmp_path / "report" / "table1.png").read_bytes()[:4] == b"\x89PNG"
