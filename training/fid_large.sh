#!/usr/bin/env bash
# FiD baseline: each 'input + document' encoded alone, the decoder reads them all (t5-large-lm-adapt).
# Multitask training on the P3 mixture, zero-shot evaluation on the held-out tasks, then the Table 1 report.
# Settings: SETUP_ENV.sh, each overridable from the environment. SKIP_TRAIN=1 evaluates an existing run directory
# instead, e.g. the authors' checkpoint placed at output/p3_finetuning/fid_large.
set -euo pipefail
cd "$(dirname "$0")/.." && source ./SETUP_ENV.sh && source "$TRAINING_SRC_ROOT/common.sh"

zemi_run fid large xattn --model_architecture FiD --perceiver_config "$PERCEIVER_CONFIG_LARGE" \
    --concat_input_at_augmentation
