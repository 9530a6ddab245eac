#!/usr/bin/env bash
# Zemi: T5 (t5-large-lm-adapt) + Perceiver resampler + gated cross-attention over the retrieved documents. Multitask
# training on the P3 mixture, zero-shot evaluation on the held-out tasks, then Table 1. Settings: SETUP_ENV.sh (the
# preset of zemi/run/presets.py). SKIP_TRAIN=1 evaluates an existing run directory instead, e.g. the authors'
# checkpoint placed at output/p3_finetuning/zemi_large.
set -euo pipefail
source "$(dirname "$0")/common.sh"  # the repository root, SETUP_ENV.sh's settings, the launcher

zemi_train zemi_large xattn "$LM_LARGE" "$BS_LARGE" --model_architecture SharedEncoderDecoder_MultiAug \
    --perceiver_config "$PERCEIVER_CONFIG_LARGE"
zemi_evaluate zemi_large
zemi_report large "$REPORT_DIR_LARGE"
