#!/usr/bin/env bash
# Concat baseline: T5 on the input followed by the top CONCAT_AUG_NUM (5) retrieved documents (t5-base-lm-adapt).
# Multitask training on the P3 mixture, zero-shot evaluation on the held-out tasks, then the Table 1 report.
# Settings: SETUP_ENV.sh, each overridable from the environment. SKIP_TRAIN=1 evaluates an existing run directory
# instead, e.g. the authors' checkpoint placed at output/p3_finetuning/concat_base.
set -euo pipefail
cd "$(dirname "$0")/.." && source ./SETUP_ENV.sh && source "$TRAINING_SRC_ROOT/common.sh"

zemi_run concat base baseline --concat_aug_num "$CONCAT_AUG_NUM"
