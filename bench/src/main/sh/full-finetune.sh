#!/usr/bin/env bash
# On the GPU machine, with the device bundle in .device (lib/jtune.jar included): full fine-tuning (every weight
# trained, bf16 weights with an fp32 master copy) at 8192 tokens, gradient checkpointing, accumulation 8, in the
# optimizer modes of issue 12, then HF transformers' full fine-tune at the same length in the same call (pure-bf16
# AdamW, no accumulation, no master copy: anchors/hf_gemma3_train.py --mode full). Prints each jtune run's last
# progress lines and its run summary (tokens/s, device peak, host memory), then HF's JSON row.
# Usage: [SKIP_HF=1] [EXTRA_JOPTS=-D...] bash bench/src/main/sh/full-finetune.sh [model=gemma-3-270m] [steps=6] [modes="device offload"]
#   modes: device (adamw_torch on the GPU), offload (--offload_optimizer cpu), offload-delayed (with
#          --delayed_optimizer_step), offload-param (optimizer and layer weights on the host), offload-all (and the
#          checkpointed activations), planned (--max_memory ${MAX_MEMORY:-16GB}, checkpointing and offloads left to
#          the planner), 8bit (adamw_bnb_8bit), offload8 (adamw_bnb_8bit's 8-bit state on the host), paged8 (paged_adamw_8bit), paged32 (paged_adamw_32bit)
set -u
. .device/env
JOPTS="$JOPTS ${EXTRA_JOPTS:-}" # e.g. EXTRA_JOPTS=-Djtune.offload.timing=true
model=${1:-gemma-3-270m}; steps=${2:-6}; modes=${3:-device offload}
run=/tmp/full-$model; rm -rf $run; mkdir -p $run
# 8 micro-batches of one 8K conversation per step
$JAVA $JOPTS -cp "$CP" dev.jtune.bench.PrepareRun $run $model $(( 8 * steps + 8 )) 6500 cuda 2>&1 | tail -1
for mode in $modes; do
  ckpt=(--gradient_checkpointing --checkpointing_granularity layer)
  case $mode in
    device) extra=(--optim adamw_torch) ;;
    planned) extra=(--optim adamw_torch --max_memory ${MAX_MEMORY:-16GB}); ckpt=() ;; # the planner fills checkpointing and offload
    offload) extra=(--optim adamw_torch --offload_optimizer cpu) ;;
    offload-delayed) extra=(--optim adamw_torch --offload_optimizer cpu --delayed_optimizer_step) ;;
    offload-param) extra=(--optim adamw_torch --offload_optimizer cpu --offload_param cpu) ;;
    offload-all) extra=(--optim adamw_torch --offload_optimizer cpu --offload_param cpu --offload_activations) ;;
    8bit) extra=(--optim adamw_bnb_8bit) ;;
    offload8) extra=(--optim adamw_bnb_8bit --offload_optimizer cpu) ;;
    paged8) extra=(--optim paged_adamw_8bit) ;;
    paged32) extra=(--optim paged_adamw_32bit) ;;
    *) echo "full-finetune.sh: unknown mode $mode" >&2; exit 2 ;;
  esac
  echo "== jtune $model full, $mode: ${extra[*]}"
  $JAVA $JOPTS -cp "$CP" dev.jtune.train.Main --model_path $run/model --data_path $run/data.jsonl --output_dir $run/out-$mode \
      --max_seq_length 8192 "${ckpt[@]}" --bf16 --per_device_train_batch_size 1 --gradient_accumulation_steps 8 \
      --max_steps $steps --logging_steps 1 --save_strategy no --save_only_model --report_to jsonl "${extra[@]}" 2>&1 | grep -v "^WARNING" > $run/log-$mode.txt
  grep -E "^(plan|chosen)" $run/log-$mode.txt | cut -c1-400; grep -E "^(step|done)" $run/log-$mode.txt | tail -4; sed -n '/^memory /,$p' $run/log-$mode.txt | grep -v "  0.000  " | head -20
done
[ "${SKIP_HF:-0}" = 1 ] && exit 0 # SKIP_HF=1: jtune's runs only
echo "== HF transformers $model full (pure-bf16 AdamW, no accumulation)"
python3 .device/anchors/hf_gemma3_train.py --model ${HF_MODEL:-$model} --mode full --seq 8192 2>&1 | grep -v -i "warn" | tail -2
