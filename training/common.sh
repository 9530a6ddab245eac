# The launcher behind the eight training/*_{base,large}.sh scripts: train, evaluate on the held-out tasks, report.
# A script sources it first: it moves to the repository root and reads SETUP_ENV.sh. Each function prints the full
# command it runs. SKIP_TRAIN=1 evaluates an existing run directory instead of training (e.g. the authors'
# checkpoints placed at output/p3_finetuning/<method>_<size>).

AUTHORS_DOWNLOAD="https://uofi.box.com/s/wnt6cv7icuir4q3wb2a6viuyklme5dga"

zemi_fail() { echo "ERROR: $*" >&2; exit 2; }

# The scripts take their settings from the environment only, so an argument would be silently dropped.
[ "$#" -eq 0 ] || zemi_fail "$(basename "$0") takes no arguments (got: $*). Settings are environment variables
  (SETUP_ENV.sh), e.g. EPOCHS=3 or EXTRA_TRAIN_ARGS=\"--report_to tensorboard\" bash $0"

cd "$(dirname "${BASH_SOURCE[0]}")/.."
source ./SETUP_ENV.sh || exit 2  # no environment or an unknown preset: SETUP_ENV.sh said why

# The user's accelerate config file, if there is one (`accelerate config` writes it).
zemi_accelerate_config() {
    local default="${HF_HOME:-${XDG_CACHE_HOME:-$HOME/.cache}/huggingface}/accelerate/default_config.yaml"
    if [ -n "${ACCELERATE_CONFIG_FILE:-}" ]; then
        [ -f "$ACCELERATE_CONFIG_FILE" ] || zemi_fail "ACCELERATE_CONFIG_FILE=$ACCELERATE_CONFIG_FILE does not exist"
        echo "$ACCELERATE_CONFIG_FILE"
    elif [ -f "$default" ]; then
        echo "$default"
    fi
}

# zemi_launch MODULE [args...]: accelerate launch, printed before it runs. With an accelerate config file, that file
# decides processes, machines and distribution (FSDP, DeepSpeed); otherwise one process per GPU (one CPU process,
# or NUM_PROCESSES of them with gloo: accelerate's --cpu launcher starts only one without MPI). NUM_MACHINES,
# MACHINE_RANK, MAIN_PROCESS_IP and MAIN_PROCESS_PORT, when set, override either.
zemi_launch() {
    local module="$1"; shift
    local config launch=() env=()
    config="$(zemi_accelerate_config)"
    if [ -n "$config" ]; then
        launch+=(--config_file "$config")
    else
        launch+=(--num_processes "$NUM_PROCESSES" --mixed_precision "$MIXED_PRECISION" --dynamo_backend no)
        if [ "$NUM_PROCESSES" -gt 1 ]; then launch+=(--multi_gpu); fi
        if [ "$NUM_GPUS" -eq 0 ]; then
            [ "$NUM_PROCESSES" -gt 1 ] || launch+=(--cpu)
            local per_machine=$(( NUM_PROCESSES / NUM_MACHINES > 0 ? NUM_PROCESSES / NUM_MACHINES : 1 ))
            launch+=(--num_cpu_threads_per_process "${CPU_THREADS:-$(( $(nproc) / per_machine > 0 ? $(nproc) / per_machine : 1 ))}")
            env+=(ACCELERATE_USE_CPU=true)
        fi
    fi
    if [ "$NUM_MACHINES" -gt 1 ] || [ -z "$config" ]; then launch+=(--num_machines "$NUM_MACHINES" --machine_rank "$MACHINE_RANK"); fi
    if [ "$NUM_MACHINES" -gt 1 ] && [ -z "$config" ] && [ -z "$MAIN_PROCESS_IP" ]; then
        zemi_fail "NUM_MACHINES=$NUM_MACHINES needs MAIN_PROCESS_IP: the address of the machine with MACHINE_RANK=0,
  reachable from every machine (README, \"Several machines\")"
    fi
    [ -z "$MAIN_PROCESS_IP" ] || launch+=(--main_process_ip "$MAIN_PROCESS_IP")
    if [ -n "$MAIN_PROCESS_PORT" ]; then launch+=(--main_process_port "$MAIN_PROCESS_PORT")
    elif [ -z "$config" ]; then launch+=(--main_process_port 20655); fi  # with a config file, the file's port
    local command=(env "${env[@]}" "$PYTHON" -m accelerate.commands.launch "${launch[@]}" -m "$module" "$@")
    echo "+ ${command[*]}" >&2
    "${command[@]}"
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

# zemi_train RUN FAMILY BACKBONE BATCH [method flags...]   FAMILY: baseline (No Aug, Concat) or xattn (FiD, Zemi)
zemi_train() {
    local run="$1" family="$2" backbone="$3" batch="$4"; shift 4
    local run_dir="$OUTPUT_SRC_ROOT/p3_finetuning/$run"
    if [ -n "${SKIP_TRAIN:-}" ]; then
        [ -f "$run_dir/args.json" ] || zemi_fail "SKIP_TRAIN is set but $run_dir has no args.json.
  Place the authors' checkpoints ('checkpoints' at $AUTHORS_DOWNLOAD) at $OUTPUT_SRC_ROOT/p3_finetuning/<method>_<size>."
        echo "[$run] SKIP_TRAIN: evaluating the existing run directory $run_dir"
        return 0
    fi
    zemi_check_model "$backbone"
    zemi_check_data
    # shellcheck disable=SC2086
    zemi_launch "zemi.multi_task_fine_tune_$family" --lm_name "$backbone" --per_device_train_batch_size "$batch" \
        --dataset_root_path "$AUG_DATA_ROOT" --dataset_dir_names $TRAIN_MIXTURE --sample_n "$SAMPLE_N" \
        --output_dir "$run_dir" --learning_rate "$LR" --weight_decay "$WEIGHT_DECAY" --num_train_epochs "$EPOCHS" \
        --warmup_ratio "$WARMUP_RATIO" --lr_scheduler_type "$LR_SCHEDULER" --gradient_accumulation_steps "$GRAD_ACCUM" \
        --per_device_eval_batch_size "$EVAL_BS" --max_length "$MAX_LENGTH" --aug_max_length "$AUG_MAX_LENGTH" \
        --target_max_length "$TARGET_MAX_LENGTH" --mixed_precision "$MIXED_PRECISION" --resume_from_checkpoint latest \
        $PRESET_TRAIN_ARGS "$@" $EXTRA_TRAIN_ARGS
    [ "$MACHINE_RANK" -ne 0 ] || zemi_plot "$run_dir" "$run_dir"
}

# zemi_plot OUTPUT RUN_DIR...: loss.png (and gates.png for Zemi) of the runs, overlaid, into OUTPUT. A failed plot
# warns and leaves the run's evaluation going.
zemi_plot() {
    local output="$1"; shift
    local command=("$PYTHON" -m zemi.plot "$@" --output "$output")
    echo "+ ${command[*]}" >&2
    "${command[@]}" || echo "WARNING: plotting the training curves of $* failed; the run itself is complete" >&2
}

# zemi_evaluate RUN: every checkpoint of the run on every template of every held-out task, in one process (each
# checkpoint is loaded once; the method and lengths come from the run's args.json).
zemi_evaluate() {
    local run="$1" task templates=()
    for task in $EVAL_TASKS; do
        [ -d "$AUG_DATA_ROOT/$task" ] || zemi_fail "$AUG_DATA_ROOT/$task is missing: cannot evaluate on $task"
        templates+=("$AUG_DATA_ROOT/$task"/*)
    done
    # shellcheck disable=SC2086
    zemi_launch zemi.evaluate --processed_dataset_paths "${templates[@]}" \
        --model_name_or_path "$OUTPUT_SRC_ROOT/p3_finetuning/$run" --saved_model_step -1 \
        --output_dir "$OUTPUT_SRC_ROOT/eval/$run" --per_device_eval_batch_size "$EVAL_BS" \
        --mixed_precision "$MIXED_PRECISION" $EXTRA_EVAL_ARGS
}

# zemi_report SIZE REPORT_DIR: Table 1 over every method of that size evaluated so far.
zemi_report() {
    local size="$1" report_dir="$2" method args=()
    for method in no_aug concat fid zemi; do
        if [ -d "$OUTPUT_SRC_ROOT/eval/${method}_$size" ]; then
            args+=("$OUTPUT_SRC_ROOT/eval/${method}_$size" --label "${method}_$size=$method")
        fi
    done
    local command=("$PYTHON" -m zemi.report "${args[@]}" --output_dir "$report_dir")
    echo "+ ${command[*]}" >&2
    "${command[@]}"
}
