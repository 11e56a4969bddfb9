#!/usr/bin/env bash
# On the GPU machine, with the plain device bundle in .device, bounded by BUDGET seconds (default 540; outputs in
# $OUT): what flipping the wgmma attention and its TMA loads on by default needs, in order: the whole GPU suite with
# both switches on (every gpu-tagged class but ImageLoraGpuTest), the ping-pong experiment's parity and
# kernel times, then the trainer A/B (270M QLoRA r16 8K, PAIRS pairs
# of 30 steps; A as it defaults, B -Djtune.cuda.wgmmaAttention=true -Djtune.cuda.wgmmaTma=true), then the same A/B at
# 32K (SEQ=32768, one pair of 12 steps) if time is left.
# The suite takes ~170 s without FlashWgmmaGpuTest and ~250 s with it (H100).
# A hang in the ping-pong kernel costs its 60 s cap (timeout), not the call.
# Usage: [BUDGET=540] [PAIRS=2] bash bench/src/main/sh/wgmma-tma-default.sh
set -u
. .device/env
OUT=${OUT:-/tmp/wgmma-tma-default}; mkdir -p $OUT
BUDGET=${BUDGET:-540}
. bench/src/main/sh/budget.sh
on="-Djtune.cuda.wgmmaAttention=true -Djtune.cuda.wgmmaTma=true"
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
el "GPU suite with wgmma and TMA on"
timeout $(cap 290) $JAVA $JOPTS $on -jar .device/junit-console.jar execute --class-path "$CP$TCP" --scan-class-path --disable-banner \
    --details=summary --include-tag gpu --exclude-classname '.*ImageLoraGpuTest' > $OUT/suite.txt 2>&1; echo "rc=$?" >> $OUT/suite.txt
grep -E "tests (successful|failed|found)|rc=" $OUT/suite.txt; grep -E "MethodSource|=> " $OUT/suite.txt | head -20
el "ping-pong (-Djtune.cuda.wgmmaPingPong=true: forward and dK/dV): parity, then the kernels alone against lockstep"
pp="$on -Djtune.cuda.wgmmaPingPong=true"
[ $(left) -gt 150 ] && junit 60 parity-pingpong "$pp" --include-classname '.*FlashWgmmaGpuTest'
for s in 8192:0 32768:0; do
  for v in lockstep pingpong; do
    o="$on"; [ $v = pingpong ] && o="$pp"
    [ $(left) -gt 130 ] && timeout $(cap 30) $JAVA $JOPTS $o -cp "$CP" dev.jtune.bench.AttentionMemory ${s%:*} ${s#*:} 1 2>&1 \
        | grep -E 'fused kernels|Exception' | sed "s/^/$v /" | tee -a $OUT/kernels.txt
  done
done
el "trainer A/B at 8K (A defaults, B $on)"
[ $(left) -gt 120 ] && B_JOPTS="$on" timeout $(cap 200) bash bench/src/main/sh/ab-end-to-end.sh ${PAIRS:-2} 30 .device/lib/jtune.jar 2>&1 \
    | tail -10 | tee $OUT/ab-8k.txt
el "trainer A/B at 32K"
[ $(left) -gt 100 ] && SEQ=32768 B_JOPTS="$on" timeout $(left) bash bench/src/main/sh/ab-end-to-end.sh 1 12 .device/lib/jtune.jar 2>&1 \
    | tail -4 | tee $OUT/ab-32k.txt
el done
