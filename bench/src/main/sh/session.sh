# Sourced first by the session scripts (sessionNN*.sh), on the GPU machine with the device bundle in .device: the
# bundle's environment, OUT (default /tmp/<script's name>) made, budget.sh's helpers over BUDGET seconds (default 560;
# a script sets its own before sourcing this), and the GPU's name and driver as the first line of the output.
set -u
. .device/env
OUT=${OUT:-/tmp/$(basename "$0" .sh)}; mkdir -p "$OUT"
BUDGET=${BUDGET:-560}
. bench/src/main/sh/budget.sh
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
# alternate_rates OPTIONS RESERVE LIMIT [SEQ=8192 STEPS=100 WARM=20]: the 270M QLoRA r16 trainer's steady rate and device
# peak (end-to-end.sh, no HF) with the defaults, then with the JVM OPTIONS, twice each, alternated; each run starts only
# while more than RESERVE seconds are left and is cut at LIMIT.
alternate_rates() {
  local x=$1 reserve=$2 limit=$3 seq=${4:-8192} steps=${5:-100} warm=${6:-20} o
  for o in "" "$x" "" "$x"; do
    [ $(left) -gt $reserve ] && echo -n "${o:-defaults} " && EXTRA_JOPTS="$o" SKIP_HF=1 timeout $(cap $limit) bash bench/src/main/sh/end-to-end.sh \
        gemma-3-270m qlora16 $seq $steps $warm 2>&1 | grep -E "steady|device peak  "
  done
}
