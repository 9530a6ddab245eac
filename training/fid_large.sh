#!/usr/bin/env bash
# FiD: each document (prefixed with the input) encoded separately by T5 (t5-large-lm-adapt), the decoder reads them all;
# then zero-shot evaluation and Table 1. Settings: SETUP_ENV.sh (the preset of zemi/run/presets.py).
set -euo pipefail
cd "$(dirname "$0")/.."
source ./SETUP_ENV.sh  # each on its own line, so that set -e ends the script if one fails
source training/common.sh

zemi_train fid_large xattn "$LM_LARGE" "$BS_LARGE" --model_architecture FiD \
    --perceiver_config "$PERCEIVER_CONFIG_LARGE" --concat_input_at_augmentation
zemi_evaluate fid_large
zemi_report large "$REPORT_DIR_LARGE"
