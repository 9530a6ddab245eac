# The authors' environment file: where the data, the scripts and the outputs are, and which preset the training
# scripts run. Source it from the repository root (the scripts do). The recipe is not here: zemi-train and zemi-eval
# take it from their --preset (zemi/run/presets.py); training/common.sh turns the documented overrides (EPOCHS=3,
# LR=..., README) into flags.
#   ZEMI_PRESET=paper (default)  the paper's recipe on the authors' 30aug data and google/t5-*-lm-adapt
#   ZEMI_PRESET=demo             the embedded demo (data/demo): tiny backbone, small mixture, CPU, minutes

ZEMI_REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
export ZEMI_REPO_ROOT ZEMI_PRESET="${ZEMI_PRESET:-paper}"

# Python of the project environment (make install creates .venv).
if [ -z "${PYTHON:-}" ]; then
    if [ -x "$ZEMI_REPO_ROOT/.venv/bin/python" ]; then PYTHON="$ZEMI_REPO_ROOT/.venv/bin/python"; else PYTHON=python; fi
fi
export PYTHON

export DATA_ROOT="${DATA_ROOT:-$ZEMI_REPO_ROOT/data}"
export TRAINING_SRC_ROOT="${TRAINING_SRC_ROOT:-$ZEMI_REPO_ROOT/training}"
export EVAL_SRC_ROOT="${EVAL_SRC_ROOT:-$ZEMI_REPO_ROOT/training}"  # the same scripts train and evaluate
# The preset's output root (output/, or output/demo/ for the demo), which also checks the preset's name.
preset_output="$(cd "$ZEMI_REPO_ROOT" && "$PYTHON" -m zemi preset --preset "$ZEMI_PRESET" --data_root "$DATA_ROOT" \
    --get output_root)" || {
    echo "ERROR: cannot read preset '$ZEMI_PRESET' with $PYTHON (the presets: paper, demo; run 'make install' first?)" >&2
    return 2 2>/dev/null || exit 2; }
export OUTPUT_SRC_ROOT="${OUTPUT_SRC_ROOT:-$ZEMI_REPO_ROOT/$preset_output}"
unset preset_output
export TOKENIZERS_PARALLELISM=false
[ -n "${ZEMI_QUIET:-}" ] || echo "[SETUP_ENV] preset=$ZEMI_PRESET DATA_ROOT=$DATA_ROOT OUTPUT_SRC_ROOT=$OUTPUT_SRC_ROOT"
