#!/usr/bin/env bash
# On the GPU machine: the end-to-end QLoRA r16 8K trainer run (as end-to-end.sh) with two builds, alternating
# A/B/B/A... in one call, so both see the same GPU, clocks and neighbours. A is a jtune.jar from another commit
# (default .device/before/jtune.jar; it may leave out the bundled tokenizer, which is then read from the tree to keep
# the carry small), B the bundle's own .device/lib/jtune.jar. Prints each run's median tokens/s
# over the logged steps after the first (warm-up), its peak and its last logged loss, then the median of each side.
# The adapter is the HF anchor's (r 16, alpha 16, dropout 0.0, as end-to-end.sh); LORA_DROPOUT=0.05 gives the trainer's default.
# A_ARGS and B_ARGS add trainer flags to one side (the same jar both sides, A_ARGS="--keep_attention none", A/Bs a flag);
# A_JOPTS and B_JOPTS add JVM options (B_JOPTS=-Djtune.cuda.wgmmaAttention=true A/Bs a kernel switch).
# SEQ (default 8192) sets --max_seq_length; at 8192 the conversations are 6,500 words (~6,960-token rows, as every
# A/B so far), otherwise SEQ words (rows of exactly SEQ tokens).
# Usage: [LORA_DROPOUT=0.0] [A_ARGS=...] [B_ARGS=...] [SEQ=8192] bash bench/src/main/sh/ab-end-to-end.sh [pairs=2] [steps=40] [A.jar]
set -u
. .device/env
pairs=${1:-2}; steps=${2:-40}; a=${3:-.device/before/jtune.jar}; b=.device/lib/jtune.jar
run=/tmp/ab; rm -rf $run; mkdir -p $run
len=${SEQ:-8192}; words=$([ "$len" = 8192 ] && echo 6500 || echo "$len")
$JAVA $JOPTS -cp "$CP" dev.jtune.bench.PrepareRun $run gemma-3-270m 60 $words 2>&1 | tail -1
one() { # jar label extra-flags jvm-options -> "label tokens/s peak"
  rm -rf $run/out
  $JAVA $JOPTS $4 -cp "$1:model-gemma/src/main/resources" dev.jtune.train.Main --model_path $run/model --data_path $run/data.jsonl --output_dir $run/out \
      --bits 4 --lora_enable --freeze_llm --lora_rank 16 --lora_alpha 16 --lora_dropout ${LORA_DROPOUT:-0.0} --max_seq_length $len --gradient_checkpointing --checkpointing_granularity layer --bf16 \
      --per_device_train_batch_size 1 --max_steps $steps --logging_steps 5 --save_strategy no --report_to jsonl $3 >$run/$2.log 2>&1 \
    || { echo "$2 failed:"; tail -5 $run/$2.log; return; }
  python3 - "$2" $run/out/metrics.jsonl <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[2]) if l.strip()]
rows = [r for r in rows if r.get("tokens_per_second")]
tps = [r["tokens_per_second"] for r in rows[1:]]
losses = [r["loss"] for r in rows if r.get("loss") is not None]
print(sys.argv[1], round(statistics.median(tps)), max(r.get("memory_peak_gib") or 0 for r in rows), losses[-1] if losses else "")
PY
}
# A B, then B A, ...: a drift over the call (clocks, heat) falls on both sides alike
for i in $(seq 1 $pairs); do
  if [ $((i % 2)) = 1 ]; then one "$a" A "${A_ARGS:-}" "${A_JOPTS:-}"; one "$b" B "${B_ARGS:-}" "${B_JOPTS:-}"
  else one "$b" B "${B_ARGS:-}" "${B_JOPTS:-}"; one "$a" A "${A_ARGS:-}" "${A_JOPTS:-}"; fi
done | tee $run/results.txt
python3 - $run/results.txt <<'PY'
import statistics, sys
res = {}
for l in open(sys.argv[1]):
    p = l.split()
    if len(p) >= 3 and p[1].isdigit(): res.setdefault(p[0], []).append(int(p[1]))
for k in sorted(res): print(k, "median", statistics.median(res[k]), "runs", res[k])
if "A" in res and "B" in res: print("B/A", round(statistics.median(res["B"]) / statistics.median(res["A"]), 4))
PY
