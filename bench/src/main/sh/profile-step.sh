#!/usr/bin/env bash
# On the GPU machine, with the device bundle in .device: every kernel of one Gemma 3 training step under Nsight
# Compute (duration only, clocks left alone), summed per kernel name, largest first. Kernel time against the
# step's wall time tells launch-bound from kernel-bound. Usage: bash bench/src/main/sh/profile-step.sh [GemmaStep args]
set -u
. .device/env
JOPTS="$JOPTS ${EXTRA_JOPTS:-}"  # e.g. EXTRA_JOPTS=-Djtune.fusedProjections=true
args=${*:-gemma-3-270m 8192 true 1 qlora16}
out=${OUT:-/tmp}
ncu --clock-control none --metrics gpu__time_duration.sum --print-summary per-kernel --csv \
    $JAVA $JOPTS -cp "$CP" dev.jtune.bench.GemmaStep $args > "$out/ncu-step.csv" 2> "$out/ncu-step.err"
echo "ncu exit $?"; grep -v '^"' "$out/ncu-step.csv" | grep -v "^==PROF==" | tail -3
python3 - "$out/ncu-step.csv" <<'PY'
import csv, sys, collections
rows = [r for r in csv.reader(l for l in open(sys.argv[1]) if l.startswith('"'))]
head, body = rows[0], rows[1:]
ix = {n: i for i, n in enumerate(head)}
total = collections.Counter(); count = collections.Counter()
for r in body:
    if r[ix["Metric Name"]] != "gpu__time_duration.sum":
        continue
    unit = r[ix["Metric Unit"]]; avg = float(r[ix["Average"]].replace(",", ""))
    scale = {"ns": 1e-6, "nsecond": 1e-6, "us": 1e-3, "usecond": 1e-3, "ms": 1.0, "msecond": 1.0, "s": 1e3, "second": 1e3}[unit]
    n = int(r[ix["Invocations"]].replace(",", "")); name = r[ix["Kernel Name"]][:90]
    total[name] += avg * scale * n; count[name] += n
print(f"kernels: {sum(count.values())} launches, {sum(total.values()):.1f} ms of kernel time")
for name, ms in total.most_common(30):
    print(f"{ms:9.2f} ms {count[name]:6d}x  {name}")
PY
