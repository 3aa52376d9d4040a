#!/usr/bin/env bash
# Restoration benchmark in the lab: N mappings held through PCP, the gateway restarted with its state
# flushed, restoration measured by bench_restore and by the gateway's rules. Then, in the same run and
# under the same loss, the gateway alone: after another flushed restart, bench_gwraw sends the same number
# of MAP requests from a raw socket as fast as the gateway answers, up to 64 in flight (pcpmap's ceiling:
# miniupnpd handles one request at a time, and under loss each lost answer holds a slot for PCP's 3 s
# resend, which with 4 slots made the raw sender a poor floor), and the script prints pcpmap's time as a
# ratio to that floor. Root.
# Usage: bench/restore.sh [COUNT] [PACE_MS (0: adaptive window)] [LOSS_PERCENT]
# PCPMAP_LAB_TAG keeps this lab apart from others running on the machine.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${PCPMAP_BUILD_DIR:-$PWD/build}
N=${1:-1000}
PACE=${2:-0}
LOSS=${3:-0}
export PCPMAP_LAB=${PCPMAP_LAB_TAG:-}pmrestore PCPMAP_BUILD_DIR=$BUILD
# miniupnpd as routers run it (doc/LAB.md): with -d its debug log of every rule, written for every request,
# would be most of what the gateway spends (PCPMAP_LAB_GW_QUIET=0 measures that lab instead).
export PCPMAP_LAB_GW_QUIET=${PCPMAP_LAB_GW_QUIET:-1}
LAB=tests/interop/lab.sh
OUT=$(mktemp)
trap '$LAB down >/dev/null 2>&1 || true; rm -f "$OUT" "$OUT.pcpmap"' EXIT
$LAB up >/dev/null
# The peer tools never restore anything: the unit beside pcpmap's figure is one request of theirs, measured
# here in the same lab (the whole natpmpc -a / upnpc -i -a process).
peers=
if command -v natpmpc >/dev/null && command -v upnpc >/dev/null; then
	peers=$($LAB cli "$BUILD/bench/bench_peers" 192.168.77.1 3 "$(command -v natpmpc)" "$(command -v upnpc)")
fi
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
# The gateway's rules are listed every 0.5 s, not more often: listing 1,000 rules takes the gateway's nftables
# lock and CPU from miniupnpd, which slowed the restoration measured (the same listing runs beside the
# gateway alone below, so both runs share that cost).
for _ in $(seq 1200); do
	if [[ -z $t_rules ]] && [[ $($LAB rules | grep -c 'dnat ip to' || true) -ge $N ]]; then
		t_rules=$((($(date +%s%N) - t0) / 1000000))
	fi
	grep -q '^restored' "$OUT" && [[ -n $t_rules ]] && break
	kill -0 $pid 2>/dev/null || break
	sleep 0.5
done
[[ $LOSS -gt 0 ]] && $LAB netem off
rules_after=$($LAB rules | grep -c 'dnat ip to' || true)
wait $pid || true
grep -v '^restored' "$OUT"
cp "$OUT" "$OUT.pcpmap"
echo "gateway DNAT rules: $rules_before before the restart, $rules_after after restoration"
echo "gateway held all $N again ${t_rules:-never} ms after the restart began (loss ${LOSS}%)"

# The gateway alone, from the same empty state and under the same loss.
$LAB gw-restart --flush
[[ $LOSS -gt 0 ]] && $LAB netem "$LOSS" out
(while :; do
	$LAB rules >/dev/null 2>&1 || true
	sleep 0.5
done) &
lister=$!
$LAB cli "$BUILD/bench/bench_gwraw" 192.168.77.1 "$N" 64 >"$OUT" 2>&1 || { kill $lister; cat "$OUT"; exit 1; }
kill $lister
[[ $LOSS -gt 0 ]] && $LAB netem off
cat "$OUT"
raw_ms=$(sed -n 's/^gateway alone: [0-9]* MAP requests answered in \([0-9.]*\) ms.*/\1/p' "$OUT")
if [[ -n $t_rules && -n $raw_ms ]]; then
	awk -v p="$t_rules" -v r="$raw_ms" -v n="$N" -v l="$LOSS" 'BEGIN {
		printf "restoration of %d (loss %d%%): pcpmap %.1f s, the gateway alone %.1f s: %.2fx the gateway'"'"'s own minimum\n", n, l, p / 1000, r / 1000, p / r }'
fi
span_ms=$(sed -n 's/^first to last back *\([0-9.]*\) ms.*/\1/p' "$OUT.pcpmap")
if [[ -n $span_ms && -n $raw_ms ]]; then
	awk -v p="$span_ms" -v r="$raw_ms" -v n="$N" 'BEGIN {
		printf "re-creation of %d once started (after the random 0-5 s delay RFC 6887 14.1.1 asks after an announcement): pcpmap %.1f s, %.2fx the gateway alone\n", n, p / 1000, p / r }'
fi
if [[ -n $t_rules && -n $peers ]]; then
	echo "$peers"
	nw=$(sed -n 's/^peer natpmpc .*wall_ms=\([0-9.]*\).*/\1/p' <<<"$peers")
	uw=$(sed -n 's/^peer upnpc .*wall_ms=\([0-9.]*\).*/\1/p' <<<"$peers")
	awk -v p="$t_rules" -v n="$N" -v nw="$nw" -v uw="$uw" 'BEGIN {
		printf "restoration per mapping: %.2f ms = %.2fx one natpmpc -a (%.2f ms), %.4fx one upnpc -a (%.1f ms); the peers themselves never restore\n", p / n, p / n / nw, nw, p / n / uw, uw }'
fi
