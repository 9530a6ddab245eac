#!/usr/bin/env bash
# FiD: each document (prefixed with the input) encoded separately by T5 (t5-base-lm-adapt), the decoder reads them all;
# then zero-shot evaluation and Table 1. Settings: SETUP_ENV.sh (the preset of zemi/run/presets.py).
set -euo pipefail
cd "$(dirname "$0")/.."
source ./SETUP_ENV.sh  # each on its own line, so that set -e ends the script if one fails
source training/common.sh

zemi_train fid_base xattn "$LM_BASE" "$BS_BASE" --model_architecture FiD \
    --perceiver_config "$PERCEIVER_CONFIG_BASE" --concat_input_at_augmentation
zemi_evaluate fid_base
zemi_report base "$REPORT_DIR_BASE"
