# Functions shared by the eight training/*_{base,large}.sh scripts: train, evaluate on the held-out tasks, report.
# Sourced after SETUP_ENV.sh. Set SKIP_TRAIN=1 to evaluate an existing run directory (e.g. the authors' checkpoints).

AUTHORS_DOWNLOAD="https://uofi.box.com/s/wnt6cv7icuir4q3wb2a6viuyklme5dga"

zemi_fail() { echo "ERROR: $*" >&2; exit 2; }

# accelerate launch with the detected number of processes. Without GPUs, accelerate's --cpu launcher starts a
# single process (more need MPI), so CPU process groups use its torch.distributed launcher with gloo instead.
zemi_launch() {
    local args=(--num_processes "$NUM_PROCESSES" --num_machines 1 --main_process_port "$MAIN_PROCESS_PORT"
                --mixed_precision "$MIXED_PRECISION" --dynamo_backend no)
    if [ "$NUM_PROCESSES" -gt 1 ]; then args+=(--multi_gpu); fi
    if [ "$NUM_GPUS" -eq 0 ]; then
        [ "$NUM_PROCESSES" -gt 1 ] || args+=(--cpu)
        args+=(--num_cpu_threads_per_process "${CPU_THREADS:-$(( $(nproc) / NUM_PROCESSES > 0 ? $(nproc) / NUM_PROCESSES : 1 ))}")
        ACCELERATE_USE_CPU=true "$PYTHON" -m accelerate.commands.launch "${args[@]}" -m "$@"
    else
        "$PYTHON" -m accelerate.commands.launch "${args[@]}" -m "$@"
    fi
}

zemi_check_data() {
    [ -d "$AUG_DATA_ROOT" ] || zemi_fail "the 30aug data root $AUG_DATA_ROOT does not exist.
  Download the authors' preprocessed data ('dataset') from $AUTHORS_DOWNLOAD and unzip 30aug.zip into
  $DATA_ROOT/p3_c4_document_level_chosen_examples/ (or set AUG_DATA_ROOT), or rebuild it:
  $PYTHON -m zemi.data.build --help   (docs/retrieval.md).  For the offline demo: make demo"
    local task
    for task in $TRAIN_MIXTURE $EVAL_TASKS; do
        [ -d "$AUG_DATA_ROOT/$task" ] || zemi_fail "$AUG_DATA_ROOT/$task is missing (dataset dirs expected: $TRAIN_MIXTURE $EVAL_TASKS)"
    done
}

# A hub model name must be reachable (or cached); fail in seconds rather than after loading data.
zemi_check_model() {
    local model="$1"
    [ -d "$model" ] && return 0
    HF_HUB_ETAG_TIMEOUT=10 HF_HUB_DOWNLOAD_TIMEOUT=10 timeout 60 "$PYTHON" -c "import sys; from transformers import AutoConfig; AutoConfig.from_pretrained(sys.argv[1])" "$model" >/dev/null 2>&1 \
        || zemi_fail "cannot load model '$model' from the Hugging Face hub or its cache. Check the network (or set
  HF_HUB_OFFLINE=1 with a filled cache), or point LM_BASE / LM_LARGE at a local T5 directory."
}

# zemi_train FAMILY RUN_NAME [training flags...]   FAMILY: baseline (No Aug, Concat) or xattn (FiD, Zemi)
zemi_train() {
    local family="$1" run="$2"; shift 2
    local run_dir="$OUTPUT_SRC_ROOT/p3_finetuning/$run"
    if [ -n "${SKIP_TRAIN:-}" ]; then
        [ -f "$run_dir/args.json" ] || zemi_fail "SKIP_TRAIN is set but $run_dir has no args.json.
  Place the authors' checkpoints ('checkpoints' at $AUTHORS_DOWNLOAD) at $OUTPUT_SRC_ROOT/p3_finetuning/<method>_<size>."
        echo "[$run] SKIP_TRAIN: evaluating the existing run directory $run_dir"
        return 0
    fi
    zemi_check_data
    # shellcheck disable=SC2086
    zemi_launch "zemi.multi_task_fine_tune_$family" \
        --dataset_root_path "$AUG_DATA_ROOT" --dataset_dir_names $TRAIN_MIXTURE --sample_n "$SAMPLE_N" \
        --output_dir "$run_dir" --learning_rate "$LR" --num_train_epochs "$EPOCHS" \
        --gradient_accumulation_steps "$GRAD_ACCUM" --per_device_eval_batch_size "$EVAL_BS" \
        --max_length "$MAX_LENGTH" --aug_max_length "$AUG_MAX_LENGTH" --target_max_length "$TARGET_MAX_LENGTH" \
        --warmup_ratio 0.25 --lr_scheduler_type cosine --mixed_precision "$MIXED_PRECISION" \
        --resume_from_checkpoint latest "$@" $EXTRA_TRAIN_ARGS
}

# zemi_evaluate RUN_NAME: every checkpoint of the run on every template of every held-out task, in one process
# (each checkpoint is loaded once; lengths and method come from the run's args.json).
zemi_evaluate() {
    local run="$1" task templates=()
    local run_dir="$OUTPUT_SRC_ROOT/p3_finetuning/$run"
    local entry=zemi.eval_original_task_only_xattn
    grep -q '"model_architecture": *"\(SharedEncoder\|FiD\)' "$run_dir/args.json" 2>/dev/null || entry=zemi.eval_original_task_only
    for task in $EVAL_TASKS; do
        [ -d "$AUG_DATA_ROOT/$task" ] || zemi_fail "$AUG_DATA_ROOT/$task is missing: cannot evaluate on $task"
        templates+=("$AUG_DATA_ROOT/$task"/*)
    done
    # shellcheck disable=SC2086
    zemi_launch "$entry" --processed_dataset_paths "${templates[@]}" \
        --model_name_or_path "$run_dir" --saved_model_step -1 \
        --output_dir "$OUTPUT_SRC_ROOT/eval/$run" --per_device_eval_batch_size "$EVAL_BS" \
        --mixed_precision "$MIXED_PRECISION" $EXTRA_EVAL_ARGS
}

# zemi_report SIZE: Table 1 over every method of that size evaluated so far.
zemi_report() {
    local size="$1" method labels=() dirs=()
    local report_dir_var="REPORT_DIR_${size^^}"
    for method in no_aug concat fid zemi; do
        if [ -d "$OUTPUT_SRC_ROOT/eval/${method}_$size" ]; then
            labels+=(--label "${method}_$size=$method")
            dirs+=("$OUTPUT_SRC_ROOT/eval/${method}_$size")
        fi
    done
    "$PYTHON" -m zemi.report "${dirs[@]}" "${labels[@]}" --output_dir "${!report_dir_var}"
}

# zemi_run METHOD SIZE FAMILY [training flags...]: train (unless SKIP_TRAIN), evaluate, report; what a script does.
zemi_run() {
    local method="$1" size="$2" family="$3"; shift 3
    local size_var="${size^^}" run="${method}_$size"
    local lm_var="LM_$size_var" bs_var="BS_$size_var"
    [ -n "${SKIP_TRAIN:-}" ] || zemi_check_model "${!lm_var}"
    if [ "$family" = baseline ]; then
        zemi_train baseline "$run" --model_name_or_path "${!lm_var}" --per_device_train_batch_size "${!bs_var}" "$@"
    else
        zemi_train xattn "$run" --lm_name "${!lm_var}" --per_device_train_batch_size "${!bs_var}" "$@"
    fi
    zemi_evaluate "$run"
    zemi_report "$size"
}
