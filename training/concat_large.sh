#!/usr/bin/env bash
# Concat: T5 (t5-large-lm-adapt) with the top CONCAT_AUG_NUM documents appended to its input; then zero-shot
# evaluation and Table 1. Settings: SETUP_ENV.sh (the preset of zemi/run/presets.py), overridable from the environment.
set -euo pipefail
source "$(dirname "$0")/common.sh"  # the repository root, SETUP_ENV.sh's settings, the launcher

zemi_train concat_large baseline "$LM_LARGE" "$BS_LARGE" --concat_aug_num "$CONCAT_AUG_NUM"
zemi_evaluate concat_large
zemi_report large "$REPORT_DIR_LARGE"
