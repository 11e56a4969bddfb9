#!/usr/bin/env bash
# On a GPU machine with several GPUs, with the device bundle in .device: issue 16's rows. The same run on one GPU with
# accumulation N x k and on N GPUs (--nproc_per_node N) with accumulation k, so both take the same global batch: each
# step's loss side by side (the issue asks within 1% over 20 steps), the steady tokens/s of each and per GPU (scaling
# efficiency: N GPUs' tokens/s over N x one GPU's), and each run's device peak (rank 0's report lists every rank's).
# ZERO=1 runs the N GPUs with a DeepSpeed config of ZeRO stage 1 (the optimizer state sharded: for full fine-tuning
# each GPU's peak falls by (N-1)/N of the moments and master weights).
# Usage: [ZERO=1] bash bench/src/main/sh/data-parallel.sh [model=gemma-3-270m] [mode=qlora16|full] [gpus=2] [steps=20] [seq=8192] [k=1]
set -u
. .device/env
model=${1:-gemma-3-270m}; mode=${2:-qlora16}; gpus=${3:-2}; steps=${4:-20}; seq=${5:-8192}; k=${6:-1}
run=/tmp/dp-$model-$mode; rm -rf $run; mkdir -p $run
$JAVA $JOPTS -cp "$CP" dev.jtune.bench.PrepareRun $run $model $(( steps * gpus * k + 8 )) $(( seq * 8 / 10 )) cuda 2>&1 | tail -1
case $mode in
  qlora16) extra=(--bits 4 --lora_enable --freeze_llm --lora_rank 16 --lora_alpha 32) ;;
  full) extra=(--optim adamw_torch) ;;
  *) echo "data-parallel.sh: unknown mode $mode" >&2; exit 2 ;;
esac
common=(--model_path $run/model --data_path $run/data.jsonl --max_seq_length $seq --gradient_checkpointing --bf16
        --per_device_train_batch_size 1 --max_steps $steps --logging_steps 1 --save_strategy no --report_to jsonl "${extra[@]}")
echo "== one GPU, accumulation $(( gpus * k ))"
$JAVA $JOPTS -cp "$CP" dev.jtune.train.Main "${common[@]}" --output_dir $run/one --gradient_accumulation_steps $(( gpus * k )) 2>&1 \
    | grep -v "^WARNING" > $run/one.txt
grep -E "^(step|done)" $run/one.txt | tail -2; grep -E "device peak " $run/one.txt | tail -1
zero=(); [ "${ZERO:-0}" = 1 ] && zero=(--deepspeed '{"gradient_clipping": "auto", "zero_optimization": {"stage": 1}}')
echo "== $gpus GPUs (--nproc_per_node $gpus), accumulation $k ${zero[*]}"
$JAVA $JOPTS -cp "$CP" dev.jtune.train.Main "${common[@]}" --output_dir $run/many --gradient_accumulation_steps $k --nproc_per_node $gpus "${zero[@]}" 2>&1 \
    | grep -v "^WARNING" > $run/many.txt
echo "exit ${PIPESTATUS[0]}"; grep -E "^(step|done|jtune)|per rank" $run/many.txt | tail -4; tail -3 $run/many/logs/rank-1.log 2>/dev/null
python3 - $run/one/metrics.jsonl $run/many/metrics.jsonl $gpus <<'PY'
import json, sys
def rows(p):
    return [json.loads(l) for l in open(p) if '"loss"' in l and '"step"' in l]
one, many, n = rows(sys.argv[1]), rows(sys.argv[2]), int(sys.argv[3])
worst = 0
for a, b in zip(one, many):
    rel = abs(b["loss"] - a["loss"]) / abs(a["loss"])
    worst = max(worst, rel)
    print(f"step {a['step']:3d}  loss one {a['loss']:.5f}  {n} GPUs {b['loss']:.5f}  ({rel * 100:.3f}%)")
print(f"worst per-step loss difference: {worst * 100:.3f}% over {min(len(one), len(many))} steps")
def rate(r, warm=3):
    s = [x for x in r if x["step"] > warm]
    if len(s) < 2: return float("nan")
    return (s[-1]["num_input_tokens_seen"] - s[0]["num_input_tokens_seen"]) / (s[-1]["elapsed_seconds"] - s[0]["elapsed_seconds"])
r1, rn = rate(one), rate(many)
print(f"steady tokens/s (after step 3): one GPU {r1:,.0f}; {n} GPUs {rn:,.0f} ({rn / n:,.0f} per GPU): scaling efficiency {rn / (n * r1) * 100:.1f}%")
PY
