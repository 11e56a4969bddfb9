#!/usr/bin/env bash
# On the GPU machine (nvidia-h100-x1: ncu), with the plain device bundle in .device, bounded by BUDGET seconds (default
# 560; outputs in $OUT): what the eighteenth session left for the device. NcclWorldOfOneGpuTest (its ZeRO stage 3 case,
# frozen weights all-gathered through NCCL's side stream, has never run), the 270M full fine-tune 8K row with HF in the
# same call, with and without gradient checkpointing on both sides (2.94x with it: the 3x target), then Nsight
# Compute's per-kernel time of one full fine-tune step (what QLoRA's profile lacks: the embedding's dW, the lookup's
# gradient; the optimizer step is not in GemmaStep).
# Usage: [BUDGET=560] bash bench/src/main/sh/session19.sh
set -u
. .device/env
OUT=${OUT:-/tmp/session19}; mkdir -p $OUT
BUDGET=${BUDGET:-560}
. bench/src/main/sh/budget.sh
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
el "NcclWorldOfOneGpuTest"
junit 150 nccl "" --include-classname '.*NcclWorldOfOneGpuTest'
el "270M full 8K with HF, checkpointing both sides"
[ $(left) -gt 100 ] && timeout $(cap 100) bash bench/src/main/sh/end-to-end.sh gemma-3-270m full 8192 100 20 2>&1 | grep -E "steady|device peak |tok_s" | tee $OUT/full-ckpt.txt
el "270M full 8K with HF, no checkpointing either side"
[ $(left) -gt 100 ] && NO_CHECKPOINTING=1 timeout $(cap 100) bash bench/src/main/sh/end-to-end.sh gemma-3-270m full 8192 100 20 2>&1 | grep -E "steady|device peak |tok_s" | tee $OUT/full-nockpt.txt
el "one full fine-tune step under ncu"
[ $(left) -gt 90 ] && timeout $(left) bash bench/src/main/sh/profile-step.sh gemma-3-270m 8192 true 1 full 2>&1 | head -40 | tee $OUT/profile-full.txt
el done
