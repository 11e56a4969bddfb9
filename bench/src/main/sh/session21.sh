#!/usr/bin/env bash
# On the GPU machine (nvidia-h100-x1), with the plain device bundle in .device, bounded by BUDGET seconds (default 560;
# outputs in $OUT): the twenty-first session's rows. PART=rows: 270M QLoRA r16 8K
# four ways, two rounds (A the defaults, B the fused q/k norm and RoPE, C B with fused projections, D B with
# --keep_attention all: the sliding layers' attention outputs kept too, their recomputed forward skipped, ~15 x 16 MiB
# more); then the two tests the checks found failing, as changed, with FusedProjectionsGpuTest; then HF's 8K row
# for this call's ratio, as far as BUDGET goes. PART=sanitize: the racecheck leftovers of issue 11 with the
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
    # A the defaults, B the fused q/k norm and RoPE, C B with q/k/v and gate/up as one product each, D B keeping every
    # layer's attention output (--keep_attention all); ROUNDS rounds (default 2) of 60 steps (20 warm-up)
    for round in $(seq 1 ${ROUNDS:-2}); do
      for side in A B C D; do
        el "round $round, $side"
        opts=-Djtune.fusedNormRope=true; args=""
        case $side in
          A) opts=-Djtune.fusedNormRope=false ;;
          C) opts="$opts -Djtune.fusedProjections=true" ;;
          D) args="--keep_attention all" ;;
        esac
        [ $(left) -gt 60 ] && EXTRA_JOPTS="$opts" JTUNE_ARGS="$args" SKIP_HF=1 timeout $(cap 60) bash bench/src/main/sh/end-to-end.sh gemma-3-270m qlora16 8192 60 20 2>&1 \
            | grep -E "steady|device peak |^(step 60|done)" | sed "s/^/$round $side: /" | tee -a $OUT/ab.txt
      done
    done
    el "the two tests the checks failed, as changed (the bf16 gradWeight bound, ZeRO-Offload at one rank with clipping off), and FusedProjectionsGpuTest (q/k/v fused now)"
    [ $(left) -gt 40 ] && junit 130 fixed "" --include-classname '.*(CudaFusedParityTest|NcclWorldOfOneGpuTest|FusedProjectionsGpuTest)' --include-methodname '.*(rmsNormRope|StateOnTheHost|FusedProjections).*'
    grep -E "^step [0-9]+: loss|gradWeight" $OUT/fixed.txt | head -8
    el "HF + peft LoRA r16 at 8K (the anchor for this call)"
    [ $(left) -gt 90 ] && timeout $(left) python3 .device/anchors/hf_gemma3_train.py --model gemma-3-270m --mode lora16 --seq 8192 2>&1 | grep -v -i "warn" | tail -2 | tee $OUT/hf8k.txt
    ;;
  sanitize)
    SAN=$(command -v compute-sanitizer || echo "$CUDA_HOME/bin/compute-sanitizer")
    "$SAN" --help | grep -A6 -E "kernel-name|kernel-regex" | head -30
    el "racecheck plan, ${SAN_ARGS:-no filter}"
    PART_LIMIT=$(cap 400) bash bench/src/main/sh/sanitize.sh racecheck ${SAN_PARTS:-plan} 2>&1 | tail -4
    ;;
esac
el done
