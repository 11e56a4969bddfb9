#!/usr/bin/env bash
# On the GPU machine: the fused attention kernels alone (AttentionMemory's event timings), build A against build B,
# alternating in one call so both see the same GPU and clocks. A is another commit's trainer jar (default
# .device/before/jtune.jar, from `BEFORE=<rev> bundle.sh`), put first on the class path so its engine classes and its
# kernels/*.cu win; B is the bundle's own. Prints each run's "fused kernels" line.
# Usage: bash bench/src/main/sh/attention-ab.sh [pairs=2] [sizes as "T:window" ...]
set -u
. .device/env
pairs=${1:-2}; shift || true
sizes=${*:-8192:0 8192:512 32768:0}
a=.device/before/jtune.jar
for s in $sizes; do
  for i in $(seq 1 $pairs); do
    for side in A B; do
      cp=$CP; [ $side = A ] && cp="$a:$CP"
      echo -n "$side "; $JAVA $JOPTS -cp "$cp" dev.jtune.bench.AttentionMemory ${s%:*} ${s#*:} 1 2>&1 | grep 'fused kernels' || echo "T=${s%:*} window=${s#*:} failed"
    done
  done
done
