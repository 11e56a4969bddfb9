#!/usr/bin/env bash
# On the GPU machine (nvidia-h100-x1: ncu), with the plain device bundle in .device, bounded by BUDGET seconds (default
# 560; outputs in $OUT): the norm weight gradient with its row slots' lines in shared memory (one scratch line a
# block, a reduce of 1024 threads a block) against the full fine-tune profile that found it (rms_norm_weight_reduce
# 11.5 ms and rms_norm_backward 6.9 ms of a 75.8 ms step). The norm parity tests, the meta and plan predictions (the
# scratch's size rule changed), the 270M full 8K row with HF in the same call, then the full step's profile again.
# Usage: [BUDGET=560] bash bench/src/main/sh/session19b.sh
set -u
. .device/env
OUT=${OUT:-/tmp/session19b}; mkdir -p $OUT
BUDGET=${BUDGET:-560}
. bench/src/main/sh/budget.sh
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
el "norm parity, meta and plan against cuda"
junit 200 parity "" --include-classname '.*(CudaFusedParityTest|CudaOpsBackwardParityTest|MetaMatchesCudaGpuTest|PlanMatchesCudaGpuTest|CudaTrainingTest)'
el "270M full 8K with HF, checkpointing both sides"
[ $(left) -gt 100 ] && timeout $(cap 100) bash bench/src/main/sh/end-to-end.sh gemma-3-270m full 8192 100 20 2>&1 | grep -E "steady|device peak |tok_s" | tee $OUT/full-ckpt.txt
el "one full fine-tune step under ncu"
[ $(left) -gt 90 ] && timeout $(left) bash bench/src/main/sh/profile-step.sh gemma-3-270m 8192 true 1 full 2>&1 | grep -vi "broken pipe\|Traceback\|File \"<stdin>\"" | head -40 | tee $OUT/profile-full.txt
el done
