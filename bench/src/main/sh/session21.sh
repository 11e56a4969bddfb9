#!/usr/bin/env bash
# On the GPU machine (nvidia-h100-x1), with the plain device bundle in .device, bounded by BUDGET seconds (default 560;
# outputs in $OUT): the twenty-first session's rows. PART=rows: the two tests the checks found failing, as changed; the fused q/k norm and RoPE A/B (270M QLoRA r16 8K, A the
# two ops, B fused, A/B/A/B of 60 steps), then the 8K row with --keep_attention all (the sliding layers' attention
# outputs kept too: their recomputed forward skipped, ~15 x 16 MiB more) at 220 steps with HF's row in the same call,
# then the 32K row (no HF: it runs out of memory there). PART=sanitize: the racecheck leftovers of issue 11 with the
# sanitizer's help text for its kernel filters first.
# Usage: [BUDGET=560] PART=rows|sanitize bash bench/src/main/sh/session21.sh
set -u
. .device/env
OUT=${OUT:-/tmp/session21}; mkdir -p $OUT
BUDGET=${BUDGET:-560}
. bench/src/main/sh/budget.sh
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
case ${PART:-rows} in
  rows)
    el "the two tests the checks call failed, as changed: rmsNormRope's bf16 gradWeight bound, ZeRO-Offload at one rank with clipping off"
    junit 100 fixed "" --include-classname '.*(CudaFusedParityTest|NcclWorldOfOneGpuTest)' --include-methodname '.*(rmsNormRope|StateOnTheHost).*'
    grep -E "^step [0-9]+: loss|gradWeight" $OUT/fixed.txt | head -8
    for side in A B A B; do
      el "A/B $side"
      opts=-Djtune.fusedNormRope=false; [ $side = B ] && opts=-Djtune.fusedNormRope=true
      [ $(left) -gt 50 ] && EXTRA_JOPTS="$opts" SKIP_HF=1 timeout $(cap 50) bash bench/src/main/sh/end-to-end.sh gemma-3-270m qlora16 8192 60 20 2>&1 \
          | grep -E "steady|device peak " | sed "s/^/$side: /" | tee -a $OUT/ab.txt
    done
    el "270M QLoRA 8K, --keep_attention all, 220 steps, HF in the same call"
    [ $(left) -gt 150 ] && JTUNE_ARGS="--keep_attention all" timeout $(cap 200) bash bench/src/main/sh/end-to-end.sh gemma-3-270m qlora16 8192 220 20 2>&1 \
        | grep -E "steady|device peak |tok_s|==" | tee $OUT/qlora8k-all.txt
    el "270M QLoRA 32K"
    [ $(left) -gt 60 ] && SKIP_HF=1 timeout $(left) bash bench/src/main/sh/end-to-end.sh gemma-3-270m qlora16 32768 100 20 2>&1 | grep -E "steady|device peak " | tee $OUT/qlora32k.txt
    ;;
  sanitize)
    SAN=$(command -v compute-sanitizer || echo "$CUDA_HOME/bin/compute-sanitizer")
    "$SAN" --help | grep -A6 -E "kernel-name|kernel-regex" | head -30
    el "racecheck plan, ${SAN_ARGS:-no filter}"
    PART_LIMIT=$(cap 400) bash bench/src/main/sh/sanitize.sh racecheck ${SAN_PARTS:-plan} 2>&1 | tail -4
    ;;
esac
el done
