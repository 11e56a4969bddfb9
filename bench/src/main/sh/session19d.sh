#!/usr/bin/env bash
# On the GPU machine (nvidia-h100-x1), with the plain device bundle in .device, bounded by BUDGET seconds (default 440;
# outputs in $OUT): the fused q/k norm and RoPE (-Djtune.fusedNormRope=true; off by default) after the suite found the
# fp32 LoRA golden over its bound with it on. Its parity test (every dtype against the cpu reference, and how many
# elements differ from the two ops), the LoRA goldens with it on and off, then trainer A/B (270M QLoRA r16 8K, A off,
# B on, A/B/A/B of 60 steps, 20 warm-up) and the 8K row with it on and HF in the same call.
# Usage: [BUDGET=440] bash bench/src/main/sh/session19d.sh
set -u
. .device/env
OUT=${OUT:-/tmp/session19d}; mkdir -p $OUT
BUDGET=${BUDGET:-440}
. bench/src/main/sh/budget.sh
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
el "rmsNormRope parity"
junit 60 parity "" --include-classname '.*CudaFusedParityTest' --include-methodname '.*rmsNormRope.*'
grep -E "fused against unfused" $OUT/parity.txt | head -12
for on in true false; do
  el "LoRA goldens, fusedNormRope=$on"
  junit 60 lora-$on "-Djtune.fusedNormRope=$on" --include-classname '.*LoraGoldenGpuTest'
  grep -E "F32 LoRA|relative error" $OUT/lora-$on.txt | grep -v "^ " | head -4
done
for side in A B A B; do
  el "A/B $side"
  opts=-Djtune.fusedNormRope=false; [ $side = B ] && opts=-Djtune.fusedNormRope=true
  [ $(left) -gt 50 ] && EXTRA_JOPTS="$opts" SKIP_HF=1 timeout $(cap 50) bash bench/src/main/sh/end-to-end.sh gemma-3-270m qlora16 8192 60 20 2>&1 \
      | grep -E "steady|device peak " | sed "s/^/$side: /" | tee -a $OUT/ab.txt
done
el "270M QLoRA 8K, fused on, with HF"
[ $(left) -gt 100 ] && EXTRA_JOPTS=-Djtune.fusedNormRope=true timeout $(left) bash bench/src/main/sh/end-to-end.sh gemma-3-270m qlora16 8192 220 20 2>&1 | grep -E "steady|device peak |tok_s" | tee $OUT/qlora.txt
el done
