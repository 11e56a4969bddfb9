# Sourced first by the session scripts (sessionNN*.sh), on the GPU machine with the device bundle in .device: the
# bundle's environment, OUT (default /tmp/<script's name>) made, budget.sh's helpers over BUDGET seconds (default 560;
# a script sets its own before sourcing this), and the GPU's name and driver as the first line of the output.
set -u
. .device/env
OUT=${OUT:-/tmp/$(basename "$0" .sh)}; mkdir -p "$OUT"
BUDGET=${BUDGET:-560}
. bench/src/main/sh/budget.sh
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
