#!/usr/bin/env bash
# On the GPU machine (nvidia-h100-x1), with the plain device bundle in .device, bounded by BUDGET seconds (default 560;
# outputs in $OUT): the fused q/k norm and RoPE (RmsNormRope) against the two ops it replaces. PART=suite: the GPU suite
# as it defaults (its parity test, the goldens and the planner's byte-for-byte prediction meet the new op), then
# MetaMatchesCudaGpuTest alone (its scenarios' footprint depended on the test classes run before it in one JVM).
# PART=rows: trainer A/B, 270M QLoRA r16 8K, A -Djtune.fusedNormRope=false, B the default, A/B/A/B of 60 steps
# (20 warm-up); then the issue-14 rows with HF in the same call: 270M QLoRA 8K, 270M full 8K.
# Usage: [BUDGET=560] PART=suite|rows bash bench/src/main/sh/session19c.sh
set -u
. .device/env
OUT=${OUT:-/tmp/session19c}; mkdir -p $OUT
BUDGET=${BUDGET:-560}
. bench/src/main/sh/budget.sh
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
case ${PART:-suite} in
  suite)
    el "GPU suite"
    junit 470 suite "" --exclude-classname '.*ImageLoraGpuTest'
    el "MetaMatchesCudaGpuTest alone"
    junit 60 meta "" --include-classname '.*MetaMatchesCudaGpuTest'
    ;;
  rows)
    for side in A B A B; do
      el "A/B $side"
      opts=""; [ $side = A ] && opts=-Djtune.fusedNormRope=false
      [ $(left) -gt 60 ] && EXTRA_JOPTS="$opts" SKIP_HF=1 timeout $(cap 60) bash bench/src/main/sh/end-to-end.sh gemma-3-270m qlora16 8192 60 20 2>&1 \
          | grep -E "steady|device peak |^step" | tail -3 | sed "s/^/$side: /" | tee -a $OUT/ab.txt
    done
    el "270M QLoRA 8K with HF"
    [ $(left) -gt 120 ] && timeout $(cap 120) bash bench/src/main/sh/end-to-end.sh gemma-3-270m qlora16 8192 220 20 2>&1 | grep -E "steady|device peak |tok_s" | tee $OUT/qlora.txt
    el "270M full 8K with HF"
    [ $(left) -gt 100 ] && timeout $(cap 100) bash bench/src/main/sh/end-to-end.sh gemma-3-270m full 8192 100 20 2>&1 | grep -E "steady|device peak |tok_s" | tee $OUT/full.txt
    ;;
esac
el done
