#!/usr/bin/env bash
# On the GPU machine, with the device bundle in .device: compute-sanitizer over the GPU test suite, memcheck then
# racecheck, with the uncached allocator (JTUNE_ALLOCATOR=uncached: every tensor its own cuMemAlloc of exactly its
# bytes, so an access past a tensor's end is outside any allocation instead of inside a pooled block). The suite runs
# in parts (test class patterns) so that one part stays under the 10-minute command limit; each part is cut at
# PART_LIMIT seconds (default 540) and says so. compute-sanitizer needs a Firecracker machine (nvidia-h100-x1); gVisor
# refuses the device. Per part, the sanitizer's log and the tests' output go to $OUT (default /tmp/sanitize), and one
# summary line per part and tool to $OUT/sanitize-summary.txt and stdout. Exit status 0 only when every part ran
# clean: no sanitizer error, no failed test, not cut.
# Parts run one after another, or all at once with PARALLEL=1 (each its own sanitizer and JVM: the parts' host work,
# JVM start and kernel compilation overlap; their summary lines then come in the order they finish).
# Usage: bash bench/src/main/sh/sanitize.sh [memcheck|racecheck|both] [part ...]   (default: both, every part)
#        bash bench/src/main/sh/sanitize.sh list                                     (the parts and their patterns)
# A part is a name from the list, re:REGEX (a class-name pattern of its own, to split a part that runs too long), or
# m:REGEX (a method-name pattern, fully qualified: m:.*LinearCrossEntropyBlocksGpuTest#sliced.*, for one slow method).
# SAN_ARGS adds options to the sanitizer's command line (a kernel filter such as SAN_ARGS='--kernel-name kns=flash_').
set -u
. .device/env
# JUnit console class-name patterns (regexes over fully qualified names); "rest" runs every GPU test class that no
# other part names, so a new GPU test is never left out
declare -A PARTS=(
  [bindings]='dev\.jtune\.cuda\..*'
  [ops]='.*\.(CudaParityTest|CudaNf4Test|CudaMemoryGpuTest|KernelContractGpuTest)'
  [fused]='.*\.(CudaFusedParityTest|CudaOpsBackwardParityTest)'
  [flash]='.*\.CudaFlashAttentionTest'
  [packed]='.*\.CudaPackedAttentionTest'
  [wgmma]='.*\.(FlashWgmmaGpuTest|WgmmaProbeGpuTest)'
  [training]='.*\.CudaTrainingTest'
  [gemma]='.*\.(Gemma3GoldenGpuTest|SafeTensorsCudaTest)'
  [vision]='.*\.Gemma3MultimodalGoldenGpuTest'
  [lora]='.*\.LoraGoldenGpuTest'
  [generation]='.*\.LoraGenerationGpuTest'
  [optim]='.*\.(CudaAdamW8bitTest|CudaFlatOptimTest)'
  [offload]='.*\.(HostOffloadAdamWGpuTest|HostMappedGpuTest|HostActivationStoreGpuTest|Gemma3WeightOffloadGpuTest)'
  [plan]='.*\.(MetaMatchesCudaGpuTest|PlanMatchesCudaGpuTest|RunPlanGpuTest)'
)
ORDER=(bindings ops fused flash packed wgmma training gemma vision lora generation optim offload plan rest)
named=$(IFS='|'; echo "${PARTS[*]}")
if [ "${1:-}" = list ]; then
  for p in "${ORDER[@]}"; do echo "$p: ${PARTS[$p]:-every other GPU test class (not $named)}"; done
  exit 0
fi
tools=${1:-both}; shift || true
case "$tools" in memcheck|racecheck) ;; both) tools="memcheck racecheck" ;; *) echo "sanitize.sh: unknown tool $tools" >&2; exit 2 ;; esac
parts=("$@"); [ ${#parts[@]} -eq 0 ] && parts=("${ORDER[@]}")
for p in "${parts[@]}"; do
  [ "$p" = rest ] || [ "${p#re:}" != "$p" ] || [ "${p#m:}" != "$p" ] || [ -n "${PARTS[$p]:-}" ] || { echo "sanitize.sh: unknown part $p (bash $0 list)" >&2; exit 2; }
done
SAN=$(command -v compute-sanitizer || echo "$CUDA_HOME/bin/compute-sanitizer")
out=${OUT:-/tmp/sanitize}; mkdir -p "$out"
limit=${PART_LIMIT:-540}
export JTUNE_ALLOCATOR=uncached
# a JVM that dies under the sanitizer leaves its fatal-error log beside the part's logs (the plan part's JVM ended
# without any output twice under racecheck in the tenth session; its exit status is now printed in the part's tests file)
export JAVA_TOOL_OPTIONS="${JAVA_TOOL_OPTIONS:-} -XX:ErrorFile=$out/hs_err_pid%p.log"
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
"$SAN" --version | tail -1
# one part under one tool: its summary line, and exit status 0 only when it ran clean
run_part() {
  local tool=$1 p=$2 select extra name log tests start rc secs found ok failed note ours theirs mine line clean=0
  # --report-api-errors no: tests provoke CUDA errors on purpose (out of memory, the end of cuFuncGetParamInfo's list);
  # --padding: red zones after each allocation, so a write just past one tensor is not taken as one into its neighbour
  extra=(); [ "$tool" = memcheck ] && extra=(--padding 256)
  # racecheck reports cuBLAS's Hopper GEMMs (nvjet_*: TMA and mbarrier synchronisation) as hazards, 192 per launch
  # on an H100; they are NVIDIA's. Excluding them (--kernel-name-exclude kns=nvjet) made the sanitizer fail ("failed
  # to handle a hardware exception") and cuBLASLt return CUBLAS_STATUS_INTERNAL_ERROR, so every kernel is checked
  # and findings in nvjet_* are read as cuBLAS's.
  case "$p" in
    rest) select=(--include-classname '.*' --exclude-classname "$named") ;;
    re:*) select=(--include-classname "${p#re:}") ;;
    m:*) select=(--include-classname '.*' --include-methodname "${p#m:}") ;;
    *) select=(--include-classname "${PARTS[$p]}") ;;
  esac
  name=$(printf '%s' "$p" | tr -c 'A-Za-z0-9_-' '_')
  log="$out/$tool-$name.log"; tests="$out/$tool-$name.tests.txt"
  start=$(date +%s)
  # the host's lowest available memory while the part runs: racecheck grew the plan part's JVM past 128 GiB (eleventh
  # session), and the kernel's OOM killer ends such a part with SIGKILL and no output
  local mem="$out/$tool-$name.memavail"
  (while :; do awk '/MemAvailable/ {print $2}' /proc/meminfo; sleep 2; done) > "$mem" 2>/dev/null &
  local sampler=$!
  # --details=tree prints each test as it ends, so a part that is cut still shows how far it got; it goes before the
  # filters: the console launcher dropped --include-tag gpu when another option came between it and --include-classname
  # (every cpu test of the part's classes then ran under the sanitizer too, and "rest" ran the whole cpu suite)
  timeout --kill-after=20 "$limit" "$SAN" --tool "$tool" --target-processes all --launch-timeout 0 --report-api-errors no \
      --error-exitcode 86 "${extra[@]}" ${SAN_ARGS:-} --log-file "$log" \
      bash -c 'bash .device/run-tests "$@"; s=$?; echo "[the tests'"'"' JVM exited with status $s]"; exit $s' run-tests \
      --details=tree --include-tag gpu "${select[@]}" > "$tests" 2>&1
  rc=$?
  secs=$(( $(date +%s) - start ))
  kill "$sampler" 2>/dev/null; wait "$sampler" 2>/dev/null
  local lowest; lowest=$(sort -n "$mem" 2>/dev/null | head -1)
  found=$(grep -E "^=+ (ERROR SUMMARY|RACECHECK SUMMARY)" "$log" 2>/dev/null | tail -1 | sed 's/^=* //')
  ok=$(grep -oE "[0-9]+ tests successful" "$tests" | tail -1)
  failed=$(grep -oE "[0-9]+ tests failed" "$tests" | tail -1)
  note=""
  if [ "$rc" = 124 ] || { [ "$rc" = 137 ] && [ "$secs" -ge "$limit" ]; }; then
    note=" CUT at ${limit} s"
  elif [ "$rc" = 137 ]; then # SIGKILL before the limit: not ours
    note=" KILLED after ${secs} s (SIGKILL; $(dmesg 2>/dev/null | grep -c 'Out of memory: Killed') OOM kills in dmesg)"
  fi
  [ -n "$lowest" ] && note="$note | host memory available at least $(( lowest / 1048576 )) GiB"
  # racecheck: hazards by kernel, cuBLAS's nvjet_* apart (see above); a part is clean when none is in another kernel
  ours=""
  if [ "$tool" = racecheck ]; then
    theirs=$(grep -cE "access at nvjet_" "$log" 2>/dev/null); mine=$(grep -E "access at " "$log" 2>/dev/null | grep -vc "access at nvjet_")
    ours=" | racecheck reports naming jtune's kernels: ${mine:-0}, cuBLAS's nvjet_*: ${theirs:-0}"
  fi
  line="$tool $p: ${found:-no sanitizer summary}$ours | ${ok:-? tests successful}, ${failed:-? tests failed} | ${secs} s | exit $rc$note"
  echo "$line" | tee -a "$out/sanitize-summary.txt"
  case "$found" in
    "ERROR SUMMARY: 0 errors"*|"RACECHECK SUMMARY: 0 hazards"*) ;;
    "RACECHECK SUMMARY:"*) [ "${mine:-1}" = 0 ] || clean=1 ;; # only cuBLAS's hazards: clean for jtune's kernels
    *) clean=1 ;;
  esac
  [ "$rc" = 0 ] && [ "${failed:-x}" = "0 tests failed" ] || clean=1
  return $clean
}

status=0
for tool in $tools; do
  pids=()
  for p in "${parts[@]}"; do
    if [ "${PARALLEL:-0}" = 1 ]; then
      run_part "$tool" "$p" & pids+=($!)
    else
      run_part "$tool" "$p" || status=1
    fi
  done
  for pid in "${pids[@]}"; do wait "$pid" || status=1; done
done
exit $status
