#!/usr/bin/env bash
# On the GPU machine, with the device bundle in .device (lib/jtune.jar included): a QLoRA r16 run of the jtune
# trainer at 8192 tokens on gemma-3-270m with random weights and generated long conversations (bench PrepareRun), and
# HF transformers + peft LoRA r16 at 8192 in the same call (anchors/hf_gemma3_train.py).
# Usage: [BATCH=1] bash bench/src/main/sh/end-to-end.sh [steps=50] (HF runs batch 1)
set -u
. .device/env
steps=${1:-50}
run=/tmp/e2e; rm -rf $run; mkdir -p $run
$JAVA $JOPTS -cp "$CP" dev.jtune.bench.PrepareRun $run gemma-3-270m 60 6500 2>&1 | tail -1
$JAVA $JOPTS -jar .device/lib/jtune.jar --model_path $run/model --data_path $run/data.jsonl --output_dir $run/out \
    --bits 4 --lora_enable --freeze_llm --lora_rank 16 --lora_alpha 32 --max_seq_length 8192 --gradient_checkpointing --checkpointing_granularity layer --bf16 \
    --per_device_train_batch_size ${BATCH:-1} --max_steps $steps --logging_steps 10 --save_strategy no --report_to jsonl 2>&1 | grep -v "^WARNING" | tail -8
python3 .device/anchors/hf_gemma3_train.py --mode lora16 --seq 8192 2>&1 | grep -v -i "warn" | tail -3
