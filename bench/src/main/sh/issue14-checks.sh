#!/usr/bin/env bash
# On the GPU machine, with the plain device bundle in .device, bounded by BUDGET seconds (default 520; outputs in
# $OUT), in priority order: the GPU suite as it defaults (every gpu-tagged class but ImageLoraGpuTest, the wgmma
# kernels' own test included), the wgmma layout probes and the TMA kernels' parity (-Djtune.cuda.wgmmaTma=true, with
# the swizzled N-major offsets the probe finds right), the trainer's A/B of the cross-entropy gradient made in forward
# (A: -Djtune.crossEntropyGradientInForward=false; 270M QLoRA r16 8K, PAIRS pairs), then the wgmma kernels alone,
# as they are and on TMA, at 8K and 32K causal.
# Usage: [BUDGET=520] [PAIRS=2] bash bench/src/main/sh/issue14-checks.sh
set -u
. .device/env
OUT=${OUT:-/tmp/issue14-checks}; mkdir -p $OUT
BUDGET=${BUDGET:-520}
. bench/src/main/sh/budget.sh
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
el "GPU suite (defaults)"
junit 280 suite "" --exclude-classname '.*ImageLoraGpuTest'
grep -E "^wgmma .*(T2100|T300|T1 )|packed" $OUT/suite.txt | head -8
el "wgmma layouts (cp.async and TMA)"
[ $(left) -gt 60 ] && timeout $(cap 40) $JAVA $JOPTS -cp "$CP" dev.jtune.bench.WgmmaLayoutProbe 2>&1 | grep -E "^wgmma|Exception|rror" | tee $OUT/layouts.txt
swz=""
grep -q "N-major (P V), LBO 1024 SBO 8192.*(right)" $OUT/layouts.txt 2>/dev/null && swz=-Djtune.cuda.wgmmaSw128NMajorLboAlongN=false
tma="-Djtune.cuda.wgmmaTma=true $swz"
el "FlashWgmmaGpuTest on TMA ($tma)"
[ $(left) -gt 60 ] && junit 60 parity-tma "$tma" --include-classname '.*FlashWgmmaGpuTest'
el "trainer A/B: cross-entropy gradient in forward (A off, B on)"
[ $(left) -gt 100 ] && A_JOPTS=-Djtune.crossEntropyGradientInForward=false timeout $(cap 150) bash bench/src/main/sh/ab-end-to-end.sh ${PAIRS:-2} 30 \
    .device/lib/jtune.jar 2>&1 | tail -8 | tee $OUT/ab-ce.txt
el "kernels alone: wgmma as it is and on TMA"
for s in 8192:0 32768:0; do
  for v in plain tma; do
    o=""; [ $v = tma ] && o="$tma"
    [ $(left) -gt 25 ] && timeout $(cap 40) $JAVA $JOPTS -Djtune.cuda.wgmmaAttention=true $o -cp "$CP" \
        dev.jtune.bench.AttentionMemory ${s%:*} ${s#*:} 1 2>&1 | grep -E 'fused kernels|Exception' | sed "s/^/$v /" | tee -a $OUT/kernels.txt
  done
done
el done
