#!/usr/bin/env bash
# On the GPU machine, with a device bundle packed with --images (ImageIO): issue 15's device row. A random
# gemma-3-4b-it (the whole Gemma3ForConditionalGeneration: SigLIP tower, projector, language model), conversations of
# one drawn image and a long answer (~8K tokens), trained QLoRA r16 with the tower and projector frozen.
# Usage: bash bench/src/main/sh/image-qlora.sh [steps=3] [conversations=12] [words=6000] [trainer flags...]
# Trainer flags after the three numbers override the defaults below (the last of a flag wins), e.g. --vision_lora True,
# or --freeze_vision_tower False --freeze_projector False to train the tower and projector beside the adapters. With
# RUN=/dir set and the model already there, the model and data are reused (a second run in one call).
set -u
. .device/env
steps=${1:-3}; n=${2:-12}; words=${3:-6000}; shift 3 2>/dev/null || shift $#
run=${RUN:-/tmp/image-qlora}
if [ ! -f $run/model/config.json ]; then
  rm -rf $run; mkdir -p $run
  $JAVA $JOPTS -cp "$CP" dev.jtune.bench.PrepareRun $run gemma-3-4b-it $n $words cuda images 2>&1 | tail -2
fi
rm -rf $run/out
$JAVA $JOPTS -cp "$CP" dev.jtune.train.Main --model_path $run/model --data_path $run/data.jsonl --image_folder $run/images \
    --output_dir $run/out --max_seq_length 8192 --bf16 --gradient_checkpointing --lora_enable True --freeze_llm True --bits 4 \
    --lora_rank 16 --lora_alpha 16 --freeze_vision_tower True --freeze_projector True --per_device_train_batch_size 1 \
    --gradient_accumulation_steps 1 --max_steps $steps --logging_steps 1 --save_strategy no --report_to jsonl "$@" 2>&1 \
    | grep -v "^WARNING" | grep -vE "^\s*$" | cut -c1-300 | tail -70
