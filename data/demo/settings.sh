# The demo's recipe, sourced by SETUP_ENV.sh when ZEMI_PRESET=demo (every value can still be overridden from the
# environment). The paper's recipe with a budget that fits a laptop CPU: one epoch over 125 examples per template
# (8 tasks x 2 templates x 125 = 2,000 examples, 125 steps of 16, batches of similar length), and lengths that fit the demo's short texts
# (documents are at most ~64 tokens; answers a few words).
export EPOCHS="${EPOCHS:-1}"
export LR="${LR:-1e-3}"
export BS_BASE="${BS_BASE:-16}"
export EVAL_BS="${EVAL_BS:-32}"
export MAX_LENGTH="${MAX_LENGTH:-320}"
export AUG_MAX_LENGTH="${AUG_MAX_LENGTH:-64}"
export TARGET_MAX_LENGTH="${TARGET_MAX_LENGTH:-16}"
export EXTRA_TRAIN_ARGS="${EXTRA_TRAIN_ARGS:---num_shots 125 --group_by_length}"
