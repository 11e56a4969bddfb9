# The twenty-fourth session's third device call: the fixes after call 2 (leaf gradient targets off by default, the held
# norm/RoPE path in the backward only, rope_diff), then the trainer's 8K steady rate with this session's defaults
# against all of them off, alternated.
BUDGET=560
. bench/src/main/sh/session.sh
el "targeted GPU tests"
junit 200 t "" --include-classname '.*(NcclWorldOfOne.*|LeafGradientTargetGpuTest|Golden.*GpuTest)'
junit 120 n "" --include-classname '.*CudaFusedParityTest' --include-methodname '.*([Nn]orm|flatCast).*'
OFF="-Djtune.cuda.normRopeHeld=none -Djtune.cuda.normHeld=false -Djtune.computeCopies=false"
el "trainer, 8K steady rates: defaults, all off, defaults, all off"
alternate_rates "$OFF" 50 70 8192 120 20
el done
