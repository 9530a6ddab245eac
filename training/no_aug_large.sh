#!/usr/bin/env bash
# No Aug: T5 (t5-large-lm-adapt) fine-tuned on the P3 mixture without documents, then zero-shot evaluation and Table 1.
# Settings: SETUP_ENV.sh (the preset of zemi/run/presets.py), each overridable from the environment.
set -euo pipefail
cd "$(dirname "$0")/.."
source ./SETUP_ENV.sh  # each on its own line, so that set -e ends the script if one fails
source training/common.sh

zemi_train no_aug_large baseline "$LM_LARGE" "$BS_LARGE" --concat_aug_num 0
zemi_evaluate no_aug_large
zemi_report large "$REPORT_DIR_LARGE"
