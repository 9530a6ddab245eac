# The launcher behind the eight training/*_{base,large}.sh scripts: train (one run per seed), evaluate on the held-out
# tasks, report. A script sources it first: it moves to the repository root and reads SETUP_ENV.sh. Every value of
# the recipe comes from zemi-train's and zemi-eval's --preset ($ZEMI_PRESET); an environment override below becomes
# its flag only when it is set. Each function prints the full command it runs.
#   SEEDS="42 43 44"   one run per seed (default: 42, the paper's); seed 42's run directory is <method>_<size>, the
#                      others' <method>_<size>_seed<N>; the report aggregates a method's seeds
#   SKIP_TRAIN=1       evaluate the existing run directories instead of training (e.g. the authors' checkpoints
#                      placed at output/p3_finetuning/<method>_<size>)

AUTHORS_DOWNLOAD="https://uofi.box.com/s/wnt6cv7icuir4q3wb2a6viuyklme5dga"
PAPER_SEED=42

zemi_fail() { echo "ERROR: $*" >&2; exit 2; }

# The scripts take their settings from the environment only, so an argument would be silently dropped.
[ "$#" -eq 0 ] || zemi_fail "$(basename "$0") takes no arguments (got: $*). Settings are environment variables
  (README), e.g. EPOCHS=3 or EXTRA_TRAIN_ARGS=\"--report_to tensorboard\" bash $0"

cd "$(dirname "${BASH_SOURCE[0]}")/.."
source ./SETUP_ENV.sh || exit 2  # no environment or an unknown preset: SETUP_ENV.sh said why

# GPUs and precision: bf16 autocast on GPUs that have it (same accuracy, several times faster;
# tests/test_precision.py), else fp32; MIXED_PRECISION=no is the published fp32 exactly.
if [ -z "${NUM_GPUS:-}" ] || [ -z "${MIXED_PRECISION:-}" ]; then
    read -r detected_gpus detected_precision < <("$PYTHON" -c 'import torch; cuda = torch.cuda.is_available()
print(torch.cuda.device_count(), "bf16" if cuda and torch.cuda.is_bf16_supported() else "no")' 2>/dev/null || echo "0 no")
    NUM_GPUS="${NUM_GPUS:-$detected_gpus}"
    MIXED_PRECISION="${MIXED_PRECISION:-$detected_precision}"
fi
NUM_MACHINES="${NUM_MACHINES:-1}" MACHINE_RANK="${MACHINE_RANK:-0}"
# MAIN_PROCESS_PORT: unset leaves the port to an accelerate config file, else 20655 (zemi_launch).
MAIN_PROCESS_IP="${MAIN_PROCESS_IP:-}" MAIN_PROCESS_PORT="${MAIN_PROCESS_PORT:-}"
NUM_PROCESSES="${NUM_PROCESSES:-$(( (NUM_GPUS > 0 ? NUM_GPUS : 1) * NUM_MACHINES ))}"  # over all machines
SEEDS="${SEEDS:-$PAPER_SEED}"
[ -n "${ZEMI_QUIET:-}" ] || echo "[common.sh] processes=$NUM_PROCESSES (GPUs: $NUM_GPUS, machines: $NUM_MACHINES)" \
    "precision=$MIXED_PRECISION seeds=$SEEDS"

# zemi_flags FLAG VARIABLE [FLAG VARIABLE ...]: the lines "FLAG" and "value" for each VARIABLE that is set.
zemi_flags() {
    while [ "$#" -gt 0 ]; do
        [ -z "${!2:-}" ] || printf '%s\n' "$1" "${!2}"
        shift 2
    done
}

# zemi_list_flag FLAG VARIABLE: "FLAG" and one line per word of VARIABLE (a task list) when it is set.
zemi_list_flag() {
    # shellcheck disable=SC2086
    [ -z "${!2:-}" ] || printf '%s\n' "$1" ${!2}
}

# Flags of every training and evaluation command: the preset and where its paths start.
zemi_preset_flags() {
    printf '%s\n' --preset "$ZEMI_PRESET" --data_root "$DATA_ROOT" --output_root "$OUTPUT_SRC_ROOT"
}

# zemi_preset_value NAME SIZE: one value of the preset as zemi-train resolves it (zemi-preset --get), for what the
# shell checks itself.
zemi_preset_value() {
    local flags
    mapfile -t flags < <(zemi_preset_flags)
    "$PYTHON" -m zemi preset "${flags[@]}" --model_size "$2" --get "$1"
}

# zemi_size_variable BASE_NAME LARGE_NAME SIZE: the name of the variable that overrides a value of this size.
zemi_size_variable() { if [ "$3" = large ]; then echo "$2"; else echo "$1"; fi; }

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

# zemi_check_data SIZE [train]: the 30aug root and every held-out (and, with "train", training) dataset dir, before
# anything starts.
zemi_check_data() {
    local root tasks task
    root="${AUG_DATA_ROOT:-$(zemi_preset_value dataset_root_path "$1")}" || exit 2
    tasks="${EVAL_TASKS:-$(zemi_preset_value eval_tasks "$1")}" || exit 2
    if [ "${2:-}" = train ]; then tasks="${TRAIN_MIXTURE:-$(zemi_preset_value train_tasks "$1")} $tasks" || exit 2; fi
    [ -d "$root" ] || zemi_fail "the 30aug data root $root does not exist.
  Download the authors' preprocessed data ('dataset') from $AUTHORS_DOWNLOAD and unzip 30aug.zip into
  $DATA_ROOT/p3_c4_document_level_chosen_examples/ (or set AUG_DATA_ROOT), or rebuild it:
  zemi-build-data --help   (docs/retrieval.md).  For the offline demo: make demo"
    for task in $tasks; do
        [ -d "$root/$task" ] || zemi_fail "$root/$task is missing (dataset dirs expected: $tasks)"
    done
}

# zemi_check_model SIZE: a hub model name must be reachable (or cached); fail in seconds rather than after loading
# data.
zemi_check_model() {
    local variable model
    variable="$(zemi_size_variable LM_BASE LM_LARGE "$1")"
    model="${!variable:-$(zemi_preset_value lm_name "$1")}" || exit 2
    [ -d "$model" ] && return 0
    HF_HUB_ETAG_TIMEOUT=10 HF_HUB_DOWNLOAD_TIMEOUT=10 timeout 60 "$PYTHON" -c "import sys; from transformers import AutoConfig; AutoConfig.from_pretrained(sys.argv[1])" "$model" >/dev/null 2>&1 \
        || zemi_fail "cannot load model '$model' from the Hugging Face hub or its cache. Check the network (or set
  HF_HUB_OFFLINE=1 with a filled cache), or point LM_BASE / LM_LARGE at a local T5 directory."
}

# zemi_run_name METHOD SIZE SEED: seed 42 keeps the paper's name (SKIP_TRAIN finds the authors' checkpoint there).
zemi_run_name() {
    if [ "$3" = "$PAPER_SEED" ]; then echo "$1_$2"; else echo "$1_$2_seed$3"; fi
}

# zemi_train RUN SIZE SEED [method flags...]
zemi_train() {
    local run="$1" size="$2" seed="$3"; shift 3
    local run_dir="$OUTPUT_SRC_ROOT/p3_finetuning/$run" flags
    mapfile -t flags < <(zemi_preset_flags; zemi_list_flag --dataset_dir_names TRAIN_MIXTURE; zemi_flags \
        --model_size size --seed seed --dataset_root_path AUG_DATA_ROOT --num_train_epochs EPOCHS \
        --max_train_steps MAX_TRAIN_STEPS \
        --learning_rate LR --gradient_accumulation_steps GRAD_ACCUM --per_device_eval_batch_size EVAL_BS \
        --max_length MAX_LENGTH --aug_max_length AUG_MAX_LENGTH --target_max_length TARGET_MAX_LENGTH \
        --sample_n SAMPLE_N --warmup_ratio WARMUP_RATIO --lr_scheduler_type LR_SCHEDULER --weight_decay WEIGHT_DECAY \
        --lm_name "$(zemi_size_variable LM_BASE LM_LARGE "$size")" \
        --per_device_train_batch_size "$(zemi_size_variable BS_BASE BS_LARGE "$size")" \
        --perceiver_config "$(zemi_size_variable PERCEIVER_CONFIG_BASE PERCEIVER_CONFIG_LARGE "$size")")
    # shellcheck disable=SC2086
    zemi_launch zemi train "${flags[@]}" --output_dir "$run_dir" --mixed_precision "$MIXED_PRECISION" \
        --resume_from_checkpoint latest "$@" ${EXTRA_TRAIN_ARGS:-}
    [ "$MACHINE_RANK" -ne 0 ] || zemi_plot "$run_dir" "$run_dir"
}

# zemi_plot OUTPUT RUN_DIR...: loss.png (and gates.png for Zemi) of the runs, overlaid, into OUTPUT. A failed plot
# warns and leaves the run's evaluation going.
zemi_plot() {
    local output="$1"; shift
    local command=("$PYTHON" -m zemi plot "$@" --output "$output")
    echo "+ ${command[*]}" >&2
    "${command[@]}" || echo "WARNING: plotting the training curves of $* failed; the run itself is complete" >&2
}

# zemi_evaluate RUN: every checkpoint of the run on every template of every held-out task, in one process (each
# checkpoint is loaded once; the method and lengths come from the run's args.json).
zemi_evaluate() {
    local run="$1" flags
    mapfile -t flags < <(zemi_preset_flags; zemi_list_flag --tasks EVAL_TASKS; zemi_flags \
        --dataset_root_path AUG_DATA_ROOT --per_device_eval_batch_size EVAL_BS)
    # shellcheck disable=SC2086
    zemi_launch zemi eval "${flags[@]}" --model_name_or_path "$OUTPUT_SRC_ROOT/p3_finetuning/$run" \
        --saved_model_step -1 --output_dir "$OUTPUT_SRC_ROOT/eval/$run" --mixed_precision "$MIXED_PRECISION" \
        ${EXTRA_EVAL_ARGS:-}
}

# zemi_train_and_evaluate METHOD SIZE [method flags...]: for each of SEEDS, train (unless SKIP_TRAIN) and evaluate.
zemi_train_and_evaluate() {
    local method="$1" size="$2" seed run runs=(); shift 2
    for seed in $SEEDS; do runs+=("$(zemi_run_name "$method" "$size" "$seed")"); done
    if [ -n "${SKIP_TRAIN:-}" ]; then
        for run in "${runs[@]}"; do
            [ -f "$OUTPUT_SRC_ROOT/p3_finetuning/$run/args.json" ] || zemi_fail "SKIP_TRAIN is set but \
$OUTPUT_SRC_ROOT/p3_finetuning/$run has no args.json.
  Place the authors' checkpoints ('checkpoints' at $AUTHORS_DOWNLOAD) at $OUTPUT_SRC_ROOT/p3_finetuning/<method>_<size>."
        done
        zemi_check_data "$size"
    else
        zemi_check_model "$size"
        zemi_check_data "$size" train
    fi
    for seed in $SEEDS; do
        run="$(zemi_run_name "$method" "$size" "$seed")"
        if [ -n "${SKIP_TRAIN:-}" ]; then
            echo "[$run] SKIP_TRAIN: evaluating the existing run directory $OUTPUT_SRC_ROOT/p3_finetuning/$run"
        else
            zemi_train "$run" "$size" "$seed" "$@"
        fi
        zemi_evaluate "$run"
    done
}

# zemi_report SIZE: Table 1 over every method of that size evaluated so far, each method's seeds together.
zemi_report() {
    local size="$1" method eval_dir run report_dir args=()
    for method in no_aug concat fid zemi; do
        for eval_dir in "$OUTPUT_SRC_ROOT/eval/${method}_$size" "$OUTPUT_SRC_ROOT/eval/${method}_${size}_seed"*; do
            [ -d "$eval_dir" ] || continue
            run="$(basename "$eval_dir")"
            args+=("$eval_dir" --label "$run=$method")
        done
    done
    report_dir="$(zemi_preset_value report_dir "$size")" || exit 2
    local command=("$PYTHON" -m zemi report "${args[@]}" --output_dir "$report_dir")
    echo "+ ${command[*]}" >&2
    "${command[@]}"
}
