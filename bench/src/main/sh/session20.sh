#!/usr/bin/env bash
# On the GPU machine (nvidia-h100-x1), with the plain device bundle in .device, bounded by BUDGET seconds (default 560;
# outputs in $OUT): what the nineteenth session left for the device. PART=checks: the fused q/k norm and RoPE's parity
# test (per dtype, how many elements differ from the two ops: 0 is the aim since its rotation spells out rope.cu's
# multiply-adds), the LoRA goldens with it on (the fp32 one was 1.46e-4 against its 1e-4 bound before that), then
# MetaMatchesCudaGpuTest alone (it holds the allocator's leftover chunks now), then the GPU suite as it defaults (it
# holds the twentieth session's NCCL rows, none run yet: NcclWorldOfOneGpuTest's stage 3 of a full fine-tune, stage 3
# with the parts in host memory, the 8-bit shards).
# PART=rows: a clean A/B of the fused op (270M QLoRA r16 8K, A the two ops, B fused, A/B/A/B of 60 steps), one step's
# ncu profile with it on, then the 32K row with it on (no HF: it runs out of memory there).
# Usage: [BUDGET=560] PART=checks|rows bash bench/src/main/sh/session20.sh
set -u
. .device/env
OUT=${OUT:-/tmp/session20}; mkdir -p $OUT
BUDGET=${BUDGET:-560}
. bench/src/main/sh/budget.sh
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
case ${PART:-checks} in
  checks)
    el "rmsNormRope parity"
    junit 90 parity "" --include-classname '.*CudaFusedParityTest' --include-methodname '.*rmsNormRope.*'
    grep -E "fused against unfused" $OUT/parity.txt | head -12
    el "LoRA goldens, fused on"
    junit 60 lora "-Djtune.fusedNormRope=true" --include-classname '.*LoraGoldenGpuTest'
    grep -E "F32 LoRA|relative error" $OUT/lora.txt | grep -v "^ " | head -3
    el "MetaMatchesCudaGpuTest alone"
    junit 60 meta "" --include-classname '.*MetaMatchesCudaGpuTest'
    el "GPU suite"
    junit $(( $(left) - 5 )) suite "" --exclude-classname '.*ImageLoraGpuTest'
    ;;
  rows)
    for side in A B A B; do
      el "A/B $side"
      opts=-Djtune.fusedNormRope=false; [ $side = B ] && opts=-Djtune.fusedNormRope=true
      [ $(left) -gt 50 ] && EXTRA_JOPTS="$opts" SKIP_HF=1 timeout $(cap 50) bash bench/src/main/sh/end-to-end.sh gemma-3-270m qlora16 8192 60 20 2>&1 \
          | grep -E "steady|device peak " | sed "s/^/$side: /" | tee -a $OUT/ab.txt
    done
    el "one QLoRA 8K step under ncu, fused on (rope_bf16 and the q/k norms against rms_norm_rope*)"
    [ $(left) -gt 190 ] && EXTRA_JOPTS=-Djtune.fusedNormRope=true timeout 90 bash bench/src/main/sh/profile-step.sh gemma-3-270m 8192 true 1 qlora16 2>&1 \
        | grep -vi "broken pipe\|Traceback\|File \"<stdin>\"" | head -34 | tee $OUT/profile-fused.txt
    el "270M QLoRA 32K, fused on"
    [ $(left) -gt 100 ] && EXTRA_JOPTS=-Djtune.fusedNormRope=true SKIP_HF=1 timeout $(left) bash bench/src/main/sh/end-to-end.sh gemma-3-270m qlora16 32768 100 20 2>&1 | grep -E "steady|device peak " | tee $OUT/qlora32k.txt
    ;;
esac
el done
