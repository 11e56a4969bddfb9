#!/usr/bin/env bash
# The twenty-fifth session's last device call: the leaf gradient paths after the suite's one failure (a world of one
# with the optimizer state on the host against the host-offloaded trainer: its streamed gradients took the bf16 path
# while ZeRO's bucket took the fp32 one; a sink now gets a fresh fp32 buffer the product writes).
set -u
. .device/env
OUT=${OUT:-/tmp/c3}; mkdir -p $OUT
BUDGET=${BUDGET:-300}
. bench/src/main/sh/budget.sh
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
el "leaf gradient paths: world of one, host offload, the LoRA golden"
junit 240 t "" --include-classname '.*(NcclWorldOfOneGpuTest|LeafGradientTargetGpuTest|HostOffloadAdamWGpuTest|LoraGoldenGpuTest)'
el "the planner against the cuda allocations"
junit 120 p "" --include-classname '.*(PlanMatchesCudaGpuTest|MetaMatchesCudaGpuTest)'
el done
