# Sourced by the budgeted measurement scripts (open-measurements.sh, issue14-rows.sh, ...): BUDGET seconds (default 560)
# from now; left (seconds left), el MESSAGE (a line stamped with the seconds spent), cap WANT (WANT, or what is left).
B=${BUDGET:-560}
t0=$(date +%s)
left() { echo $(( B - ($(date +%s) - t0) )); }
el() { echo "[$(( $(date +%s) - t0 )) s] $*"; }
cap() { local want=$1 l; l=$(left); [ $l -lt $want ] && echo $l || echo $want; }
# junit SECONDS LABEL JVM-OPTIONS JUNIT-ARGUMENTS...: the gpu-tagged tests (at most SECONDS, capped by what is left)
# into $OUT/LABEL.txt, then their summary and failures.
junit() {
  local secs=$1 label=$2 opts=$3; shift 3
  timeout $(cap $secs) $JAVA $JOPTS $opts -jar .device/junit-console.jar execute --class-path "$CP$TCP" --scan-class-path --disable-banner \
      --details=tree --details-theme=ascii --include-tag gpu "$@" > $OUT/$label.txt 2>&1
  grep -E "tests (successful|failed|found)" $OUT/$label.txt; grep -E "\[X\]" $OUT/$label.txt | head -12
}
