#!/usr/bin/env bash
# On the GPU machine, with the plain device bundle in .device, bounded by BUDGET seconds (default 560; outputs in
# $OUT): the eighteenth session's call. The GPU suite as it defaults (wgmma + TMA, dK/dV's groups apart, the NCCL
# stage 2 test), the 8K row with HF's anchor, then the dK/dV head split against one block per key/value head
# (-Djtune.cuda.dkvSplitUntil) at 8K, 16K and 32K causal, kernels alone, then the 32K trainer row without the split
# (its fp32 shares are the step's peak), then the trainer A/B of dK/dV's ping-pong if time is left.
# Usage: [BUDGET=560] bash bench/src/main/sh/session18.sh
set -u
. .device/env
OUT=${OUT:-/tmp/session18}; mkdir -p $OUT
BUDGET=${BUDGET:-560}
. bench/src/main/sh/budget.sh
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
el "GPU suite as it defaults"
junit 290 suite "" --exclude-classname '.*ImageLoraGpuTest'
el "270M QLoRA r16 8K with HF"
[ $(left) -gt 100 ] && timeout $(cap 95) bash bench/src/main/sh/end-to-end.sh gemma-3-270m qlora16 8192 220 2>&1 | grep -E "steady|device peak |tok_s" | tee $OUT/row-8k.txt
el "dK/dV: heads split (default) or one block per kv head (dkvSplitUntil=1), kernels alone, causal"
for t in 8192 16384 32768; do
  for until in default 1; do
    [ $(left) -gt 60 ] || break
    o=""; [ $until = 1 ] && o="-Djtune.cuda.dkvSplitUntil=1"
    echo "split=$until T=$t: $(timeout 40 $JAVA $JOPTS $o -cp "$CP" dev.jtune.bench.AttentionMemory $t 0 1 2>&1 | grep -E 'fused kernels|peak allocated' | tr '\n' ' ')"
  done
done | tee $OUT/split.txt
el "270M QLoRA r16 32K, attention kept, dK/dV unsplit from 16K"
[ $(left) -gt 50 ] && SKIP_HF=1 EXTRA_JOPTS="-Djtune.cuda.dkvSplitUntil=16384" timeout $(cap 70) bash bench/src/main/sh/end-to-end.sh gemma-3-270m qlora16 32768 100 20 2>&1 \
    | grep -E "steady|device peak " | tee $OUT/row-32k.txt
el "trainer A/B: dK/dV in lockstep (A) or apart (B, the default)"
[ $(left) -gt 70 ] && A_JOPTS="-Djtune.cuda.wgmmaPingPong=none" timeout $(left) bash bench/src/main/sh/ab-end-to-end.sh 2 30 .device/lib/jtune.jar 2>&1 \
    | tail -4 | tee $OUT/ab-pingpong.txt
el done
