#!/usr/bin/env bash
# Concat: T5 (t5-large-lm-adapt) with the top CONCAT_AUG_NUM (default 5) documents appended to its input.
# Multitask training on the P3 mixture (one run per seed of SEEDS), zero-shot evaluation on the held-out tasks, then
# Table 1. The recipe: the preset of zemi/run/presets.py (ZEMI_PRESET); overrides: training/common.sh and the README.
# SKIP_TRAIN=1 evaluates an existing run directory instead, e.g. the authors' checkpoint placed at
# output/p3_finetuning/concat_large.
set -euo pipefail
source "$(dirname "$0")/common.sh"  # the repository root, SETUP_ENV.sh, the launcher

zemi_train_and_evaluate concat large --concat_aug_num "${CONCAT_AUG_NUM:-5}"
zemi_report large
