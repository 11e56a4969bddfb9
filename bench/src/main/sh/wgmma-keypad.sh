#!/usr/bin/env bash
# On the GPU machine, with the plain device bundle in .device, bounded by BUDGET seconds (default 360; outputs in
# $OUT): the wgmma kernels' parity (FlashWgmmaGpuTest; WgmmaProbeGpuTest, with the TMA probe), the GPU suite with
# them switched on (-Djtune.cuda.wgmmaAttention=true: is the default flip safe?), then the forward's padded key tiles
# (-Djtune.cuda.wgmmaKeyPad=64): parity, and the kernels alone with and without them, alternating, at 8K and 32K causal.
set -u
. .device/env
OUT=${OUT:-/tmp/wgmma-keypad}; mkdir -p $OUT
BUDGET=${BUDGET:-360}
. bench/src/main/sh/budget.sh
junit() { # seconds label jvm-options junit-arguments...
  local secs=$1 label=$2 opts=$3; shift 3
  timeout $(cap $secs) $JAVA $JOPTS $opts -jar .device/junit-console.jar execute --class-path "$CP$TCP" --scan-class-path --disable-banner \
      --details=tree --details-theme=ascii --include-tag gpu "$@" > $OUT/$label.txt 2>&1
  grep -E "tests (successful|failed)" $OUT/$label.txt; grep -E "\[X\]" $OUT/$label.txt | head -8
}
el "wgmma layouts (cp.async and TMA)"
timeout $(cap 40) $JAVA $JOPTS -cp "$CP" dev.jtune.bench.WgmmaLayoutProbe 2>&1 | grep -E "^wgmma|Exception|rror" | tee $OUT/layouts.txt
el "FlashWgmmaGpuTest"
junit 70 parity "" --include-classname '.*(FlashWgmmaGpuTest|WgmmaProbeGpuTest)'
grep -E "^wgmma .*(T2100|T300|T1 )|^wgmma (tma )?probe" $OUT/parity.txt | head -10
el "GPU suite with wgmma attention on"
[ $(left) -gt 120 ] && junit 170 suite-wgmma -Djtune.cuda.wgmmaAttention=true --exclude-classname '.*(ImageLoraGpuTest|FlashWgmmaGpuTest)'
el "FlashWgmmaGpuTest, key pad 64"
[ $(left) -gt 60 ] && junit 70 parity-pad -Djtune.cuda.wgmmaKeyPad=64 --include-classname '.*FlashWgmmaGpuTest'
el "kernels alone, wgmma, key pad 0 / 64"
for round in 1 2; do
  for s in 8192:0 32768:0; do
    for pad in 0 64; do
      [ $(left) -gt 25 ] && timeout $(cap 40) $JAVA $JOPTS -Djtune.cuda.wgmmaAttention=true -Djtune.cuda.wgmmaKeyPad=$pad -cp "$CP" \
          dev.jtune.bench.AttentionMemory ${s%:*} ${s#*:} 1 2>&1 | grep -E 'fused kernels|Exception' | sed "s/^/pad=$pad /" | tee -a $OUT/kernels.txt
    done
  done
done
el done
