"""Checkpoints: a pickle that would run code is refused; truncated or corrupt checkpoints (files and directories) are
named and skipped by the `--saved_model_step -1` sweep; weights that do not fit the run's architecture fail with the
missing and unexpected keys; a write that fails (a real file-size limit) or is interrupted loses nothing.

Crashes mid-write of a real training run are in test_interrupted_runs.py."""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from tests.helpers import (
    REPO,
    TINY_PERCEIVER,
    ZEMI,
    evaluate,
    logged,
    subprocess_env,
    tiny_perceiver_config,
    tiny_t5_config,
    write_run_dir,
)
from zemi.io import recover_interrupted_writes
from zemi.models.checkpoint_files import CheckpointReadError, checkpoint_shapes
from zemi.run.run_directory import RunDirectory, save_model_atomic
from zemi.modeling_t5 import CheckpointMismatchError, T5WithOwnLMHead, build_model, load_original_checkpoint

pytestmark = [pytest.mark.unit, pytest.mark.usefixtures("one_thread")]  # tiny models: one thread is fastest


class RunsCode:
    """Pickles as a call of os.system: loading the file with plain pickle runs the shell command."""

    def __init__(self, command: str):
        self.command = command

    def __reduce__(self):
        return os.system, (self.command,)


def truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


# --- unreadable checkpoints ----------------------------------------------------------------------------------------


def test_a_pickle_that_runs_code_is_refused_and_never_run(tmp_path):
    marker = tmp_path / "code_ran"
    armed = tmp_path / "step_5"
    torch.save({"shared.weight": RunsCode(f"touch {marker}")}, armed)
    with pytest.raises(pickle.UnpicklingError, match="system"):
        load_original_checkpoint(T5WithOwnLMHead(tiny_t5_config()), armed)
    assert not marker.exists()
    torch.load(armed, weights_only=False)  # the file really is armed: an unguarded load runs its command
    assert marker.exists()


@pytest.mark.e2e
def test_unreadable_checkpoints_are_named_and_skipped_by_the_sweep(tmp_path, backbone_dir, data_root):
    """The authors' layout (torch.save files) and ours (save_pretrained directories), each with good checkpoints
    around truncated, corrupt, incomplete and code-carrying ones."""
    marker = tmp_path / "code_ran"
    authors = write_run_dir(tmp_path / "authors", backbone_dir, architecture=ZEMI, steps=(10, 20, 30, 40),
                            file_form=True, perceiver=TINY_PERCEIVER)
    truncate(authors / "step_20")
    torch.save({"shared.weight": RunsCode(f"touch {marker}")}, authors / "step_30")
    (authors / "step_40").rename(authors / "step_50")
    (authors / "step_40").write_bytes(os.urandom(4096))
    ours = write_run_dir(tmp_path / "ours", backbone_dir, steps=(1, 2, 3, 4, 5))
    truncate(ours / "step_2" / "model.safetensors")
    (ours / "step_3" / "config.json").write_text("{ not json")
    (ours / "step_4" / "model.safetensors").unlink()

    expected_bad = {authors: {20: "truncated or corrupt", 30: "refused", 40: "truncated or corrupt"},
                    ours: {2: "truncated or corrupt", 3: "config.json", 4: "not a complete checkpoint"}}
    expected_good = {authors: {10, 50}, ours: {1, 5}}
    for run_dir in (authors, ours):
        with logged("zemi.run.evaluation") as warnings:
            results = evaluate(run_dir, data_root, tmp_path / "eval" / run_dir.name)
        assert {row["step"] for row in results["results"]} == expected_good[run_dir]
        skipped = {entry["step"]: entry for entry in results["skipped_checkpoints"]}
        assert set(skipped) == set(expected_bad[run_dir])
        for step, reason in expected_bad[run_dir].items():
            assert skipped[step]["path"] == str(run_dir / f"step_{step}")
            assert reason in skipped[step]["error"] and f"step_{step}" in skipped[step]["error"]
            assert any(f"skipping unreadable checkpoint {run_dir / f'step_{step}'}" in m for m in warnings)
    assert not marker.exists()

    with pytest.raises(CheckpointReadError, match=r"step_30: refused"):  # asked for by name: an error, not a skip
        evaluate(authors, data_root, tmp_path / "eval" / "one", step=30)
    for step in (10, 50):
        (authors / f"step_{step}").unlink()
    with pytest.raises(CheckpointReadError, match="no checkpoint of .* could be read"):
        evaluate(authors, data_root, tmp_path / "eval" / "none")


@pytest.mark.parametrize("content", [b"\x80\x02J\x01", b"(.", b"h\x00"], ids=["struct.error", "IndexError", "KeyError"])
def test_bytes_that_break_the_unpickler_differently_are_a_corrupt_file(tmp_path, content):
    """Random bytes (os.urandom above) make torch's weights-only unpickler raise these about one time in twelve."""
    (tmp_path / "step_1").write_bytes(content)
    with pytest.raises(CheckpointReadError, match=r"step_1: cannot be read as a torch.save file \(truncated or corrupt"):
        checkpoint_shapes(tmp_path / "step_1")


# --- checkpoints that do not fit the architecture ----------------------------------------------------------------


def test_a_directory_checkpoint_of_another_architecture_fails_at_start_up(tmp_path, backbone_dir, data_root):
    """transformers would load a plain T5 checkpoint into Zemi and silently start the fusion modules at random."""
    run_dir = write_run_dir(tmp_path / "run", backbone_dir, steps=(3,))
    args = json.loads((run_dir / "args.json").read_text())
    (run_dir / "args.json").write_text(json.dumps(dict(args, model_architecture=ZEMI)))
    (run_dir / "perceiver_config.json").write_text(json.dumps(TINY_PERCEIVER))
    with pytest.raises(CheckpointMismatchError) as error:
        evaluate(run_dir, data_root, tmp_path / "eval")
    message = str(error.value)
    fusion_keys = set(build_model(ZEMI, backbone_dir, tiny_perceiver_config()).state_dict()) - \
        set(T5WithOwnLMHead.from_pretrained(backbone_dir).state_dict())
    assert f"{run_dir / 'step_3'} does not fit T5ForConditionalGenerationMultiAug" in message
    assert f"{len(fusion_keys)} missing keys: ['perceiver_resampler.latents'" in message
    assert "xattn_stack.0.attn.to_q.weight" in message and "unexpected keys" not in message
    assert not (tmp_path / "eval").exists()  # failed before any data was read or result written


def test_a_state_dict_with_wrong_keys_and_shapes_lists_them(tmp_path, backbone_dir, data_root):
    run_dir = write_run_dir(tmp_path / "run", backbone_dir, architecture=ZEMI, steps=(7,), file_form=True,
                            perceiver=TINY_PERCEIVER)
    state = torch.load(run_dir / "step_7", weights_only=True)
    state["xattn_stack.0.gate"] = state.pop("xattn_stack.0.attn_gate")
    state["perceiver_resampler.latents"] = torch.zeros(8, 32)
    torch.save(state, run_dir / "step_7")
    with pytest.raises(CheckpointMismatchError) as error:
        evaluate(run_dir, data_root, tmp_path / "eval")
    message = str(error.value)
    assert "1 missing keys: ['xattn_stack.0.attn_gate']" in message
    assert "1 unexpected keys: ['xattn_stack.0.gate']" in message
    assert "perceiver_resampler.latents: checkpoint (8, 32) vs model (4, 32)" in message
    with pytest.raises(CheckpointMismatchError, match="missing keys"):  # and when loaded directly
        RunDirectory.open(run_dir).load_model(run_dir / "step_7")


def test_a_directory_may_hold_the_weights_transformers_knowingly_drops_but_nothing_else(tmp_path, backbone_dir):
    run_dir = write_run_dir(tmp_path / "run", backbone_dir, steps=(1,))
    weights = run_dir / "step_1" / "model.safetensors"
    state = load_file(weights)
    state["decoder.block.0.layer.1.EncDecAttention.relative_attention_bias.weight"] = torch.zeros(32, 4)  # old T5
    save_file(state, weights, metadata={"format": "pt"})
    run = RunDirectory.open(run_dir)
    assert isinstance(run.load_model(run_dir / "step_1"), T5WithOwnLMHead)
    save_file(dict(state, **{"encoder.extra.weight": torch.zeros(2)}), weights, metadata={"format": "pt"})
    with pytest.raises(CheckpointMismatchError, match=r"1 unexpected keys: \['encoder.extra.weight'\]"):
        run.load_model(run_dir / "step_1")


# --- failed and interrupted writes ---------------------------------------------------------------------------------

FULL_DISK = """
import resource, sys
from pathlib import Path
from zemi.io import write_json_atomic
from zemi.run.run_directory import save_model_atomic
from zemi.modeling_t5 import T5WithOwnLMHead

run, limit = Path(sys.argv[1]), int(sys.argv[2])
model = T5WithOwnLMHead.from_pretrained(run / "step_1")
resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))
for name, write in (("checkpoint", lambda: save_model_atomic(model, run / "step_2")),
                    ("args.json", lambda: write_json_atomic(run / "args.json", {"padding": "x" * 2 * limit}))):
    try:
        write()
        print(name, "written")
    except Exception as err:
        print(name, "failed:", err)
"""


def digest(path: Path) -> dict[str, str]:
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    return {str(p.relative_to(path.parent)): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


@pytest.mark.e2e
def test_a_write_that_runs_out_of_space_leaves_the_previous_files_intact(tmp_path, backbone_dir, data_root):
    """The kernel refuses writes past RLIMIT_FSIZE (EFBIG) exactly as a full disk refuses them (ENOSPC): a real
    failed write(), part-way through the file. (No small filesystem can be mounted here to fill for real.)"""
    run_dir = write_run_dir(tmp_path / "run", backbone_dir, steps=())
    save_model_atomic(T5WithOwnLMHead.from_pretrained(backbone_dir), run_dir / "step_1")
    before = digest(run_dir / "step_1") | digest(run_dir / "args.json")
    limit = (run_dir / "step_1" / "model.safetensors").stat().st_size // 2
    done = subprocess.run([sys.executable, "-c", FULL_DISK, str(run_dir), str(limit)], cwd=REPO, env=subprocess_env(),
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "checkpoint failed:" in done.stdout and "File too large" in done.stdout
    assert "args.json failed:" in done.stdout
    assert digest(run_dir / "step_1") | digest(run_dir / "args.json") == before
    assert not (run_dir / "step_2").exists() and list(run_dir.glob(".step_2.tmp-*"))
    recover_interrupted_writes(run_dir)  # what the next training start does
    assert sorted(p.name for p in run_dir.iterdir()) == ["args.json", "step_1"]
    assert {row["step"] for row in evaluate(run_dir, data_root, tmp_path / "eval")["results"]} == {1}


def test_a_directory_replace_interrupted_between_its_renames_is_undone(tmp_path):
    """`publish` over an existing directory moves the old one aside, then renames the new one in; a crash between
    the two renames leaves neither under the real name until the next start puts the old one back."""
    final = tmp_path / "step_18"
    final.mkdir()
    (final / "trainer_state.json").write_text('{"global_step": 18, "epoch": 0}')
    os.replace(final, tmp_path / ".step_18.old-4242")
    (tmp_path / ".step_18.tmp-4242").mkdir()
    (tmp_path / ".step_18.tmp-4242" / "trainer_state.json").write_text('{"global_step": 18, "epoch": 1}')
    recover_interrupted_writes(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["step_18"]
    assert json.loads((final / "trainer_state.json").read_text())["epoch"] == 0

    (tmp_path / ".step_18.old-77").mkdir()  # the crash came after the second rename: the new copy stays
    recover_interrupted_writes(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["step_18"]


@pytest.mark.parametrize("content", [b'{"results": [', b"\xff\xfe\x00"])
def test_json_files_that_do_not_parse_are_errors_that_name_them(tmp_path, content):
    """A run's args.json, an evaluation's results.json and a per-example file, as each reader meets them."""
    from zemi.errors import ZemiError
    from zemi.run.results_files import Sweep, reusable_rows
    from zemi.run.run_directory import RunDirectory
    from zemi.tools.evaluations import read_eval_dir
    from zemi.tools.uncertainty import read_predictions

    (tmp_path / "args.json").write_bytes(content)
    (tmp_path / "results.json").write_bytes(content)
    (tmp_path / "step_1.json").write_bytes(content)
    readers = {"args.json": lambda: RunDirectory.open(tmp_path), "results.json": lambda: read_eval_dir(tmp_path),
               "step_1.json": lambda: read_predictions(tmp_path, {"predictions": "step_1.json", "step": 1,
                                                                  "task": "copa", "template": "a"})}
    for name, read in readers.items():
        with pytest.raises(ZemiError, match=re.escape(str(tmp_path / name))):
            read()
    with pytest.raises(ZemiError, match=re.escape(str(tmp_path / "results.json"))):
        reusable_rows(tmp_path, {}, Sweep({}, {}, {}))
