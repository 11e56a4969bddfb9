#!/usr/bin/env bash
# On the GPU machine, with the device bundle in .device: issue 14's packing row. 270M QLoRA r16 at 8192 tokens,
# layer checkpointing, on generated conversations whose lengths are log-uniform from about 64 to 8,192 tokens
# (PrepareRun's words 51-6500), in four ways: fixed (every conversation ~8K: the rate packing is held to), packed
# (--packing, batch 1: rows of up to 8K), grouped (unpacked, batch 4, the default length grouping) and random
# (unpacked, batch 4, --group_by_length false). Each rate: real (non-pad) tokens over the time of steps after the
# warm-up, from metrics.jsonl (sum of tokens / sum of step times, not one step's rate).
# Usage: bash bench/src/main/sh/packing.sh [steps=220] [warmup=20] [modes="fixed packed grouped random"] [conversations=2000]
set -u
. .device/env
steps=${1:-220}; warm=${2:-20}; modes=${3:-fixed packed grouped random}; convs=${4:-2000}
run=/tmp/packing; rm -rf $run; mkdir -p $run/fixed $run/mixed
$JAVA $JOPTS -cp "$CP" dev.jtune.bench.PrepareRun $run/mixed gemma-3-270m $convs 51-6500 cuda 2>&1 | tail -1
$JAVA $JOPTS -cp "$CP" dev.jtune.bench.PrepareRun $run/fixed gemma-3-270m $(( steps + 10 )) 6500 cuda 2>&1 | tail -1 # the same weights (seed 7)
for mode in $modes; do
  case $mode in
    fixed) data=$run/fixed/data.jsonl; extra=(--per_device_train_batch_size 1) ;;
    packed) data=$run/mixed/data.jsonl; extra=(--per_device_train_batch_size 1 --packing) ;;
    grouped) data=$run/mixed/data.jsonl; extra=(--per_device_train_batch_size 4) ;;
    random) data=$run/mixed/data.jsonl; extra=(--per_device_train_batch_size 4 --group_by_length false) ;;
    *) echo "packing.sh: unknown mode $mode" >&2; exit 2 ;;
  esac
  echo "== jtune 270M QLoRA r16, 8K, $mode: ${extra[*]}"
  $JAVA $JOPTS -cp "$CP" dev.jtune.train.Main --model_path $run/mixed/model --data_path $data --output_dir $run/out-$mode \
      --bits 4 --lora_enable --freeze_llm --lora_rank 16 --lora_alpha 32 --max_seq_length 8192 --gradient_checkpointing \
      --checkpointing_granularity layer --bf16 --max_steps $steps --logging_steps 1 --save_strategy no --report_to jsonl \
      "${extra[@]}" 2>&1 | grep -v "^WARNING" > $run/log-$mode.txt
  grep -E "^packing" $run/log-$mode.txt; grep -E "^(step|done)" $run/log-$mode.txt | tail -2
  python3 "$(dirname "$0")/steady-rate.py" "$run/out-$mode/metrics.jsonl" "$warm"
done
