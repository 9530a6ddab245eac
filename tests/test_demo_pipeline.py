"""`make demo`'s pipeline, reduced (fewer examples and steps), through the same script and code path."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[1]
STEPS = 2


@pytest.mark.timeout(1200)
def test_reduced_demo_builds_data_trains_four_methods_evaluates_and_reports(tmp_path):
    # What is reduced: 16 examples per split, the index over the corpus's first 20,000 documents, shorter texts and
    # two optimizer steps. Its cost is mostly the ~25 Python processes the scripts start, each importing torch.
    env = dict(
        os.environ, ZEMI_QUIET="1", NUM_GPUS="0", TOKENIZERS_PARALLELISM="false",
        OUTPUT_SRC_ROOT=str(tmp_path / "out"), VISUALIZATION_DIR=str(tmp_path / "visualization"),
        TRAIN_MIXTURE="wn_hypernym wn_synonym", EVAL_TASKS="wn_category wn_word_sense",
        DEMO_BUILD_ARGS="--max_examples_per_split 16 --num_documents 20000", MAX_LENGTH="128", AUG_MAX_LENGTH="32",
        MAX_TRAIN_STEPS=str(STEPS))
    for name in ("EXTRA_TRAIN_ARGS", "EXTRA_EVAL_ARGS"):  # unset, as `make demo` meets them
        env.pop(name, None)
    done = subprocess.run(["bash", "training/demo.sh"], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=1200)
    assert done.returncode == 0, done.stderr[-4000:]
    out = tmp_path / "out"
    results = json.loads((out / "results.json").read_text())
    assert list(results) == ["no_aug", "concat", "fid", "zemi"]
    for method, entry in results.items():
        assert set(entry["tasks"]) == {"wn_category", "wn_word_sense"}, method
        assert all(0 <= accuracy <= 1 for accuracy in entry["tasks"].values())
        assert 0 <= entry["average"] <= 1 and entry["checkpoint"] == STEPS
    assert f"| zemi | step_{STEPS} |" in (out / "table1.md").read_text()
    assert (out / "table1.png").read_bytes()[:4] == b"\x89PNG"
    for curves in ("loss.png", "gates.png"):  # the four runs' training curves (Zemi's gates)
        assert (out / curves).read_bytes()[:4] == b"\x89PNG"
    trained = out / "p3_finetuning" / "zemi_base"
    assert (trained / f"step_{STEPS}" / "model.safetensors").is_file()
    mixture = json.loads((trained / "dataset_mixture_config.json").read_text())
    assert {Path(p).parent.name for p in mixture["sampled_list"]} == {"wn_hypernym", "wn_synonym"}
    visualization = tmp_path / "visualization"
    assert (visualization / "first50_retrieval_instances" / "retrieval_vis_eval__wn_category.txt").is_file()
    assert (visualization / "index.html").is_file()
    assert "answer: " in done.stdout and "(gold: " in done.stdout  # the held-out question zemi-predict answers
    assert "The demo took" in done.stdout
