#!/usr/bin/env bash
# On the GPU machine, with the plain device bundle in .device: the wgmma kernels' parity (default build, then the
# forward's padded key tiles, -Djtune.cuda.wgmmaKeyPad=64), and the kernels alone with and without the padding,
# alternating, at 8K and 32K causal. BUDGET seconds (default 300); outputs in $OUT.
set -u
. .device/env
OUT=${OUT:-/tmp/wgmma-keypad}; mkdir -p $OUT
BUDGET=${BUDGET:-300}
. bench/src/main/sh/budget.sh
for pad in 0 64; do
  el "FlashWgmmaGpuTest, key pad $pad"
  timeout $(cap 90) $JAVA $JOPTS -Djtune.cuda.wgmmaKeyPad=$pad -jar .device/junit-console.jar execute --class-path "$CP$TCP" \
      --scan-class-path --disable-banner --details=tree --details-theme=ascii --include-tag gpu --include-classname '.*FlashWgmmaGpuTest' \
      > $OUT/parity-$pad.txt 2>&1
  grep -E "tests (successful|failed)" $OUT/parity-$pad.txt; grep -E "\[X\]|Error" $OUT/parity-$pad.txt | head -6
  grep -E "^wgmma .*(T2100|T300|T1 )" $OUT/parity-$pad.txt | head -8
done
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
