#!/usr/bin/env bash
# FiD: each document (prefixed with the input) encoded separately by T5 (t5-large-lm-adapt), the decoder reads them all;
# then zero-shot evaluation and Table 1. Settings: SETUP_ENV.sh (the preset of zemi/run/presets.py).
set -euo pipefail
source "$(dirname "$0")/common.sh"  # the repository root, SETUP_ENV.sh's settings, the launcher

zemi_train fid_large xattn "$LM_LARGE" "$BS_LARGE" --model_architecture FiD \
    --perceiver_config "$PERCEIVER_CONFIG_LARGE" --concat_input_at_augmentation
zemi_evaluate fid_large
zemi_report large "$REPORT_DIR_LARGE"
