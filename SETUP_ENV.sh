# Settings of the training/*.sh scripts. Source it from the repository root; every variable can be overridden from
# the environment, so one script serves a laptop and an 8-GPU node:
#   ZEMI_PRESET=paper (default)  the paper's recipe on the authors' 30aug data and google/t5-*-lm-adapt
#   ZEMI_PRESET=demo             the embedded demo (data/demo): tiny backbone, small mixture, CPU, minutes
# Examples:  NUM_PROCESSES=4 bash ./training/zemi_base.sh     SKIP_TRAIN=1 bash ./training/fid_base.sh

ZEMI_REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
export ZEMI_PRESET="${ZEMI_PRESET:-paper}"

# Python of the project environment (make install creates .venv), and the accelerate launcher.
if [ -z "${PYTHON:-}" ]; then
    if [ -x "$ZEMI_REPO_ROOT/.venv/bin/python" ]; then PYTHON="$ZEMI_REPO_ROOT/.venv/bin/python"; else PYTHON=python; fi
fi
export PYTHON

# Processes: one per visible GPU, or one CPU process. Precision: bf16 autocast on GPUs that have it (same accuracy,
# several times faster; tests/test_precision.py), else fp32; MIXED_PRECISION=no is the published fp32 exactly.
if [ -z "${NUM_GPUS:-}" ] || [ -z "${MIXED_PRECISION:-}" ]; then
    read -r detected_gpus detected_precision < <("$PYTHON" -c 'import torch; cuda = torch.cuda.is_available()
print(torch.cuda.device_count(), "bf16" if cuda and torch.cuda.is_bf16_supported() else "no")' 2>/dev/null || echo "0 no")
    NUM_GPUS="${NUM_GPUS:-$detected_gpus}"
    MIXED_PRECISION="${MIXED_PRECISION:-$detected_precision}"
fi
export NUM_GPUS MIXED_PRECISION
export NUM_PROCESSES="${NUM_PROCESSES:-$(( NUM_GPUS > 0 ? NUM_GPUS : 1 ))}"
export MAIN_PROCESS_PORT="${MAIN_PROCESS_PORT:-20655}"

export TRAINING_SRC_ROOT="${TRAINING_SRC_ROOT:-$ZEMI_REPO_ROOT/training}"
export DATA_ROOT="${DATA_ROOT:-$ZEMI_REPO_ROOT/data}"

if [ "$ZEMI_PRESET" = demo ]; then
    export OUTPUT_SRC_ROOT="${OUTPUT_SRC_ROOT:-$ZEMI_REPO_ROOT/output/demo}"
    export AUG_DATA_ROOT="${AUG_DATA_ROOT:-$OUTPUT_SRC_ROOT/data/30aug}"
    export LM_BASE="${LM_BASE:-$DATA_ROOT/demo/backbone}"
    export PERCEIVER_CONFIG_BASE="${PERCEIVER_CONFIG_BASE:-$DATA_ROOT/demo/perceiver_config.json}"
    DEMO_MIXTURE_FILE="$DATA_ROOT/demo/tasks/mixture.json"
    zemi_demo_tasks() { "$PYTHON" -c 'import json, sys; print(" ".join(json.load(open(sys.argv[1]))[sys.argv[2]]))' "$DEMO_MIXTURE_FILE" "$1"; }
    export TRAIN_MIXTURE="${TRAIN_MIXTURE:-$(zemi_demo_tasks train)}"
    export EVAL_TASKS="${EVAL_TASKS:-$(zemi_demo_tasks eval)}"
    export REPORT_DIR_BASE="${REPORT_DIR_BASE:-$OUTPUT_SRC_ROOT}"
    export DEMO_SETTINGS_FILE="${DEMO_SETTINGS_FILE:-$DATA_ROOT/demo/settings.sh}"
    # The demo's recipe (epochs, lengths, batch sizes, learning rate) lives beside its data.
    [ -f "$DEMO_SETTINGS_FILE" ] && source "$DEMO_SETTINGS_FILE"
else
    export OUTPUT_SRC_ROOT="${OUTPUT_SRC_ROOT:-$ZEMI_REPO_ROOT/output}"
    export AUG_DATA_ROOT="${AUG_DATA_ROOT:-$DATA_ROOT/p3_c4_document_level_chosen_examples/30aug}"
    export LM_BASE="${LM_BASE:-google/t5-base-lm-adapt}"
    export PERCEIVER_CONFIG_BASE="${PERCEIVER_CONFIG_BASE:-$TRAINING_SRC_ROOT/perceiver_configs/xattn_multi_aug_config_v1_v3_5aug.json}"
    export TRAIN_MIXTURE="${TRAIN_MIXTURE:-cos_e_v1.11 cosmos_qa dream qasc quartz sciq social_i_qa wiqa}"
    export EVAL_TASKS="${EVAL_TASKS:-openbookqa_main piqa super_glue_wic super_glue_cb super_glue_copa rotten_tomatoes hellaswag}"
    export REPORT_DIR_BASE="${REPORT_DIR_BASE:-$OUTPUT_SRC_ROOT/report/base}"
fi
export LM_LARGE="${LM_LARGE:-google/t5-large-lm-adapt}"
export PERCEIVER_CONFIG_LARGE="${PERCEIVER_CONFIG_LARGE:-$TRAINING_SRC_ROOT/perceiver_configs/xattn_multi_aug_config_v1_v3_5aug_t5_large.json}"
export REPORT_DIR_LARGE="${REPORT_DIR_LARGE:-$OUTPUT_SRC_ROOT/report/large}"

# The paper's recipe (training/README.md); the demo settings file may have set some of these already.
export EPOCHS="${EPOCHS:-10}"
export LR="${LR:-1e-4}"
export SAMPLE_N="${SAMPLE_N:-2}"
export BS_BASE="${BS_BASE:-4}"                # per process; the paper used 8 processes (global batch 32)
export BS_LARGE="${BS_LARGE:-1}"
export GRAD_ACCUM="${GRAD_ACCUM:-1}"
export EVAL_BS="${EVAL_BS:-8}"
export MAX_LENGTH="${MAX_LENGTH:-1024}"
export AUG_MAX_LENGTH="${AUG_MAX_LENGTH:-256}"
export TARGET_MAX_LENGTH="${TARGET_MAX_LENGTH:-256}"
export CONCAT_AUG_NUM="${CONCAT_AUG_NUM:-5}"
export EXTRA_TRAIN_ARGS="${EXTRA_TRAIN_ARGS:-}"    # e.g. "--group_by_length --checkpointing_steps 2000"
export EXTRA_EVAL_ARGS="${EXTRA_EVAL_ARGS:-}"


export TOKENIZERS_PARALLELISM=false
[ -n "${ZEMI_QUIET:-}" ] || echo "[SETUP_ENV] preset=$ZEMI_PRESET data=$AUG_DATA_ROOT output=$OUTPUT_SRC_ROOT processes=$NUM_PROCESSES (GPUs: $NUM_GPUS)"
