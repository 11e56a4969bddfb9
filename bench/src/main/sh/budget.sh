# Sourced by the budgeted measurement scripts (open-measurements.sh, issue14-rows.sh): BUDGET seconds (default 560)
# from now; left (seconds left), el MESSAGE (a line stamped with the seconds spent), cap WANT (WANT, or what is left).
B=${BUDGET:-560}
t0=$(date +%s)
left() { echo $(( B - ($(date +%s) - t0) )); }
el() { echo "[$(( $(date +%s) - t0 )) s] $*"; }
cap() { local want=$1 l; l=$(left); [ $l -lt $want ] && echo $l || echo $want; }
