"""Beyond one process: training/common.sh's zemi_launch (a user's accelerate config file, or NUM_MACHINES,
MACHINE_RANK, MAIN_PROCESS_IP, MAIN_PROCESS_PORT), a real two-"machine" launch on this CPU box that ends with the
weights of a one-machine two-process run, and a two-process run killed and resumed (every process's part of the
training state is saved and read back)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from tests.helpers import REPO, STEPS_PER_EPOCH, free_port, launch, one_epoch_no_aug_flags, read_csv, subprocess_env

pytestmark = pytest.mark.e2e

CONFIGS = REPO / "training" / "accelerate_configs"


def zemi_launch(module_and_args: list[str], *, home: Path, python: str = sys.executable, **env: str) \
        -> subprocess.Popen:
    """`zemi_launch` of training/common.sh after SETUP_ENV.sh, as the training scripts run it; `python="true"`
    only prints the command. `home` stands in for $HF_HOME, so no accelerate config of this machine is read."""
    script = ('args=("$@"); set --; '  # common.sh refuses script arguments
              f'source SETUP_ENV.sh && source training/common.sh && PYTHON={python} zemi_launch "${{args[@]}}"')
    full_env = subprocess_env(ZEMI_QUIET="1", NUM_GPUS="0", MIXED_PRECISION="no", CPU_THREADS="1",
                              HF_HOME=str(home), PYTHON=sys.executable, **env)
    if "ACCELERATE_CONFIG_FILE" not in env:
        full_env.pop("ACCELERATE_CONFIG_FILE", None)
    return subprocess.Popen(["bash", "-c", script, "zemi_launch", *module_and_args], cwd=REPO, env=full_env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def printed_command(done: subprocess.Popen) -> list[str]:
    _, stderr = done.communicate(timeout=120)
    assert done.returncode == 0, stderr[-2000:]
    return next(line for line in stderr.splitlines() if line.startswith("+ ")).split()


@pytest.mark.parametrize("config", ["ddp.yaml", "fsdp.yaml", "deepspeed_zero2.yaml"])
def test_zemi_launch_uses_the_accelerate_config_file(tmp_path, config):
    command = printed_command(zemi_launch(["zemi", "eval", "--help"], home=tmp_path, python="true",
                                          ACCELERATE_CONFIG_FILE=str(CONFIGS / config)))
    assert command[command.index("--config_file") + 1] == str(CONFIGS / config)
    assert "--num_processes" not in command and "--num_machines" not in command  # the file decides
    assert command[-3:] == ["zemi", "eval", "--help"]
    assert "--main_process_port" not in command  # unless MAIN_PROCESS_PORT is set, the file's port


def test_zemi_launch_reads_accelerates_default_config_and_passes_the_machine_settings(tmp_path):
    default = tmp_path / "accelerate" / "default_config.yaml"
    default.parent.mkdir()
    default.write_text((CONFIGS / "ddp.yaml").read_text())
    command = printed_command(zemi_launch(["zemi", "eval"], home=tmp_path, python="true", NUM_MACHINES="2",
                                          MACHINE_RANK="1", MAIN_PROCESS_IP="127.0.0.2", MAIN_PROCESS_PORT="29999"))
    assert command[command.index("--config_file") + 1] == str(default)
    for flag, value in (("--num_machines", "2"), ("--machine_rank", "1"), ("--main_process_ip", "127.0.0.2"),
                        ("--main_process_port", "29999")):
        assert command[command.index(flag) + 1] == value


def test_several_machines_without_a_config_need_the_main_address(tmp_path):
    done = zemi_launch(["zemi", "eval"], home=tmp_path, python="true", NUM_MACHINES="2", MACHINE_RANK="1")
    _, stderr = done.communicate(timeout=120)
    assert done.returncode == 2 and "needs MAIN_PROCESS_IP" in stderr


def final(run_dir: Path) -> dict[str, torch.Tensor]:
    return load_file(run_dir / f"step_{STEPS_PER_EPOCH}" / "model.safetensors")


def assert_same_weights(got: dict, expected: dict) -> None:
    assert got.keys() == expected.keys()
    for name in expected:
        assert torch.allclose(got[name], expected[name], atol=1e-6, rtol=0), name


def test_two_machines_end_with_the_weights_of_one_machine(tmp_path, no_aug_two_processes, backbone_without_dropout,
                                                          data_root):
    run_dir = tmp_path / "run"
    port = free_port()
    machines = [zemi_launch(["zemi.multi_task_fine_tune_baseline",
                             *one_epoch_no_aug_flags(backbone_without_dropout, data_root, run_dir, batch=2)],
                            home=tmp_path, NUM_MACHINES="2", MACHINE_RANK=str(rank), MAIN_PROCESS_IP="127.0.0.1",
                            MAIN_PROCESS_PORT=port)
                for rank in (0, 1)]
    outputs = [machine.communicate(timeout=600) for machine in machines]
    for machine, (_, stderr) in zip(machines, outputs):
        assert machine.returncode == 0, stderr[-3000:]
    command = next(line for line in outputs[1][1].splitlines() if line.startswith("+ ")).split()
    assert command[command.index("--machine_rank") + 1] == "1" and command[command.index("--num_processes") + 1] == "2"
    assert_same_weights(final(run_dir), final(no_aug_two_processes))
    assert read_csv(run_dir / "train_log.csv")[-1]["loss"] == \
        read_csv(no_aug_two_processes / "train_log.csv")[-1]["loss"]


def test_two_processes_killed_and_resumed_end_as_if_uninterrupted(tmp_path, no_aug_two_processes,
                                                                  backbone_without_dropout, data_root):
    run_dir = tmp_path / "run"
    flags = one_epoch_no_aug_flags(backbone_without_dropout, data_root, run_dir, batch=2)
    # The second process lags by 2 s at every state save: the state is published only once it has written its part.
    killed = launch("zemi.multi_task_fine_tune_baseline", flags, processes=2,
                    env=subprocess_env(ZEMI_CRASH_AT="step:6", ZEMI_SLOW_AT="state_save:2"))
    assert killed.returncode != 0  # accelerate launch reports its killed children as a failure
    state = run_dir / "checkpoints" / "step_4"
    # Each process's part of the state (here its RNG states) is in the one published directory.
    assert {"random_states_0.pkl", "random_states_1.pkl", "trainer_state.json"} <= {p.name for p in state.iterdir()}
    assert not list((run_dir / "checkpoints").glob(".*"))
    resumed = launch("zemi.multi_task_fine_tune_baseline", flags, processes=2)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resumed from" in resumed.stderr
    assert_same_weights(final(run_dir), final(no_aug_two_processes))
    assert [int(r["step"]) for r in read_csv(run_dir / "train_log.csv")] == list(range(1, STEPS_PER_EPOCH + 1))


def test_the_gathered_checkpoint_has_the_layout_of_a_one_process_run(no_aug_two_processes, no_aug_one_process):
    expected, got = final(no_aug_one_process), final(no_aug_two_processes)
    assert {k: (v.shape, v.dtype) for k, v in got.items()} == {k: (v.shape, v.dtype) for k, v in expected.items()}
