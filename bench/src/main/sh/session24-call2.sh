BUDGET=560
. bench/src/main/sh/session.sh
el "targeted GPU tests"
junit 330 t "" --include-classname '.*(CudaFusedParityTest|NcclWorldOfOne.*|LeafGradientTargetGpuTest|Golden.*GpuTest|CudaOpsBackwardParityTest|FusedProjectionsGpuTest)'
grep -E "fused against unfused" $OUT/t.txt | head -8
el "kernels alone"
for o in "" "-Djtune.cuda.normRopeHeld=false"; do
  [ $(left) -gt 30 ] && echo "${o:-held}: " && timeout $(cap 40) $JAVA $JOPTS $o -cp "$CP" dev.jtune.bench.NormRopeTiming 8192 20 2>&1 | grep -v "^device"
done
[ $(left) -gt 40 ] && timeout $(cap 60) $JAVA $JOPTS -cp "$CP" dev.jtune.bench.CrossEntropyTiming 8192 10 2>&1 | grep -v "^device"
[ $(left) -gt 40 ] && timeout $(cap 60) $JAVA $JOPTS -cp "$CP" dev.jtune.bench.CrossEntropyTiming 32768 5 2>&1 | grep -v "^device"
el done
