#!/usr/bin/env bash
# Concat: T5 (t5-base-lm-adapt) with the top CONCAT_AUG_NUM documents appended to its input; then zero-shot
# evaluation and Table 1. Settings: SETUP_ENV.sh (the preset of zemi/run/presets.py), overridable from the environment.
set -euo pipefail
source "$(dirname "$0")/common.sh"  # the repository root, SETUP_ENV.sh's settings, the launcher

zemi_train concat_base baseline "$LM_BASE" "$BS_BASE" --concat_aug_num "$CONCAT_AUG_NUM"
zemi_evaluate concat_base
zemi_report base "$REPORT_DIR_BASE"
