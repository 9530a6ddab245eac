"""Through real evaluations: two tiny runs (No Aug and Zemi) evaluated by zemi-eval on the fixture's held-out
templates, then `zemi-report`, `zemi-compare` and `zemi-visualize --eval_dirs` on the
directories it wrote."""

from __future__ import annotations

import json
import re

import pytest

from tests.helpers import TINY_PERCEIVER, evaluate, run_module, write_run_dir

pytestmark = pytest.mark.e2e

ZEMI = "SharedEncoderDecoder_MultiAug"


@pytest.fixture(scope="module")
def evaluated(backbone_dir, data_root, tmp_path_factory):
    root = tmp_path_factory.mktemp("evaluated")
    dirs = {}
    for name, architecture, perceiver in (("no_aug_base", "T5", None), ("zemi_base", ZEMI, TINY_PERCEIVER)):
        run = write_run_dir(root / "runs" / name, backbone_dir, architecture=architecture, steps=(1, 2),
                            perceiver=perceiver)
        results = evaluate(run, data_root, root / "eval" / name)
        assert all("predictions" in row for row in results["results"])
        dirs[name] = root / "eval" / name
    return dirs, root


def test_report_compare_and_browser_read_what_evaluation_wrote(evaluated, data_root):
    dirs, root = evaluated
    report = run_module("zemi", ["report", str(dirs["no_aug_base"]), "--label", "no_aug_base=no_aug",
                                        str(dirs["zemi_base"]), "--label", "zemi_base=zemi",
                                        "--output_dir", str(root / "report")])
    assert report.returncode == 0, report.stderr[-3000:]
    table = json.loads((root / "report" / "results.json").read_text())
    assert list(table) == ["no_aug", "zemi"]
    for entry in table.values():
        low, high = entry["interval"]["weather_effect"]
        assert low <= entry["tasks"]["weather_effect"] <= high and entry["average_interval"] is not None
    assert set(table["zemi"]["differences"]) == {"no_aug"}

    compared = run_module("zemi", ["compare", str(dirs["no_aug_base"]), str(dirs["zemi_base"]), "--output_dir",
                                           str(root / "compare")])
    assert compared.returncode == 0, compared.stderr[-3000:]
    data = json.loads((root / "compare" / "compare.json").read_text())
    files = {}
    for name, side in (("no_aug_base", "a"), ("zemi_base", "b")):
        results = json.loads((dirs[name] / "results.json").read_text())["results"]
        for row in results:
            if row["step"] == data[side]["step"]:
                found = json.loads((dirs[name] / row["predictions"]).read_text())
                files[(side, row["template"])] = {i: p == g for i, p, g in
                                                  zip(found["index"], found["predicted"], found["gold"])}
    expected_b = {(t, i) for (s, t), right in files.items() if s == "b" for i in right
                  if right[i] and not files[("a", t)][i]}
    expected_a = {(t, i) for (s, t), right in files.items() if s == "a" for i in right
                  if right[i] and not files[("b", t)][i]}
    entry = data["tasks"]["weather_effect"]
    assert {(e["template"], e["index"]) for e in entry["only_b"]} == expected_b
    assert {(e["template"], e["index"]) for e in entry["only_a"]} == expected_a

    page = run_module("zemi", ["visualize", "--data_root", str(data_root), "--tasks", "weather_effect",
                                                   "--output", str(root / "visualization"), "--eval_dirs",
                                                   str(dirs["no_aug_base"]), str(dirs["zemi_base"])])
    assert page.returncode == 0, page.stderr[-3000:]
    html = (root / "visualization" / "index.html").read_text()
    answers = json.loads(re.search(r"const PREDICTIONS = (.*);\n", html).group(1))["weather_effect"]
    assert [m["name"] for m in answers["methods"]] == ["no_aug_base", "zemi_base"] and answers["reference"] == 0
