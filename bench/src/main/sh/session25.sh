#!/usr/bin/env bash
# On the GPU machine (nvidia-h100-x1 for PART=h100 and PART=sanitize), with the plain device bundle in .device, bounded
# by BUDGET seconds (default 560; outputs in $OUT): what the twenty-fifth session asks of the device.
# PART=h100: (1) the fused q/k norm and RoPE alone, timed after a warm-up (last session's ~100 us against the step
#   profile's ~31 were likely idle clocks), held against shared memory, then ncu's sections over a q launch of each; (2) the trainer's 8K steady
#   rate with the defaults (held norm/RoPE rows in the backward, held plain norms, one-launch LoRA copies, fp32 leaf
#   gradient targets) against all four off, alternated; (3) the 8K row with HF in the same call.
# PART=sanitize: memcheck then racecheck over the kernels added since the last sanitizer runs (held norms, held
#   norm/RoPE rows, cast_flat, the one-pass cross-entropy: sanitize.sh's fused part) and the wgmma part, parts at once.
# PART=next: what this session built and could not run (no device time left): the leaf gradient checks (the
#   host-state world of one, LeafGradientTargetGpuTest) first, then the trainer's 8K steady rates alternated, the
#   defaults against each experiment: -Djtune.sharedLoraDown=true (the LoRA down products shared by q/k/v and gate/up) and -Djtune.cuda.wgmmaDqInDkv=true
#   (dQ in the dK/dV kernel: correct in every GPU suite since, speed never measured).
# Usage: [BUDGET=560] PART=h100|sanitize|next bash bench/src/main/sh/session25.sh
. bench/src/main/sh/session.sh
case ${PART:-h100} in
  h100)
    el "the fused q/k norm and RoPE alone at 8K after 0.5 s of warm-up (clocks up): held both ways, shared memory, alternated"
    for o in both none both none; do
      [ $(left) -gt 450 ] && timeout 40 $JAVA $JOPTS -Djtune.cuda.normRopeHeld=$o -cp "$CP" dev.jtune.bench.NormRopeTiming 8192 200 2>&1 | grep -v "^device"
    done | tee $OUT/normrope-kernels.txt
    el "ncu (its default: clocks locked to base) over the first q launches, forward and backward, both paths"
    for o in both none; do
      [ $(left) -gt 400 ] && timeout $(cap 60) ncu --kernel-name regex:rms_norm_rope --launch-count 2 \
          --section SpeedOfLight --section Occupancy --section LaunchStats --section WarpStateStats --section SchedulerStats \
          --section MemoryWorkloadAnalysis --section ComputeWorkloadAnalysis \
          $JAVA $JOPTS -Djtune.cuda.normRopeHeld=$o -cp "$CP" dev.jtune.bench.NormRopeTiming 8192 1 > $OUT/ncu-normrope-$o.txt 2>&1
      echo "== $o"; grep -E "^  [a-z_]+.*\(|Duration|DRAM Throughput|Compute \(SM\) Throughput|Achieved Occupancy|Registers Per|Grid Size|Waves Per SM|Warp Cycles Per Issued|Issue Slots Busy|Pipe" $OUT/ncu-normrope-$o.txt | head -40
    done
    OFF="-Djtune.cuda.normRopeHeld=none -Djtune.cuda.normHeld=false -Djtune.computeCopies=false -Djtune.leafGradientTargets=false"
    el "trainer, 8K steady rates: defaults, all off, defaults, all off"
    alternate_rates "$OFF" 200 70
    el "270M QLoRA r16 8K, 150 steps, HF (one run) in the same call"
    [ $(left) -gt 100 ] && HF_RUNS=1 timeout $(cap 200) bash bench/src/main/sh/end-to-end.sh gemma-3-270m qlora16 8192 150 20 2>&1 \
        | grep -E "^chosen|steady|device peak |tok_s|==" | tee $OUT/qlora8k.txt
    ;;
  next)
    el "leaf gradient paths"
    junit 60 t1 "" --include-classname '.*NcclWorldOfOneGpuTest' --include-methodname '.*StateOnTheHost.*'
    junit 30 t2 "" --include-classname '.*LeafGradientTargetGpuTest'
    for x in -Djtune.sharedLoraDown=true -Djtune.cuda.wgmmaDqInDkv=true; do
      el "trainer, 8K steady rates: default, $x, default, $x"
      alternate_rates "$x" 60 60
    done
    ;;
  sanitize)
    PARALLEL=1 PART_LIMIT=$(cap 520) bash bench/src/main/sh/sanitize.sh both fused wgmma 2>&1 | tail -8
    ;;
esac
el done
