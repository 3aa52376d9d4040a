#!/usr/bin/env bash
# pcpmapd under load: runs bench_daemon (the daemon holds N mappings against a fake PCP server on
# 127.0.0.1) once per count given, 10000 then 1000 by default; extra options go to bench_daemon
# (e.g. --idle-seconds 20). Prints one table per count, the shutdown last (its time, deletes answered, how
# many the daemon confirmed and how many records it kept). Shutdown alone:
# bench/daemon.sh 2000 -- --shutdown-only --delete-delay-ms 2 --check-shutdown 64
#   bench/daemon.sh [COUNT...] [-- BENCH_OPTIONS...]
#
# Beside each table, the same figures as ratios to the peer tools measured in the same run: natpmpc and
# upnpc cannot hold, renew or restore thousands of mappings, so the unit is what one request of theirs
# costs (the whole process: wall time, CPU time, peak resident memory), measured by bench_peers against
# the lab's miniupnpd before the daemon runs (root; the lab is taken down again so it does not share the
# CPU with the daemon). Without root or the tools, or with PCPMAP_BENCH_PEERS=0, the daemon's figures
# alone. PCPMAP_BENCH_PEER_RUNS sets the runs per tool (default 5); PCPMAP_LAB_TAG keeps the lab apart.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${PCPMAP_BUILD_DIR:-$PWD/build}
counts=()
while [[ $# -gt 0 && $1 != -- ]]; do
	counts+=("$1")
	shift
done
[[ ${1:-} == -- ]] && shift
[[ ${#counts[@]} -gt 0 ]] || counts=(10000 1000)

peers=
if [[ ${PCPMAP_BENCH_PEERS:-1} != 0 && $(id -u) -eq 0 ]] && command -v natpmpc >/dev/null &&
	command -v upnpc >/dev/null && command -v miniupnpd >/dev/null; then
	# miniupnpd as routers run it (doc/LAB.md): its debug log would be part of every request's cost.
	export PCPMAP_LAB=${PCPMAP_LAB_TAG:-}pmpeers PCPMAP_BUILD_DIR=$BUILD
	export PCPMAP_LAB_GW_QUIET=${PCPMAP_LAB_GW_QUIET:-1}
	trap 'tests/interop/lab.sh down >/dev/null 2>&1 || true' EXIT
	tests/interop/lab.sh up >/dev/null
	peers=$(tests/interop/lab.sh cli "$BUILD/bench/bench_peers" 192.168.77.1 "${PCPMAP_BENCH_PEER_RUNS:-5}" \
		"$(command -v natpmpc)" "$(command -v upnpc)")
	tests/interop/lab.sh down >/dev/null
	echo "$peers"
else
	echo "bench/daemon.sh: no peer tools measured (needs root, natpmpc, upnpc and miniupnpd): figures alone"
fi

peer() { # peer TOOL FIELD
	sed -n "s/^peer $1 .*$2=\([0-9.]*\).*/\1/p" <<<"$peers"
}

out=$(mktemp)
trap 'rm -f "$out"; tests/interop/lab.sh down >/dev/null 2>&1 || true' EXIT
for n in "${counts[@]}"; do
	"$BUILD/bench/bench_daemon" -n "$n" -d "$BUILD/daemon/pcpmapd" "$@" | tee "$out"
	[[ -n $peers ]] || continue
	mem=$(sed -n 's/^ *memory per mapping (VmRSS delta \/ N) *\([0-9.]*\) bytes.*/\1/p' "$out")
	cpu=$(sed -n 's/^ *daemon CPU per renewal *\([0-9.]*\) us.*/\1/p' "$out")
	create=$(sed -n 's/^ *create *[0-9.]* s (\([0-9.]*\) us per CREATE.*/\1/p' "$out")
	[[ -n $mem && -n $cpu && -n $create ]] || continue # --shutdown-only: no such figures
	awk -v n="$n" -v mem="$mem" -v cpu="$cpu" -v cr="$create" \
		-v nw="$(peer natpmpc wall_ms)" -v nc="$(peer natpmpc cpu_us)" -v nm="$(peer natpmpc maxrss_kb)" \
		-v uw="$(peer upnpc wall_ms)" -v uc="$(peer upnpc cpu_us)" -v um="$(peer upnpc maxrss_kb)" '
	function row(name, unit, mine, np, up) {
		printf "  %-28s %11.1f %-2s %12.0f %-2s %9.5f %12.0f %-2s %9.5f\n", name, mine, unit, np, unit,
			mine / np, up, unit, mine / up
	}
	BEGIN {
		printf "\npcpmapd at %d mappings beside one request of the peer tools (same run; they hold none)\n", n
		printf "  %-28s %14s %15s %9s %15s %9s\n", "figure", "pcpmapd", "natpmpc -a", "ratio", "upnpc -a",
			"ratio"
		row("memory per held mapping", "B", mem, nm * 1024, um * 1024)
		row("CPU per renewal", "us", cpu, nc, uc)
		row("creation, wall per mapping", "us", cr, nw * 1000, uw * 1000)
		print "  (peer columns: the whole process for one mapping: peak RSS, CPU time, wall time)"
	}'
done
