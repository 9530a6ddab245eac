"""zemi-compare on two evaluation directories whose per-example files hold predictions on the tiny 30aug fixture's
held-out templates: exactly the examples whose correctness differs, with their texts and the documents read."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.evaluation_files import (ZEMI, Template, from_template_dir, gold_of, settings_for, write_eval_dir,
                                    wrong_of)
from tests.helpers import run_entry_here
from zemi.tools.compare import main

pytestmark = pytest.mark.unit

HELD_OUT = ("fruit_taste", "weather_effect")


def templates(data_root: Path, rule, step: int = 1) -> list[Template]:
    return [from_template_dir(path, lambda number, example: gold_of(example) if rule(number, path.name)
                              else wrong_of(example), step=step)
            for task in HELD_OUT for path in sorted((data_root / task).iterdir())]


@pytest.fixture(scope="module")
def runs(data_root, tmp_path_factory):
    root = tmp_path_factory.mktemp("compare")
    no_aug = write_eval_dir(root / "no_aug", "no_aug_base", templates(data_root, lambda n, t: n % 2 == 0))
    # Zemi: better at step 2 (its best), right on most of No Aug's errors, wrong on a few of its successes.
    zemi_rule = lambda n, t: n % 2 == 1 or n % 4 == 0 or (n == 2 and t.endswith("plain"))  # noqa: E731
    zemi = write_eval_dir(root / "zemi", "zemi_base",
                          templates(data_root, lambda n, t: n < 3, step=1) + templates(data_root, zemi_rule, step=2),
                          architecture=ZEMI, settings=settings_for(ZEMI, documents_read=2))
    return no_aug, zemi


def differing(eval_dir: Path, other: Path, step: int, other_step: int) -> dict[str, set]:
    """From the per-example files directly: (template, index) where eval_dir is right and other is wrong."""
    found: dict[str, set] = {}
    rows = json.loads((other / "results.json").read_text())["results"]
    theirs = {(r["task"], r["template"]): json.loads((other / r["predictions"]).read_text())
              for r in rows if r["step"] == other_step}
    for row in json.loads((eval_dir / "results.json").read_text())["results"]:
        if row["step"] != step:
            continue
        mine = json.loads((eval_dir / row["predictions"]).read_text())
        other_file = theirs[(row["task"], row["template"])]
        right = {i: p == g for i, p, g in zip(mine["index"], mine["predicted"], mine["gold"])}
        wrong = {i for i, p, g in zip(other_file["index"], other_file["predicted"], other_file["gold"]) if p != g}
        found.setdefault(row["task"], set()).update((row["template"], i) for i in right if right[i] and i in wrong)
    return found


def test_lists_exactly_the_examples_whose_correctness_differs(runs, tmp_path, capsys):
    no_aug, zemi = runs
    out = tmp_path / "out"
    main([str(no_aug), str(zemi), "--output_dir", str(out), "--examples", "100"])
    printed = capsys.readouterr().out
    data = json.loads((out / "compare.json").read_text())
    assert data["a"]["step"] == 1 and data["b"]["step"] == 2  # each run's best checkpoint
    only_zemi, only_no_aug = differing(zemi, no_aug, 2, 1), differing(no_aug, zemi, 1, 2)
    assert any(only_no_aug.values()) and any(only_zemi.values())
    for task in HELD_OUT:
        entry = data["tasks"][task]
        assert {(e["template"], e["index"]) for e in entry["only_b"]} == only_zemi[task]
        assert {(e["template"], e["index"]) for e in entry["only_a"]} == only_no_aug[task]
        assert entry["examples"] == 24  # 2 templates x 12 examples
        assert f"| {task} | 24 | {entry['a_right']} | {entry['b_right']} | {len(only_no_aug[task])} | " \
               f"{len(only_zemi[task])} |" in printed
    markdown = (out / "compare.md").read_text()
    assert "zemi_base right, no_aug_base wrong" in markdown and "no_aug_base right, zemi_base wrong" in markdown


def test_shows_prompt_gold_both_predictions_and_the_documents_read(runs, data_root, tmp_path):
    from datasets import load_from_disk

    no_aug, zemi = runs
    main([str(no_aug), str(zemi), "--output_dir", str(tmp_path), "--examples", "1"])
    data = json.loads((tmp_path / "compare.json").read_text())
    shown = data["tasks"]["weather_effect"]["shown"]["only_b"]
    assert len(shown) == 1
    item = shown[0]
    example = load_from_disk(str(data_root / "weather_effect" / item["template"]))["validation"][item["index"]]
    assert item["prompt"] == example["inputs_pretokenized"].strip()
    assert item["predicted_b"] == item["gold"] == example["targets_pretokenized"].strip() != item["predicted_a"]
    expected = [d["inputs_pretokenized"] for d in example["chosen_examples"]][:2]  # Zemi reads 2
    assert [d["text"] for d in item["documents"]] == expected and expected
    markdown = (tmp_path / "compare.md").read_text()
    assert f"> {item['prompt']}" in markdown and f"> {expected[0]}" in markdown
    assert "zemi_base the first 2" in markdown


def test_chosen_steps_and_what_cannot_be_compared(runs, tmp_path, capsys):
    no_aug, zemi = runs
    printed = main([str(no_aug), str(zemi), "--step_b", "1", "--examples", "0"])
    assert "step_1, reads 2 documents" in printed and "## fruit_taste" not in printed  # no example asked for
    code, _, err = run_entry_here(main, [str(no_aug), str(zemi), "--step_b", "7"], capsys)
    assert code == 2 and "--step_b 7" in err and "[1, 2]" in err
    legacy = write_eval_dir(tmp_path / "legacy", "old", [Template("fruit_taste", "fruit_taste_plain", [0], [0])],
                            legacy=True)
    code, _, err = run_entry_here(main, [str(no_aug), str(legacy)], capsys)
    assert code == 2 and str(legacy) in err


def test_predictions_on_other_data_are_refused(runs, tmp_path, capsys):
    no_aug, _ = runs
    rows = json.loads((no_aug / "results.json").read_text())["results"]
    other = [Template(r["task"], r["template"], [1 - g for g in json.loads((no_aug / r["predictions"]).read_text())
                                                 ["gold"]], [0] * r["num_examples"]) for r in rows]
    elsewhere = write_eval_dir(tmp_path / "elsewhere", "elsewhere", other)
    code, _, err = run_entry_here(main, [str(no_aug), str(elsewhere)], capsys)
    assert code == 2 and "gold answer" in err and str(no_aug) in err and str(elsewhere) in err

