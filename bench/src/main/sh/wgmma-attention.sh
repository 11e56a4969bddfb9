#!/usr/bin/env bash
# On the GPU machine, with the plain device bundle in .device: the wgmma attention work (issue 14) in one call, each
# piece bounded by what is left of BUDGET seconds (default 560; outputs in $OUT): the layout probes, the wgmma and
# flash parity tests, the fused kernels alone on mma.sync and on wgmma (AttentionMemory, same call), the trainer A/B
# (mma.sync vs wgmma, if the parity tests passed), torch SDPA and flex, then the GPU suite with what is left.
# Usage: [BUDGET=560] [SKIP_SUITE=1] bash bench/src/main/sh/wgmma-attention.sh
set -u
. .device/env
OUT=${OUT:-/tmp/wgmma-attention}; mkdir -p $OUT
. bench/src/main/sh/budget.sh
nvidia-smi --query-gpu=name,driver_version,clocks.sm --format=csv,noheader
el "wgmma layouts"
timeout $(cap 40) $JAVA $JOPTS -cp "$CP" dev.jtune.bench.WgmmaLayoutProbe 2>&1 | grep -E "^wgmma|Exception|rror" | tee $OUT/wgmma.txt
el "wgmma and flash parity"
timeout $(cap 120) bash .device/run-tests --include-tag gpu --include-classname '.*(FlashWgmmaGpuTest|WgmmaProbeGpuTest|CudaFlashAttentionTest)' \
    --details=tree > $OUT/parity.txt 2>&1; echo rc=$? >> $OUT/parity.txt
grep -E "tests (successful|failed|found)|rc=|wgmma |wgmma probe" $OUT/parity.txt; grep -E "\[X\]|Error|expected" $OUT/parity.txt | head -20
if ! grep -q "0 tests failed" $OUT/parity.txt; then  # the N-major descriptor's offsets the other way round
  el "wgmma parity with the N-major offsets swapped"
  timeout $(cap 60) $JAVA $JOPTS -Djtune.cuda.wgmmaNMajorLboAlongK=false -jar .device/junit-console.jar execute --class-path "$CP$TCP" \
      --scan-class-path --disable-banner --details=tree --details-theme=ascii --include-tag gpu --include-classname '.*FlashWgmmaGpuTest' \
      > $OUT/parity-swapped.txt 2>&1
  grep -E "tests (successful|failed)|wgmma " $OUT/parity-swapped.txt; grep -E "\[X\]|Error|expected" $OUT/parity-swapped.txt | head -8
fi
el "attention kernels alone: mma.sync, then wgmma forward"
for s in 8192:0 8192:512 32768:0; do
  for w in false true; do
    [ $(left) -gt 30 ] && timeout $(cap 40) $JAVA $JOPTS -Djtune.cuda.wgmmaAttention=$w -cp "$CP" dev.jtune.bench.AttentionMemory ${s%:*} ${s#*:} 1 2>&1 \
        | grep -E 'fused kernels|Exception' | sed "s/^/wgmma=$w /" | tee -a $OUT/kernels.txt
  done
done
el "end to end, 270M QLoRA r16 8K: A mma.sync, B wgmma (same jar)"
if grep -q "0 tests failed" $OUT/parity.txt && [ $(left) -gt 90 ]; then
  pairs=$([ $(left) -gt 200 ] && echo 2 || echo 1)
  B_JOPTS=-Djtune.cuda.wgmmaAttention=true timeout $(cap 170) bash bench/src/main/sh/ab-end-to-end.sh $pairs 40 .device/lib/jtune.jar 2>&1 | tail -3 | tee $OUT/ab.txt
fi
el "torch SDPA and flex"
[ $(left) -gt 150 ] && timeout $(cap 90) python3 .device/anchors/attention.py 2>&1 | grep '^{' | tee $OUT/attention-torch.txt
el "GPU suite"
[ "${SKIP_SUITE:-0}" = 1 ] || { [ $(left) -gt 60 ] && timeout $(left) bash .device/run-tests --include-tag gpu --exclude-classname '.*ImageLoraGpuTest' \
    --details=tree > $OUT/gpu-tests.txt 2>&1; echo rc=$? >> $OUT/gpu-tests.txt; }
grep -E "tests (successful|failed|found)|rc=" $OUT/gpu-tests.txt 2>/dev/null; grep -E "\[X\]" $OUT/gpu-tests.txt 2>/dev/null | head -20
el done
