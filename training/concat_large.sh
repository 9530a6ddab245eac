#!/usr/bin/env bash
# Concat baseline: T5 on the input followed by the top $CONCAT_AUG_NUM retrieved documents (t5-large-lm-adapt).
# Multitask training on the P3 mixture, zero-shot evaluation on the held-out tasks, then the Table 1 report.
# Settings come from SETUP_ENV.sh, each overridable from the environment. SKIP_TRAIN=1 evaluates an existing run
# directory instead, e.g. the authors' checkpoint placed at output/p3_finetuning/concat_large.
set -euo pipefail
cd "$(dirname "$0")/.."
source ./SETUP_ENV.sh
source "$TRAINING_SRC_ROOT/common.sh"

RUN=concat_large
[ -n "${SKIP_TRAIN:-}" ] || zemi_check_model "$LM_LARGE"
zemi_train baseline "$RUN" --model_name_or_path "$LM_LARGE" --per_device_train_batch_size "$BS_LARGE" --concat_aug_num "$CONCAT_AUG_NUM"
zemi_evaluate "$RUN"
zemi_report large
