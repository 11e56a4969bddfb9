#!/usr/bin/env bash
# On the GPU machine, with the plain device bundle in .device, bounded by BUDGET seconds (default 540; outputs in
# $OUT): the seventeenth session's attention defaults (wgmma, TMA tiles, dK/dV's groups apart) checked in one call:
# the whole GPU suite as it defaults (every gpu-tagged class but ImageLoraGpuTest), the trainer A/B of dK/dV's
# ping-pong (A -Djtune.cuda.wgmmaPingPong=none, B the default dkv; 270M QLoRA r16 8K, PAIRS pairs of 30 steps), then
# the 8K row with HF's anchor in the same call (end-to-end.sh, 220 steps), then 32K with --keep_attention none.
# Usage: [BUDGET=540] [PAIRS=3] bash bench/src/main/sh/wgmma-defaults.sh
set -u
. .device/env
OUT=${OUT:-/tmp/wgmma-defaults}; mkdir -p $OUT
BUDGET=${BUDGET:-540}
. bench/src/main/sh/budget.sh
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
el "GPU suite as it defaults"
junit 290 suite "" --exclude-classname '.*ImageLoraGpuTest'
el "trainer A/B: dK/dV in lockstep (A) or apart (B, the default)"
[ $(left) -gt 120 ] && A_JOPTS="-Djtune.cuda.wgmmaPingPong=none" timeout $(cap 120) bash bench/src/main/sh/ab-end-to-end.sh ${PAIRS:-3} 30 .device/lib/jtune.jar 2>&1 \
    | tail -4 | tee $OUT/ab-pingpong.txt
el "270M QLoRA r16 8K with HF"
[ $(left) -gt 70 ] && timeout $(cap 90) bash bench/src/main/sh/end-to-end.sh gemma-3-270m qlora16 8192 220 2>&1 | grep -E "steady|device peak |tok_s" | tee $OUT/row-8k.txt
el "270M QLoRA r16 32K without kept attention (the 3 GiB target: planned 2.90 GiB)"
[ $(left) -gt 50 ] && SKIP_HF=1 JTUNE_ARGS="--keep_attention none" timeout $(left) bash bench/src/main/sh/end-to-end.sh gemma-3-270m qlora16 32768 100 20 2>&1 \
    | grep -E "steady|device peak " | tee $OUT/row-32k.txt
el done
