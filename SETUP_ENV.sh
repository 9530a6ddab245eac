# Settings of the training/*.sh scripts; source it from the repository root. The recipe and paths come from one
# table, zemi/run/presets.py; every variable can be overridden from the environment, so one script serves a laptop
# and an 8-GPU node:
#   ZEMI_PRESET=paper (default)  the paper's recipe on the authors' 30aug data and google/t5-*-lm-adapt
#   ZEMI_PRESET=demo             the embedded demo (data/demo): tiny backbone, small mixture, CPU, minutes
# Examples:  EPOCHS=3 bash ./training/zemi_base.sh     SKIP_TRAIN=1 bash ./training/fid_base.sh
# Launching: a user's `accelerate config` (ACCELERATE_CONFIG_FILE, or accelerate's default config file) is used
# when one exists; otherwise one process per visible GPU. Several machines: NUM_MACHINES, MACHINE_RANK,
# MAIN_PROCESS_IP, MAIN_PROCESS_PORT (README, "Several machines").

ZEMI_REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
export ZEMI_REPO_ROOT ZEMI_PRESET="${ZEMI_PRESET:-paper}"

# Python of the project environment (make install creates .venv).
if [ -z "${PYTHON:-}" ]; then
    if [ -x "$ZEMI_REPO_ROOT/.venv/bin/python" ]; then PYTHON="$ZEMI_REPO_ROOT/.venv/bin/python"; else PYTHON=python; fi
fi
export PYTHON

# GPUs and precision: bf16 autocast on GPUs that have it (same accuracy, several times faster;
# tests/test_precision.py), else fp32; MIXED_PRECISION=no is the published fp32 exactly.
if [ -z "${NUM_GPUS:-}" ] || [ -z "${MIXED_PRECISION:-}" ]; then
    read -r detected_gpus detected_precision < <("$PYTHON" -c 'import torch; cuda = torch.cuda.is_available()
print(torch.cuda.device_count(), "bf16" if cuda and torch.cuda.is_bf16_supported() else "no")' 2>/dev/null || echo "0 no")
    NUM_GPUS="${NUM_GPUS:-$detected_gpus}"
    MIXED_PRECISION="${MIXED_PRECISION:-$detected_precision}"
fi
export NUM_GPUS MIXED_PRECISION
export NUM_MACHINES="${NUM_MACHINES:-1}" MACHINE_RANK="${MACHINE_RANK:-0}"
# MAIN_PROCESS_PORT: unset leaves the port to an accelerate config file, else 20655 (training/common.sh).
export MAIN_PROCESS_IP="${MAIN_PROCESS_IP:-}" MAIN_PROCESS_PORT="${MAIN_PROCESS_PORT:-}"
export NUM_PROCESSES="${NUM_PROCESSES:-$(( (NUM_GPUS > 0 ? NUM_GPUS : 1) * NUM_MACHINES ))}"  # over all machines

export TRAINING_SRC_ROOT="${TRAINING_SRC_ROOT:-$ZEMI_REPO_ROOT/training}"
export DATA_ROOT="${DATA_ROOT:-$ZEMI_REPO_ROOT/data}"
# The preset: recipe (EPOCHS, LR, BS_BASE, ...), backbones, perceiver configs, task lists, data and output paths.
preset_lines="$("$PYTHON" -m zemi.run.presets "$ZEMI_PRESET" --shell --repo_root "$ZEMI_REPO_ROOT")" || {
    echo "ERROR: cannot read preset '$ZEMI_PRESET' with $PYTHON (run 'make install' first?)" >&2; return 2 2>/dev/null || exit 2; }
eval "$preset_lines"
unset preset_lines

export EXTRA_TRAIN_ARGS="${EXTRA_TRAIN_ARGS:-}"    # e.g. "--group_by_length --report_to tensorboard"
export EXTRA_EVAL_ARGS="${EXTRA_EVAL_ARGS:-}"
export TOKENIZERS_PARALLELISM=false
[ -n "${ZEMI_QUIET:-}" ] || echo "[SETUP_ENV] preset=$ZEMI_PRESET data=$AUG_DATA_ROOT output=$OUTPUT_SRC_ROOT processes=$NUM_PROCESSES (GPUs: $NUM_GPUS, machines: $NUM_MACHINES)"
