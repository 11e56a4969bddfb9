#!/usr/bin/env bash
# On the GPU machine (nvidia-h100-x1), with the plain device bundle in .device, bounded by BUDGET seconds (default 560;
# outputs in $OUT): what the twenty-fourth session (no device) left for the device, beside session23.sh's parts.
# PART=ce: the one-pass cross-entropy (loss_cluster.cu, -Djtune.cuda.crossEntropyCluster=true; never run yet): its
#   parity test (CudaFusedParityTest#crossEntropyWithGradientInOnePass runs it whatever the flag; a hang there means
#   a cluster barrier), the linear cross-entropy's GPU tests and the goldens with the flag, the kernels alone
#   (CrossEntropyTiming, 8K and 32K tokens, two kernels against one pass), then the trainer's 8K steady rates,
#   alternated without and with it.
# PART=ce32: the 32K steady rates (--max_memory 3GiB) without and with it, twice each way.
# PART=normrope: rows held in registers by the fused q/k norm and RoPE and by the plain norms' _held kernels (both
#   default; never run yet): CudaFusedParityTest's norm tests (rmsNormRopeIsTheNormThenTheRope against the cpu and the
#   unfused ops with Gemma's 8K q whole; heldNormRowsAreTheTwoPassKernelsBitForBit; rmsNorm*), the goldens, the q/k
#   kernels alone with and without it (NormRopeTiming, -Djtune.cuda.normRopeHeld=false: the shared-memory path), then
#   the trainer's 8K steady rates alternated, both on against both off (-Djtune.cuda.normHeld=false too).
# Usage: [BUDGET=560] PART=ce|ce32|normrope bash bench/src/main/sh/session24.sh
. bench/src/main/sh/session.sh
CE=-Djtune.cuda.crossEntropyCluster=true
case ${PART:-ce} in
  ce)
    el "the one-pass kernel against the cpu reference"
    junit 90 ce-parity "" --include-classname '.*CudaFusedParityTest' --include-methodname '.*crossEntropy.*'
    el "the linear cross-entropy's GPU tests and the goldens, with it"
    junit 200 ce-goldens "$CE" --include-classname '.*(LinearCrossEntropy.*|Golden.*)GpuTest'
    el "the kernels alone"
    for t in 8192 32768; do
      [ $(left) -gt 40 ] && timeout $(cap 60) $JAVA $JOPTS -cp "$CP" dev.jtune.bench.CrossEntropyTiming $t 10 2>&1 | grep -v "^device"
    done | tee $OUT/kernels.txt
    el "trainer, 8K steady rates, alternated: default, flag, default, flag"
    for o in "" "$CE" "" "$CE"; do
      [ $(left) -gt 50 ] && echo -n "${o:-default} " && EXTRA_JOPTS="$o" SKIP_HF=1 timeout $(cap 60) bash bench/src/main/sh/end-to-end.sh \
          gemma-3-270m qlora16 8192 150 20 2>&1 | grep -E "steady"
    done | tee $OUT/steady8k.txt
    ;;
  ce32)
    el "trainer, 32K --max_memory 3GiB: default, flag, default, flag"
    for o in "" "$CE" "" "$CE"; do
      [ $(left) -gt 60 ] && echo -n "${o:-default} " && EXTRA_JOPTS="$o" JTUNE_ARGS="--max_memory 3GiB" SKIP_HF=1 timeout $(cap 75) \
          bash bench/src/main/sh/end-to-end.sh gemma-3-270m qlora16 32768 60 10 2>&1 | grep -E "steady|device peak  "
    done | tee $OUT/steady32k.txt
    ;;
  normrope)
    OFF=-Djtune.cuda.normRopeHeld=false
    el "the held rows against the cpu and the unfused ops"
    junit 150 normrope-parity "" --include-classname '.*CudaFusedParityTest' --include-methodname '.*([Nn]orm).*'
    grep -E "fused against unfused" $OUT/normrope-parity.txt | head -12
    el "the goldens"
    junit 150 normrope-goldens "" --include-classname '.*Golden.*GpuTest'
    el "the kernels alone: held (default), shared memory, held, shared memory"
    for o in "" "$OFF" "" "$OFF"; do
      [ $(left) -gt 30 ] && timeout $(cap 40) $JAVA $JOPTS $o -cp "$CP" dev.jtune.bench.NormRopeTiming 8192 20 2>&1 | grep -v "^device"
    done | tee $OUT/normrope-kernels.txt
    el "trainer, 8K steady rates, alternated: held, two-pass, held, two-pass"
    for o in "" "$OFF -Djtune.cuda.normHeld=false" "" "$OFF -Djtune.cuda.normHeld=false"; do
      [ $(left) -gt 50 ] && echo -n "${o:-held} " && EXTRA_JOPTS="$o" SKIP_HF=1 timeout $(cap 60) bash bench/src/main/sh/end-to-end.sh \
          gemma-3-270m qlora16 8192 150 20 2>&1 | grep -E "steady"
    done | tee $OUT/normrope-steady8k.txt
    ;;
esac
el done
