#!/usr/bin/env bash
# FiD: each document (prefixed with the input) encoded separately by T5 (t5-base-lm-adapt), the decoder reads them all;
# then zero-shot evaluation and Table 1. Settings: SETUP_ENV.sh (the preset of zemi/run/presets.py).
set -euo pipefail
source "$(dirname "$0")/common.sh"  # the repository root, SETUP_ENV.sh's settings, the launcher

zemi_train fid_base xattn "$LM_BASE" "$BS_BASE" --model_architecture FiD \
    --perceiver_config "$PERCEIVER_CONFIG_BASE" --concat_input_at_augmentation
zemi_evaluate fid_base
zemi_report base "$REPORT_DIR_BASE"
