#!/usr/bin/env bash
# The embedded demo (`make demo`): the whole Zemi pipeline, offline, on a laptop CPU, on real text (WordNet 3.0).
# 1. BM25 retrieval over the demo corpus builds the demo's 30aug data (finished templates are kept);
# 2. the same four training/*_base.sh scripts as the paper's reproduction train, evaluate and report, with the demo
#    preset (ZEMI_PRESET=demo; its recipe is zemi/run/presets.py's DEMO);
# 3. the four runs' training curves (output/demo/loss.png, gates.png) and the retrieval visualization files of the
#    demo data. Table 1: output/demo/table1.md, results.json, table1.png.
# Rerunning resumes: finished training runs and evaluations are not repeated.
set -euo pipefail
export ZEMI_PRESET=demo
source "$(dirname "$0")/common.sh"  # the repository root, SETUP_ENV.sh, the launcher
started=$(date +%s)

# The demo's data, where its preset reads it (AUG_DATA_ROOT overrides, as in the scripts), for its tasks.
data_root="${AUG_DATA_ROOT:-$(zemi_preset_value dataset_root_path base)}"
tasks="${TRAIN_MIXTURE:-$(zemi_preset_value train_tasks base)} ${EVAL_TASKS:-$(zemi_preset_value eval_tasks base)}"
# shellcheck disable=SC2086
"$PYTHON" -m zemi build-data --tasks $(printf "$DATA_ROOT/demo/tasks/%s " $tasks) \
    --corpus "$DATA_ROOT/demo/corpus.jsonl.gz" --output "$data_root" \
    --documents_per_example "${DEMO_DOCUMENTS_PER_EXAMPLE:-5}" ${DEMO_BUILD_ARGS:-}
for method in no_aug concat fid zemi; do
    bash "$TRAINING_SRC_ROOT/${method}_base.sh"
done
# The four runs' training curves overlaid: loss.png, and gates.png (Zemi's gates).
zemi_plot "$OUTPUT_SRC_ROOT" "$OUTPUT_SRC_ROOT"/p3_finetuning/{no_aug,concat,fid,zemi}_base
"$PYTHON" -m zemi visualize --data_root "$data_root" --output "${VISUALIZATION_DIR:-visualization}" \
    --title "the embedded demo (data/demo: WordNet corpus and tasks)"  # as visualization/regenerate_demo.sh

# 4. One held-out question (the first validation row of the first held-out task's first template) answered by the
#    Zemi run, retrieving its documents from the index the data build kept beside the data.
held_out="${EVAL_TASKS:-$(zemi_preset_value eval_tasks base)}"
question=$(find "$data_root/${held_out%% *}" -mindepth 1 -maxdepth 1 -type d | sort | head -n 1)
echo "+ $PYTHON -m zemi predict --model $OUTPUT_SRC_ROOT/p3_finetuning/zemi_base --index ${data_root%/}.bm25 --template_dir $question" >&2
"$PYTHON" -m zemi predict --model "$OUTPUT_SRC_ROOT/p3_finetuning/zemi_base" --index "${data_root%/}.bm25" \
    --template_dir "$question" --row 0

echo "The demo took $(( $(date +%s) - started )) s. Table 1: $(zemi_preset_value report_dir base)/table1.md (and results.json, table1.png)"
