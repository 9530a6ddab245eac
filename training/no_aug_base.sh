#!/usr/bin/env bash
# No Aug: T5 (t5-base-lm-adapt) fine-tuned on the P3 mixture without documents.
# Multitask training on the P3 mixture (one run per seed of SEEDS), zero-shot evaluation on the held-out tasks, then
# Table 1. The recipe: the preset of zemi/run/presets.py (ZEMI_PRESET); overrides: training/common.sh and the README.
# SKIP_TRAIN=1 evaluates an existing run directory instead, e.g. the authors' checkpoint placed at
# output/p3_finetuning/no_aug_base.
set -euo pipefail
source "$(dirname "$0")/common.sh"  # the repository root, SETUP_ENV.sh, the launcher

zemi_train_and_evaluate no_aug base --concat_aug_num 0
zemi_report base
