#!/usr/bin/env bash
# On the GPU machine, with the device bundle in .device: the fused attention kernels' tests, attention timings
# both ways (fused; blocked, -Djtune.cuda.fusedAttention=false), a
# Gemma 3 270M QLoRA step fused vs blocked, then the whole GPU suite (skipped with "quick").
# Usage: bash bench/src/main/sh/attention-fused.sh [quick|full] [attention sizes as "T:window" ...]
set -u
. .device/env
run() { $JAVA $JOPTS -cp "$CP" "$@"; }
mode=${1:-full}; shift || true
sizes=${*:-8192:0 8192:512 16384:0 32768:512 32768:0}
nvidia-smi --query-gpu=name,driver_version,clocks.sm,temperature.gpu --format=csv,noheader
bash .device/run-tests --include-tag gpu --include-classname '.*CudaFlashAttentionTest' 2>&1 | grep -E -A3 "tests (successful|failed)|=>" | head -40
for s in $sizes; do
  for opts in "-Djtune.cuda.fusedAttention=true" "-Djtune.cuda.fusedAttention=false"; do
    echo -n "${opts#-D}: "; run $opts dev.jtune.bench.AttentionMemory ${s%:*} ${s#*:} 3 2>&1 | tail -2
  done
done
for fused in true false; do
  echo "fused=$fused"; run -Djtune.cuda.fusedAttention=$fused dev.jtune.bench.GemmaStep gemma-3-270m 8192 true 3 qlora16 2>&1 | tail -2
done
[ "$mode" = quick ] && exit 0
bash .device/run-tests --include-tag gpu 2>&1 | grep -E "tests (successful|failed)|=>|LoRA:|MethodSource|JUnit Jupiter:" | head -60
