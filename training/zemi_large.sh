#!/usr/bin/env bash
# Zemi: T5 + Perceiver resampler + gated cross-attention over the retrieved documents (t5-large-lm-adapt).
# Multitask training on the P3 mixture, zero-shot evaluation on the held-out tasks, then the Table 1 report.
# Settings come from SETUP_ENV.sh, each overridable from the environment. SKIP_TRAIN=1 evaluates an existing run
# directory instead, e.g. the authors' checkpoint placed at output/p3_finetuning/zemi_large.
set -euo pipefail
cd "$(dirname "$0")/.."
source ./SETUP_ENV.sh
source "$TRAINING_SRC_ROOT/common.sh"

RUN=zemi_large
[ -n "${SKIP_TRAIN:-}" ] || zemi_check_model "$LM_LARGE"
zemi_train xattn "$RUN" --model_architecture SharedEncoderDecoder_MultiAug --lm_name "$LM_LARGE" --perceiver_config "$PERCEIVER_CONFIG_LARGE" --per_device_train_batch_size "$BS_LARGE"
zemi_evaluate "$RUN"
zemi_report large
