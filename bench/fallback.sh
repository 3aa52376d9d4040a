#!/usr/bin/env bash
# Cold-start time to a mapping (--no-cache) for each gateway mode, pcpmap beside natpmpc and upnpc doing the same job,
# in the lab (root). Usage: bench/fallback.sh [RUNS]
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${PCPMAP_BUILD_DIR:-$PWD/build}
RUNS=${1:-20}
export PCPMAP_LAB=${PCPMAP_LAB_TAG:-}pmfallback PCPMAP_BUILD_DIR=$BUILD
LAB=tests/interop/lab.sh
SPAWN=$BUILD/bench/bench_spawn
PM=${PCPMAP_BIN:-$BUILD/cli/pcpmap}
NOCACHE=--no-cache # every run cold (a build without the gateway cache is always cold)
"$PM" map --help 2>/dev/null | grep -q -- --no-cache || NOCACHE=
XDG=$(mktemp -d /tmp/pcpmap-bench-fallback.XXXXXX) # the gateway cache of this run only
export XDG_RUNTIME_DIR=$XDG
trap '$LAB down >/dev/null 2>&1 || true; rm -rf "$XDG"' EXIT

run() { # LABEL BASE CMD...
	local label=$1 base=$2
	shift 2
	$LAB cli "$SPAWN" "$label" "$RUNS" "$base" "$@"
}

mode() { # TITLE, then lab setup commands as strings
	local title=$1
	shift
	echo "$title"
	$LAB up "$@" >/dev/null
}

raw_rtt() {
	$LAB cli "$BUILD/bench/bench_ttm" 192.168.77.1 "$PM" 5 2>/dev/null | grep 'raw PCP' | sed 's/^ */  /'
}

mode "all protocols (PCP, NAT-PMP, UPnP)"
raw_rtt
run "pcpmap map --once" 20000 "$PM" map tcp '{port}' --once $NOCACHE
run "natpmpc -a" 20100 natpmpc -g 192.168.77.1 -a '{port}' '{port}' tcp 600
run "upnpc -i -a" 20200 upnpc -i -a 192.168.77.2 '{port}' '{port}' TCP

mode "UPnP only (PCP and NAT-PMP port closed: ICMP unreachable)" --natpmp no
run "pcpmap map --once" 21000 "$PM" map tcp '{port}' --once $NOCACHE
run "natpmpc -a" 21100 natpmpc -g 192.168.77.1 -a '{port}' '{port}' tcp 600
run "upnpc -i -a" 21200 upnpc -i -a 192.168.77.2 '{port}' '{port}' TCP

mode "PCP version 2 silently dropped; NAT-PMP and UPnP answer"
$LAB gw-drop-pcp
run "pcpmap map --once" 22000 "$PM" map tcp '{port}' --once $NOCACHE
run "natpmpc -a" 22100 natpmpc -g 192.168.77.1 -a '{port}' '{port}' tcp 600
run "upnpc -i -a" 22200 upnpc -i -a 192.168.77.2 '{port}' '{port}' TCP

mode "NAT-PMP only (PCP dropped, UPnP off)" --upnp no
$LAB gw-drop-pcp
run "pcpmap map --once" 23000 "$PM" map tcp '{port}' --once $NOCACHE
run "natpmpc -a" 23100 natpmpc -g 192.168.77.1 -a '{port}' '{port}' tcp 600

mode "gateway off (ICMP unreachable on every port): time to the error"
$LAB gw-stop
run "pcpmap map --once" 24000 "$PM" map tcp '{port}' --once $NOCACHE
run "natpmpc -a" 24100 natpmpc -g 192.168.77.1 -a '{port}' '{port}' tcp 600

mode "gateway off, its ICMP errors rate-limited (1/s): time to the error, one run a second"
$LAB gw-stop
$LAB gw nft -f - <<EOF
table inet pcpmapbench_icmplimit {
	chain output {
		type filter hook output priority 0; policy accept;
		icmp type destination-unreachable limit rate over 1/second burst 1 packets drop
	}
}
EOF
for i in 1 2 3; do
	sleep 1.1 # one refusal's worth of ICMP budget per run
	RUNS=1 run "pcpmap map --once (run $i)" $((24500 + i)) "$PM" map tcp '{port}' --once $NOCACHE
done
RUNS=1 run "natpmpc -a" 24600 natpmpc -g 192.168.77.1 -a '{port}' '{port}' tcp 600

mode "gateway silent (everything dropped): time to the error at the CLI's default timeout"
$LAB gw-block
RUNS=3 run "pcpmap map --once (default --timeout 3 s)" 25000 "$PM" map tcp '{port}' --once
