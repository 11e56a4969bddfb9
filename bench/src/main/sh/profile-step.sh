#!/usr/bin/env bash
# On the GPU machine, with the device bundle in .device: every kernel of Gemma 3 training steps under Nsight Compute
# (duration only, clocks left alone), summed per kernel name, largest first. The set-up's kernels (the random model's
# initialisation, quantization) are left out: a first run with 0 steps counts them, the second skips that many
# launches (SETUP=include keeps them, as before the fifteenth session). Kernel time against the step's wall time tells
# launch-bound from kernel-bound. Usage: [EXTRA_JOPTS=...] bash bench/src/main/sh/profile-step.sh [GemmaStep args]
set -u
. .device/env
JOPTS="$JOPTS ${EXTRA_JOPTS:-}"  # e.g. EXTRA_JOPTS=-Djtune.fusedProjections=true
set -- ${*:-gemma-3-270m 8192 true 1 qlora16}
out=${OUT:-/tmp}
summary() { # csv -> "launches" on the first line, then the per-kernel table
  python3 - "$1" <<'PY'
import csv, sys, collections
rows = [r for r in csv.reader(l for l in open(sys.argv[1]) if l.startswith('"'))]
head, body = (rows[0], rows[1:]) if rows else ([], [])
ix = {n: i for i, n in enumerate(head)}
total = collections.Counter(); count = collections.Counter()
for r in body:
    if r[ix["Metric Name"]] != "gpu__time_duration.sum":
        continue
    unit = r[ix["Metric Unit"]]; avg = float(r[ix["Average"]].replace(",", ""))
    scale = {"ns": 1e-6, "nsecond": 1e-6, "us": 1e-3, "usecond": 1e-3, "ms": 1.0, "msecond": 1.0, "s": 1e3, "second": 1e3}[unit]
    n = int(r[ix["Invocations"]].replace(",", "")); name = r[ix["Kernel Name"]][:90]
    total[name] += avg * scale * n; count[name] += n
print(sum(count.values()))
print(f"kernels: {sum(count.values())} launches, {sum(total.values()):.1f} ms of kernel time")
for name, ms in total.most_common(30):
    print(f"{ms:9.2f} ms {count[name]:6d}x  {name}")
PY
}
skip=0
if [ "${SETUP:-skip}" != include ]; then
  ncu --clock-control none --metrics gpu__time_duration.sum --print-summary per-kernel --csv \
      $JAVA $JOPTS -cp "$CP" dev.jtune.bench.GemmaStep "$1" "$2" "$3" 0 "${@:5}" > "$out/ncu-setup.csv" 2> "$out/ncu-setup.err"
  skip=$(summary "$out/ncu-setup.csv" | head -1)
  echo "set-up: $skip launches, skipped"
fi
ncu --clock-control none --metrics gpu__time_duration.sum --print-summary per-kernel --csv --launch-skip ${skip:-0} \
    $JAVA $JOPTS -cp "$CP" dev.jtune.bench.GemmaStep "$@" > "$out/ncu-step.csv" 2> "$out/ncu-step.err"
echo "ncu exit $?"; grep -v '^"' "$out/ncu-step.csv" | grep -v "^==PROF==" | tail -3
summary "$out/ncu-step.csv" | tail -n +2
