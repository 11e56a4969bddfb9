#!/usr/bin/env bash
# The twenty-fifth session's last device call: the leaf gradient paths after the suite's one failure (a world of one
# with the optimizer state on the host against the host-offloaded trainer: its streamed gradients took the bf16 path
# while ZeRO's bucket took the fp32 one; a sink now gets a fresh fp32 buffer the product writes).
BUDGET=${BUDGET:-90}
. bench/src/main/sh/session.sh
el "leaf gradient paths: the host-state world of one, then the targets themselves, then the rest of the world of one"
junit 60 t1 "" --include-classname '.*NcclWorldOfOneGpuTest' --include-methodname '.*StateOnTheHost.*'
junit 30 t2 "" --include-classname '.*LeafGradientTargetGpuTest'
junit 200 t3 "" --include-classname '.*(NcclWorldOfOneGpuTest|HostOffloadAdamWGpuTest|LoraGoldenGpuTest|Gemma3GoldenGpuTest)'
el done
