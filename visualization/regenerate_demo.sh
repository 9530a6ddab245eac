#!/usr/bin/env bash
# Rewrite the committed demo visualization (this folder) from scratch: build the embedded demo's 30aug data as
# training/demo.sh does, into a temporary folder (the repository's output/ is left alone), then visualize it here.
set -euo pipefail
export ZEMI_PRESET=demo ZEMI_QUIET=1
source "$(dirname "$0")/../training/common.sh"  # the repository root, SETUP_ENV.sh, the preset's values
data=$(mktemp -d)
trap 'rm -rf "$data"' EXIT

tasks="$(zemi_preset_value train_tasks base) $(zemi_preset_value eval_tasks base)"
# shellcheck disable=SC2086
"$PYTHON" -m zemi build-data --tasks $(printf "$DATA_ROOT/demo/tasks/%s " $tasks) \
    --corpus "$DATA_ROOT/demo/corpus.jsonl.gz" --output "$data/30aug" \
    --documents_per_example "${DEMO_DOCUMENTS_PER_EXAMPLE:-5}" ${DEMO_BUILD_ARGS:-}
"$PYTHON" -m zemi visualize --data_root "$data/30aug" --output visualization \
    --title "the embedded demo (data/demo: WordNet corpus and tasks)"
