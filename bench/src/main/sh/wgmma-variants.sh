#!/usr/bin/env bash
# On the GPU machine, with the plain device bundle in .device, bounded by BUDGET seconds (default 540; outputs in
# $OUT): the wgmma layouts (cp.async and TMA probes), the kernels' parity (FlashWgmmaGpuTest, WgmmaProbeGpuTest),
# the TMA forward's parity (-Djtune.cuda.wgmmaTma=true, with the swizzled N-major offsets the probe found), the
# kernels alone as they are, with TMA and with padded key tiles (-Djtune.cuda.wgmmaKeyPad=64), alternating, at 8K and
# 32K causal, then the GPU suite with wgmma attention on (is the default flip safe?).
set -u
. .device/env
OUT=${OUT:-/tmp/wgmma-variants}; mkdir -p $OUT
BUDGET=${BUDGET:-540}
. bench/src/main/sh/budget.sh
el "wgmma layouts (cp.async and TMA)"
timeout $(cap 40) $JAVA $JOPTS -cp "$CP" dev.jtune.bench.WgmmaLayoutProbe 2>&1 | grep -E "^wgmma|Exception|rror" | tee $OUT/layouts.txt
swz=""  # the swizzled N-major offsets the other way round, if only that way is right
grep -q "N-major (P V), LBO 1024 SBO 8192.*(right)" $OUT/layouts.txt && swz=-Djtune.cuda.wgmmaSw128NMajorLboAlongN=false
tma="-Djtune.cuda.wgmmaTma=true $swz"
el "FlashWgmmaGpuTest, WgmmaProbeGpuTest"
junit 70 parity "" --include-classname '.*(FlashWgmmaGpuTest|WgmmaProbeGpuTest)'
grep -E "^wgmma .*(T2100|T300|T1 )|^wgmma (tma )?probe" $OUT/parity.txt | head -10
el "FlashWgmmaGpuTest, TMA forward ($tma)"
junit 60 parity-tma "$tma" --include-classname '.*FlashWgmmaGpuTest'
el "kernels alone: wgmma as it is, TMA forward, padded key tiles"
for round in 1 2; do
  for s in 8192:0 32768:0; do
    for v in plain tma pad; do
      case $v in plain) o="";; tma) o="$tma";; pad) o=-Djtune.cuda.wgmmaKeyPad=64;; esac
      [ $(left) -gt 25 ] && timeout $(cap 40) $JAVA $JOPTS -Djtune.cuda.wgmmaAttention=true $o -cp "$CP" \
          dev.jtune.bench.AttentionMemory ${s%:*} ${s#*:} 1 2>&1 | grep -E 'fused kernels|Exception' | sed "s/^/$v /" | tee -a $OUT/kernels.txt
    done
  done
done
el "GPU suite with wgmma attention on"
[ $(left) -gt 120 ] && junit 170 suite-wgmma -Djtune.cuda.wgmmaAttention=true --exclude-classname '.*(ImageLoraGpuTest|FlashWgmmaGpuTest)'
el done
