#!/usr/bin/env bash
# On the GPU machine, with the device bundle in .device: the open measurements of issues 12-14 in one call, in
# priority order, each piece bounded by what is left of BUDGET seconds (default 560; outputs in $OUT): the GPU suite,
# streamed offload speed (device / offload / offload8), 4B QLoRA r16 at 32K planned under 8 GiB, 270M QLoRA with and
# without activation offload, 4B full fine-tune planned under 16GB beside HF.
# Usage: [BUDGET=560] [SKIP_TESTS=1] bash bench/src/main/sh/open-measurements.sh
set -u
OUT=${OUT:-/tmp/open-measurements}; mkdir -p $OUT
. bench/src/main/sh/budget.sh
el "gpu tests"
[ "${SKIP_TESTS:-0}" = 1 ] || timeout $(cap 250) bash .device/run-tests --include-tag gpu --details=tree > $OUT/gpu-tests.txt 2>&1; echo rc=$? >> $OUT/gpu-tests.txt
tail -22 $OUT/gpu-tests.txt; grep -E "\[X\]" $OUT/gpu-tests.txt | head -20
el "streaming"
[ $(left) -gt 40 ] && EXTRA_JOPTS=-Djtune.offload.timing=true SKIP_HF=1 timeout $(cap 130) bash bench/src/main/sh/full-finetune.sh gemma-3-270m 6 "device offload offload8" > $OUT/stream.txt 2>&1
cut -c1-220 $OUT/stream.txt | grep -v "^offload step [1-4]:"
el "4B QLoRA 32K planned"
[ $(left) -gt 60 ] && timeout $(cap 130) bash bench/src/main/sh/qlora-offload.sh gemma-3-4b-it 3 planned 32768 > $OUT/qlora4b.txt 2>&1; cut -c1-300 $OUT/qlora4b.txt
el "270M QLoRA activations"
[ $(left) -gt 40 ] && timeout $(cap 70) bash bench/src/main/sh/qlora-offload.sh gemma-3-270m 10 "none activations" > $OUT/qlora270.txt 2>&1; cut -c1-220 $OUT/qlora270.txt
el "4B full planned 16GB + HF ($(left) s left)"
[ $(left) -gt 60 ] && MAX_MEMORY=16GB HF_MODEL=gemma-3-4b timeout $(left) bash bench/src/main/sh/full-finetune.sh gemma-3-4b-it 3 planned > $OUT/full4b.txt 2>&1; cut -c1-300 $OUT/full4b.txt 2>/dev/null
el "done"
