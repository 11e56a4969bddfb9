#!/usr/bin/env bash
# On the GPU machine (nvidia-h100-x1), with the plain device bundle in .device, bounded by BUDGET seconds (default 560;
# outputs in $OUT): what the twenty-first session left for the device.
# PART=suite: the GPU suite at the new defaults (the fused q/k norm and RoPE on; the planner keeping every layer's
#   attention where it fits, which RunPlanGpuTest's free-memory run now takes), every gpu-tagged class but
#   ImageLoraGpuTest.
# PART=rows: the issue-14 rows at the new defaults with HF in the same call: 270M QLoRA r16 8K (the planner keeps
#   every layer's attention: predicted ~136K tok/s, 1.316 GiB), 32K under --max_memory 3GiB (the global layers' kept,
#   as the target's 3 GiB needs) and the 8K step's profile with every layer kept (GemmaStep's 7th argument).
# PART=sanitize: issue 11's racecheck leftovers (PlanMatchesCudaGpuTest's host memory, LinearCrossEntropyBlocksGpuTest's
#   time), first with the sanitizer's own kernel filter (SAN_ARGS, default: leave cuBLAS's nvjet_* kernels
#   uninstrumented; the help text is printed first, since an exclusion failed with a hardware exception once).
# Usage: [BUDGET=560] PART=suite|rows|sanitize bash bench/src/main/sh/session22.sh
. bench/src/main/sh/session.sh
case ${PART:-suite} in
  suite)
    el "GPU suite"
    junit $(( $(left) - 5 )) suite "" --exclude-classname '.*ImageLoraGpuTest'
    ;;
  rows)
    el "270M QLoRA r16 8K, 220 steps, HF in the same call"
    [ $(left) -gt 150 ] && timeout $(cap 200) bash bench/src/main/sh/end-to-end.sh gemma-3-270m qlora16 8192 220 20 2>&1 \
        | grep -E "^chosen|steady|device peak |tok_s|==" | tee $OUT/qlora8k.txt
    el "270M QLoRA r16 32K, --max_memory 3GiB"
    [ $(left) -gt 100 ] && JTUNE_ARGS="--max_memory 3GiB" SKIP_HF=1 timeout $(cap 120) bash bench/src/main/sh/end-to-end.sh gemma-3-270m qlora16 32768 100 20 2>&1 \
        | grep -E "^chosen|steady|device peak " | tee $OUT/qlora32k.txt
    el "one QLoRA 8K step under ncu, every layer's attention kept"
    [ $(left) -gt 100 ] && timeout $(cap 100) bash bench/src/main/sh/profile-step.sh gemma-3-270m 8192 true 1 qlora16 0 all 2>&1 \
        | grep -vi "broken pipe\|Traceback\|File \"<stdin>\"" | head -34 | tee $OUT/profile.txt
    ;;
  sanitize)
    SAN=$(command -v compute-sanitizer || echo "$CUDA_HOME/bin/compute-sanitizer")
    "$SAN" --help | grep -B1 -A8 -E "kernel-name" | head -40
    el "racecheck plan and LinearCrossEntropyBlocksGpuTest, ${SAN_ARGS:=--kernel-name-exclude kns=nvjet}"
    SAN_ARGS="$SAN_ARGS" PARALLEL=1 PART_LIMIT=$(cap 420) bash bench/src/main/sh/sanitize.sh racecheck plan 're:.*LinearCrossEntropyBlocksGpuTest' 2>&1 | tail -4
    ;;
esac
el done
