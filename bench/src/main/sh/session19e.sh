#!/usr/bin/env bash
# On the GPU machine, with the plain device bundle in .device: the fused q/k norm and RoPE's GPU parity test alone
# (its first run freed a gradient it then read), printing how many elements differ from the two ops per dtype.
# Usage: bash bench/src/main/sh/session19e.sh
set -u
. .device/env
OUT=${OUT:-/tmp/session19e}; mkdir -p $OUT
BUDGET=${BUDGET:-120}
. bench/src/main/sh/budget.sh
junit 110 parity "" --include-classname '.*CudaFusedParityTest' --include-methodname '.*rmsNormRope.*'
grep -E "fused against unfused" $OUT/parity.txt | head -24
