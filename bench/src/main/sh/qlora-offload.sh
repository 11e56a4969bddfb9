#!/usr/bin/env bash
# On the GPU machine, with the device bundle in .device: the trainer's QLoRA r16 run at 8192 tokens on a random
# real-config model (bench PrepareRun), layer checkpointing, in the offload modes of issue 13: none, activations
# (--offload_activations), weights (--offload_param cpu), both, planned (activation offload with --max_memory
# ${MAX_MEMORY:-8GiB}: the planner picks granularity and the tiled MLP). Prints each run's last steps and its memory tables (planned, measured).
# Usage: bash bench/src/main/sh/qlora-offload.sh [model=gemma-3-270m] [steps=12] [modes="none activations weights both"] [seq=8192]
set -u
. .device/env
JOPTS="$JOPTS ${EXTRA_JOPTS:-}"
model=${1:-gemma-3-270m}; steps=${2:-12}; modes=${3:-none activations weights both}; seq=${4:-8192}
run=/tmp/qlora-$model; rm -rf $run; mkdir -p $run
$JAVA $JOPTS -cp "$CP" dev.jtune.bench.PrepareRun $run $model $(( steps + 4 )) $(( seq * 8 / 10 )) cuda 2>&1 | tail -1
for mode in $modes; do
  ckpt=(--gradient_checkpointing --checkpointing_granularity layer)
  case $mode in
    none) extra=() ;;
    planned) extra=(--offload_activations --max_memory ${MAX_MEMORY:-8GiB}); ckpt=(--gradient_checkpointing) ;; # granularity, tiling: the planner's
    activations) extra=(--offload_activations) ;;
    weights) extra=(--offload_param cpu) ;;
    both) extra=(--offload_activations --offload_param cpu) ;;
    *) echo "qlora-offload.sh: unknown mode $mode" >&2; exit 2 ;;
  esac
  echo "== jtune $model QLoRA r16 at $seq, offload: $mode ${extra[*]}"
  $JAVA $JOPTS -cp "$CP" dev.jtune.train.Main --model_path $run/model --data_path $run/data.jsonl --output_dir $run/out-$mode \
      --bits 4 --lora_enable --freeze_llm --lora_rank 16 --lora_alpha 32 --max_seq_length $seq "${ckpt[@]}" \
      --bf16 --per_device_train_batch_size 1 --max_steps $steps --logging_steps 1 \
      --save_strategy no --report_to jsonl "${extra[@]}" 2>&1 | grep -v "^WARNING" > $run/log-$mode.txt
  grep -E "^(plan|chosen)" $run/log-$mode.txt | cut -c1-300; grep -E "^(step|done)" $run/log-$mode.txt | tail -3; sed -n '/^memory /,$p' $run/log-$mode.txt | grep -v -E "  0\.000  |^base in" # both tables, every non-zero category
done
