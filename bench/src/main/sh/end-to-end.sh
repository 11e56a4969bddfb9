#!/usr/bin/env bash
# On the GPU machine, with the device bundle in .device (lib/jtune.jar included): one jtune trainer run on a real
# Gemma 3 configuration with random weights and generated conversations as long as the sequence (bench PrepareRun),
# layer checkpointing, bf16, and HF transformers (+ peft) in the same mode and length in the same call
# (anchors/hf_gemma3_train.py, which has no 4-bit: its row for qlora16 is LoRA r16 over a bf16 base). jtune's rate is
# the steady one: tokens over the steps after the warm-up (steady-rate.py), not a single step's.
# JTUNE_ARGS adds trainer flags to jtune's run (e.g. JTUNE_ARGS="--keep_attention none"). NO_CHECKPOINTING=1 runs both
# sides without gradient checkpointing (HF's anchor with --no-checkpointing).
# Usage: [BATCH=1] [SKIP_HF=1] [HF_RUNS=3] [LORA_DROPOUT=0.0] [NO_CHECKPOINTING=1] [JTUNE_ARGS=...] bash bench/src/main/sh/end-to-end.sh [model=gemma-3-270m] [mode=qlora16] [seq=8192] [steps=220] [warmup=20]
#   mode: qlora16 (NF4 base, LoRA r16), lora16 (bf16 base, LoRA r16), full (every weight, AdamW on the device)
set -u
. .device/env
JOPTS="$JOPTS ${EXTRA_JOPTS:-}" # e.g. EXTRA_JOPTS=-Djtune.step.timing=true: each step's wall time, JVM collections and device allocator calls
model=${1:-gemma-3-270m}; mode=${2:-qlora16}; seq=${3:-8192}; steps=${4:-220}; warm=${5:-20}
run=/tmp/e2e-$model-$mode-$seq; rm -rf $run; mkdir -p $run
# as many words as tokens: every conversation is longer than the sequence and is cut to exactly seq tokens, as HF's
# rows of seq random ids are (until the twelfth session 0.8 seq words gave ~0.85 seq tokens a step)
$JAVA $JOPTS -cp "$CP" dev.jtune.bench.PrepareRun $run $model $(( steps * ${BATCH:-1} + 10 )) $seq cuda 2>&1 | tail -1
case $mode in
  # the anchor's adapter (hf_gemma3_train.py: LoraConfig(r=16, lora_alpha=16, lora_dropout=0.0)); LORA_DROPOUT=0.05
  # gives the trainer's default, which the rows before the eleventh session ran (PERFORMANCE.md has both)
  qlora16) extra=(--bits 4 --lora_enable --freeze_llm --lora_rank 16 --lora_alpha 16 --lora_dropout ${LORA_DROPOUT:-0.0}); hf=lora16 ;;
  lora16) extra=(--lora_enable --freeze_llm --lora_rank 16 --lora_alpha 16 --lora_dropout ${LORA_DROPOUT:-0.0}); hf=lora16 ;;
  full) extra=(--optim adamw_torch); hf=full ;;
  *) echo "end-to-end.sh: unknown mode $mode" >&2; exit 2 ;;
esac
ckpt="--gradient_checkpointing --checkpointing_granularity layer"; hf_ckpt=""
[ "${NO_CHECKPOINTING:-0}" = 1 ] && { ckpt=""; hf_ckpt="--no-checkpointing"; }
echo "== jtune $model $mode at $seq, batch ${BATCH:-1}, $steps steps"
$JAVA $JOPTS -cp "$CP" dev.jtune.train.Main --model_path $run/model --data_path $run/data.jsonl --output_dir $run/out "${extra[@]}" ${JTUNE_ARGS:-} \
    --max_seq_length $seq $ckpt --bf16 \
    --per_device_train_batch_size ${BATCH:-1} --max_steps $steps --logging_steps 1 --save_strategy no --report_to jsonl 2>&1 \
    | grep -v "^WARNING" > $run/log.txt
grep -E "^chosen" $run/log.txt | head -1; grep -E "^(step|done)" $run/log.txt | tail -3; sed -n '/^memory /,$p' $run/log.txt | grep -E "device peak"
python3 "$(dirname "$0")/steady-rate.py" $run/out/metrics.jsonl $warm
[ "${SKIP_HF:-0}" = 1 ] && exit 0
HF_NAME=${model%-it}  # the anchor names models without the -it suffix
# the anchor times 5 steps after 2 warm-up ones: its rate moved 25% between two calls a minute apart (twenty-third
# session), so HF_RUNS (default 3) runs of it, each printed, and their median
echo "== HF transformers $HF_NAME $hf at $seq, ${HF_RUNS:=3} runs"
for i in $(seq 1 $HF_RUNS); do
  python3 .device/anchors/hf_gemma3_train.py --model $HF_NAME --mode $hf --seq $seq $hf_ckpt 2>&1 | grep -v -i "warn" | tail -2
done | tee $run/hf.txt
python3 - $run/hf.txt <<'PY'
import json, statistics, sys
rates = [json.loads(l)["tok_s"] for l in open(sys.argv[1]) if l.startswith("{") and "tok_s" in l]
if rates:
    print("HF median tok_s over %d runs: %d (runs %s)" % (len(rates), statistics.median(rates), rates))
PY
