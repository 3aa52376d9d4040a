#!/usr/bin/env bash
# Cold and warm time to a mapping for each gateway mode: the whole `pcpmap map --once` process, cold
# (--no-cache: the gateway probed from scratch) and warm (the gateway cache of the run before), beside
# natpmpc and upnpc doing the same job. The commands run interleaved (bench_pair), and each one's ratio to the
# reference (natpmpc where the gateway speaks NAT-PMP, else upnpc told the IGD's URL) is taken run by run, so a
# noisy machine moves both sides alike. In the lab (root).
# Usage: bench/warm.sh [RUNS]. PCPMAP_BEFORE=PATH adds another pcpmap build (one without the cache is always
# cold) to the same runs, for a before/after table. upnpc with discovery (about 2 s a run) runs 3 times.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${PCPMAP_BUILD_DIR:-$PWD/build}
RUNS=${1:-20}
export PCPMAP_LAB=${PCPMAP_LAB_TAG:-}pmwarm PCPMAP_BUILD_DIR=$BUILD
LAB=tests/interop/lab.sh
PAIR=$BUILD/bench/bench_pair
SPAWN=$BUILD/bench/bench_spawn
PM=${PCPMAP_BIN:-$BUILD/cli/pcpmap}
XDG=$(mktemp -d /tmp/pcpmap-bench-warm.XXXXXX)
export XDG_RUNTIME_DIR=$XDG
trap '$LAB down >/dev/null 2>&1 || true; rm -rf "$XDG"' EXIT

mode() { # TITLE BASE NATPMP(yes/no) UPNP(yes/no) then lab setup commands
	local title=$1 base=$2 np=$3 up=$4 cmds=()
	shift 4
	echo "$title"
	$LAB up --natpmp "$np" --upnp "$up" >/dev/null
	for c in "$@"; do $LAB "$c" >/dev/null; done
	rm -rf "${XDG:?}"/pcpmap
	$LAB cli "$PM" map tcp $((base - 1)) --once >/dev/null # the run that fills the cache
	if [[ -n ${PCPMAP_BEFORE:-} ]]; then
		cmds+=("before: pcpmap map --once" "$PCPMAP_BEFORE" map tcp '{port}' --once ,)
	fi
	cmds+=("pcpmap map --once, cold" "$PM" map tcp '{port}' --once --no-cache ,)
	cmds+=("pcpmap map --once, warm" "$PM" map tcp '{port}' --once ,)
	if [[ $np == yes ]]; then
		cmds+=("natpmpc -a" natpmpc -g 192.168.77.1 -a '{port}' '{port}' tcp 600)
	else
		cmds+=("upnpc -u ROOTDESC -a (no discovery)" upnpc -u http://192.168.77.1:5000/rootDesc.xml -i -a
			192.168.77.2 '{port}' '{port}' TCP)
	fi
	$LAB cli "$PAIR" "$RUNS" "$base" "${cmds[@]}"
	if [[ $up == yes ]] && command -v upnpc >/dev/null; then
		$LAB cli "$SPAWN" "upnpc -i -a (with discovery)" 3 $((base + 900)) upnpc -i -a 192.168.77.2 '{port}' \
			'{port}' TCP
	fi
}

mode "PCP (all protocols on)" 30000 yes yes
mode "NAT-PMP only (PCP dropped, UPnP off)" 31000 yes no gw-drop-pcp
mode "PCP dropped (NAT-PMP and UPnP answer)" 32000 yes yes gw-drop-pcp
mode "UPnP only (PCP and NAT-PMP port closed)" 33000 no yes
