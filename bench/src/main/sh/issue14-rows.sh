#!/usr/bin/env bash
# On the GPU machine, with the plain device bundle in .device: issue 14's open rows in one call, in priority order,
# each piece bounded by what is left of BUDGET seconds (default 560; outputs in $OUT): the GPU suite (ImageLora needs
# the images bundle), the wgmma layout probes, attention alone (jtune's fused kernels beside torch SDPA and flex from the same call), kept
# global attention A/B at 32K, the 1B QLoRA r16 row with HF, the 270M full fine-tune row with HF.
# Usage: [BUDGET=560] [SKIP_TESTS=1] bash bench/src/main/sh/issue14-rows.sh
set -u
. .device/env
OUT=${OUT:-/tmp/issue14-rows}; mkdir -p $OUT
. bench/src/main/sh/budget.sh
nvidia-smi --query-gpu=name,driver_version,clocks.sm --format=csv,noheader
el "gpu tests"
[ "${SKIP_TESTS:-0}" = 1 ] || timeout $(cap 240) bash .device/run-tests --include-tag gpu --exclude-classname '.*ImageLoraGpuTest' \
    --details=tree > $OUT/gpu-tests.txt 2>&1; echo rc=$? >> $OUT/gpu-tests.txt
grep -E "tests (successful|failed|found)|rc=" $OUT/gpu-tests.txt; grep -E "\[X\]" $OUT/gpu-tests.txt | head -20
el "wgmma layouts"
[ $(left) -gt 30 ] && timeout $(cap 40) $JAVA $JOPTS -cp "$CP" dev.jtune.bench.WgmmaLayoutProbe 2>&1 | grep -E "^wgmma|Exception" | tee $OUT/wgmma.txt
el "attention alone"
for s in 8192:0 8192:512 32768:0 32768:512; do
  [ $(left) -gt 30 ] && timeout $(cap 40) $JAVA $JOPTS -cp "$CP" dev.jtune.bench.AttentionMemory ${s%:*} ${s#*:} 1 2>&1 | grep 'fused kernels'
done
[ $(left) -gt 60 ] && timeout $(cap 90) python3 .device/anchors/attention.py 2>&1 | grep '^{' | tee $OUT/attention-torch.txt
el "kept global attention at 32K"
[ $(left) -gt 120 ] && SEQ=32768 A_ARGS="--keep_attention none" timeout $(cap 150) bash bench/src/main/sh/ab-end-to-end.sh 1 16 .device/lib/jtune.jar 2>&1 \
    | tail -3 > $OUT/keep-32k.txt; cat $OUT/keep-32k.txt 2>/dev/null
el "1B QLoRA r16 at 8K beside HF"
[ $(left) -gt 150 ] && timeout $(cap 200) bash bench/src/main/sh/end-to-end.sh gemma-3-1b-pt qlora16 8192 60 10 > $OUT/1b.txt 2>&1; grep -E "steady|device peak |tok_s" $OUT/1b.txt
el "270M full fine-tune at 8K beside HF ($(left) s left)"
[ $(left) -gt 120 ] && timeout $(left) bash bench/src/main/sh/end-to-end.sh gemma-3-270m full 8192 60 10 > $OUT/full.txt 2>&1; grep -E "steady|device peak |tok_s" $OUT/full.txt
