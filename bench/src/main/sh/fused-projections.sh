#!/usr/bin/env bash
# On the GPU machine, with the plain device bundle in .device: gate and up as one product (-Djtune.fusedProjections=true,
# issue 14) in one call bounded by BUDGET seconds (default 300; outputs in $OUT): the strided GeGLU kernel's parity and
# the fused model against the projections apart, then the trainer A/B (A apart, B fused; same jar) with the losses.
# Usage: [BUDGET=300] [PAIRS=1] bash bench/src/main/sh/fused-projections.sh
set -u
. .device/env
OUT=${OUT:-/tmp/fused-projections}; mkdir -p $OUT
BUDGET=${BUDGET:-300}
. bench/src/main/sh/budget.sh
el "fused projections: parity"
timeout $(cap 100) bash .device/run-tests --include-tag gpu --include-classname '.*(CudaFusedParityTest|FusedProjectionsGpuTest)' \
    --details=tree > $OUT/parity.txt 2>&1; echo rc=$? >> $OUT/parity.txt
grep -E "tests (successful|failed|found)|rc=|fused projections|LoRA gradient" $OUT/parity.txt; grep -E "\[X\]|Error|expected" $OUT/parity.txt | head -12
el "end to end, 270M QLoRA r16 8K: A apart, B fused (same jar)"
if grep -q "0 tests failed" $OUT/parity.txt && [ $(left) -gt 90 ]; then
  B_JOPTS=-Djtune.fusedProjections=true timeout $(cap 200) bash bench/src/main/sh/ab-end-to-end.sh ${PAIRS:-1} 40 .device/lib/jtune.jar 2>&1 | tail -4 | tee $OUT/ab.txt
fi
el done
