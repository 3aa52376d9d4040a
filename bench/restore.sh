#!/usr/bin/env bash
# Restoration benchmark in the lab: N mappings held through PCP, the gateway restarted with its state
# flushed, restoration measured by bench_restore and by the gateway's rules. Root.
# Usage: bench/restore.sh [COUNT] [PACE_MS (0: adaptive window)] [LOSS_PERCENT]
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${PCPMAP_BUILD_DIR:-$PWD/build}
N=${1:-1000}
PACE=${2:-0}
LOSS=${3:-0}
export PCPMAP_LAB=pmrestore PCPMAP_BUILD_DIR=$BUILD
LAB=tests/interop/lab.sh
OUT=$(mktemp)
trap '$LAB down >/dev/null 2>&1 || true; rm -f "$OUT"' EXIT
$LAB up >/dev/null
$LAB cli "$BUILD/bench/bench_restore" "$N" "$PACE" 192.168.77.1 >"$OUT" 2>&1 &
pid=$!
for _ in $(seq 3000); do
	grep -q '^ready' "$OUT" && break
	kill -0 $pid 2>/dev/null || break
	sleep 0.1
done
grep -q '^ready' "$OUT" || { cat "$OUT"; exit 1; }
rules_before=$($LAB rules | grep -c 'dnat ip to' || true)
sleep 3 # let the epoch grow past the RFC 6887 8.5 slack
[[ $LOSS -gt 0 ]] && $LAB netem "$LOSS" out
t0=$(date +%s%N)
$LAB gw-restart --flush
t_rules=
for _ in $(seq 6000); do
	if [[ -z $t_rules ]] && [[ $($LAB rules | grep -c 'dnat ip to' || true) -ge $N ]]; then
		t_rules=$((($(date +%s%N) - t0) / 1000000))
	fi
	grep -q '^restored' "$OUT" && [[ -n $t_rules ]] && break
	kill -0 $pid 2>/dev/null || break
	sleep 0.05
done
[[ $LOSS -gt 0 ]] && $LAB netem off
rules_after=$($LAB rules | grep -c 'dnat ip to' || true)
wait $pid || true
grep -v '^restored' "$OUT"
echo "gateway DNAT rules: $rules_before before the restart, $rules_after after restoration"
echo "gateway held all $N again ${t_rules:-never} ms after the restart began (loss ${LOSS}%)"
