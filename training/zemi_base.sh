#!/usr/bin/env bash
# Zemi: T5 + Perceiver resampler + gated cross-attention over the retrieved documents (t5-base-lm-adapt).
# Multitask training on the P3 mixture, zero-shot evaluation on the held-out tasks, then the Table 1 report.
# Settings: SETUP_ENV.sh, each overridable from the environment. SKIP_TRAIN=1 evaluates an existing run directory
# instead, e.g. the authors' checkpoint placed at output/p3_finetuning/zemi_base.
set -euo pipefail
cd "$(dirname "$0")/.." && source ./SETUP_ENV.sh && source "$TRAINING_SRC_ROOT/common.sh"

zemi_run zemi base xattn --model_architecture SharedEncoderDecoder_MultiAug \
    --perceiver_config "$PERCEIVER_CONFIG_BASE"
