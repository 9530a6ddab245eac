#!/usr/bin/env bash
# No Aug: T5 (t5-base-lm-adapt) fine-tuned on the P3 mixture without documents, then zero-shot evaluation and Table 1.
# Settings: SETUP_ENV.sh (the preset of zemi/run/presets.py), each overridable from the environment.
set -euo pipefail
source "$(dirname "$0")/common.sh"  # the repository root, SETUP_ENV.sh's settings, the launcher

zemi_train no_aug_base baseline "$LM_BASE" "$BS_BASE" --concat_aug_num 0
zemi_evaluate no_aug_base
zemi_report base "$REPORT_DIR_BASE"
