#!/usr/bin/env bash
# No Aug baseline: plain T5 on the prompted input (t5-base-lm-adapt).
# Multitask training on the P3 mixture, zero-shot evaluation on the held-out tasks, then the Table 1 report.
# Settings: SETUP_ENV.sh, each overridable from the environment. SKIP_TRAIN=1 evaluates an existing run directory
# instead, e.g. the authors' checkpoint placed at output/p3_finetuning/no_aug_base.
set -euo pipefail
cd "$(dirname "$0")/.." && source ./SETUP_ENV.sh && source "$TRAINING_SRC_ROOT/common.sh"

zemi_run no_aug base baseline --concat_aug_num 0
