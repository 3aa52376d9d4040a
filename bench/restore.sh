#!/usr/bin/env bash
# Restoration benchmark in the lab: N mappings held through PCP, the gateway restarted with its state
# flushed, restoration measured by bench_restore. Root. Usage: bench/restore.sh [COUNT] [PACE_MS]
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${PCPMAP_BUILD_DIR:-$PWD/build}
N=${1:-1000}
PACE=${2:-50}
export PCPMAP_LAB=pmrestore PCPMAP_BUILD_DIR=$BUILD
LAB=tests/interop/lab.sh
OUT=$(mktemp)
trap '$LAB down >/dev/null 2>&1 || true; rm -f "$OUT"' EXIT
$LAB up >/dev/null
$LAB cli "$BUILD/bench/bench_restore" "$N" "$PACE" 192.168.77.1 >"$OUT" 2>&1 &
pid=$!
for _ in $(seq 600); do
	grep -q '^ready' "$OUT" && break
	kill -0 $pid 2>/dev/null || break
	sleep 0.1
done
grep -q '^ready' "$OUT" || { cat "$OUT"; exit 1; }
rules_before=$($LAB rules | grep -c 'dnat ip to' || true)
sleep 3 # let the epoch grow past the RFC 6887 8.5 slack
$LAB gw-restart --flush
for _ in $(seq 3000); do
	grep -q '^restored' "$OUT" && break
	kill -0 $pid 2>/dev/null || break
	sleep 0.1
done
rules_after=$($LAB rules | grep -c 'dnat ip to' || true)
wait $pid || true
grep -v '^restored' "$OUT"
echo "gateway DNAT rules: $rules_before before the restart, $rules_after after restoration"
