#!/usr/bin/env bash
# Cold and warm time to a mapping for each gateway mode: the whole `pcpmap map --once` process, cold
# (--no-cache: the gateway probed from scratch) and warm (the gateway cache of the run before), beside
# natpmpc and upnpc doing the same job in the same run, as ratios. In the lab (root).
# Usage: bench/warm.sh [RUNS] (upnpc, which takes about 2 s a run, runs at most 3 times).
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${PCPMAP_BUILD_DIR:-$PWD/build}
RUNS=${1:-20}
export PCPMAP_LAB=${PCPMAP_LAB_TAG:-}pmwarm PCPMAP_BUILD_DIR=$BUILD
LAB=tests/interop/lab.sh
SPAWN=$BUILD/bench/bench_spawn
PM=${PCPMAP_BIN:-$BUILD/cli/pcpmap}
NOCACHE=--no-cache
# A pcpmap without the gateway cache (an older build, for a before/after table) is always cold.
"$PM" map --help 2>/dev/null | grep -q -- --no-cache || NOCACHE=
XDG=$(mktemp -d /tmp/pcpmap-bench-warm.XXXXXX)
export XDG_RUNTIME_DIR=$XDG
trap '$LAB down >/dev/null 2>&1 || true; rm -rf "$XDG"' EXIT

median() { # LABEL RUNS BASE CMD... -> prints bench_spawn's line, stores the median (ms) in M
	local line
	line=$($LAB cli "$SPAWN" "$@")
	echo "$line"
	M=$(awk '{for (i = 1; i < NF; i++) if ($i == "median") print $(i + 1)}' <<<"$line")
}

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }

mode() { # TITLE BASE NATPMP(yes/no) UPNP(yes/no) then lab setup commands
	local title=$1 base=$2 np=$3 up=$4 cold warm nat= upc= upu=
	shift 4
	echo "$title"
	$LAB up --natpmp "$np" --upnp "$up" >/dev/null
	for c in "$@"; do $LAB "$c" >/dev/null; done
	rm -rf "${XDG:?}"/pcpmap
	median "pcpmap map --once, cold" "$RUNS" "$base" "$PM" map tcp '{port}' --once $NOCACHE
	cold=$M
	$LAB cli "$PM" map tcp $((base + 99)) --once >/dev/null # the run that fills the cache
	median "pcpmap map --once, warm" "$RUNS" $((base + 100)) "$PM" map tcp '{port}' --once
	warm=$M
	if [[ $np == yes ]]; then
		median "natpmpc -a" "$RUNS" $((base + 200)) natpmpc -g 192.168.77.1 -a '{port}' '{port}' tcp 600
		nat=$M
	fi
	if [[ $up == yes ]] && command -v upnpc >/dev/null; then
		median "upnpc -i -a" $((RUNS < 3 ? RUNS : 3)) $((base + 300)) upnpc -i -a 192.168.77.2 '{port}' \
			'{port}' TCP
		upc=$M
		# upnpc told where the IGD is (no discovery): the floor a warm UPnP start is compared with.
		median "upnpc -u rootDesc -i -a" "$RUNS" $((base + 400)) upnpc -u http://192.168.77.1:5000/rootDesc.xml \
			-i -a 192.168.77.2 '{port}' '{port}' TCP
		upu=$M
	fi
	printf '  => cold %s ms, warm %s ms' "$cold" "$warm"
	[[ -z $nat ]] || printf ', warm/natpmpc %s, cold/natpmpc %s' "$(ratio "$warm" "$nat")" "$(ratio "$cold" "$nat")"
	[[ -z $upc ]] || printf ', warm/upnpc %s, cold/upnpc %s' "$(ratio "$warm" "$upc")" "$(ratio "$cold" "$upc")"
	[[ -z $upu ]] || printf ', warm/(upnpc -u) %s' "$(ratio "$warm" "$upu")"
	printf '\n'
}

mode "PCP (all protocols on)" 30000 yes yes
mode "NAT-PMP only (PCP dropped, UPnP off)" 31000 yes no gw-drop-pcp
mode "PCP dropped (NAT-PMP and UPnP answer)" 32000 yes yes gw-drop-pcp
mode "UPnP only (PCP and NAT-PMP port closed)" 33000 no yes
