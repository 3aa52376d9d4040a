#!/usr/bin/env bash
# The main job, end to end on Debian 12 (as root): installs what is needed, builds pcpmap, brings up a
# demo gateway (a real miniupnpd in network namespaces), maps a TCP port through it with `pcpmap map`,
# proves the port reachable from the "internet" namespace, deletes the mapping with Ctrl-C (SIGINT) and
# tears the demo gateway down.
#
#   scripts/demo.sh            the namespace demo gateway (default; touches nothing outside the namespaces)
#   scripts/demo.sh --real     build, then map TCP 8080 through this host's real gateway until Ctrl-C
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
bash scripts/install-deps.sh >/dev/null
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
ninja -C build >/dev/null
PCPMAP=$REPO/build/cli/pcpmap

if [[ ${1:-} == --real ]]; then
	exec "$PCPMAP" map tcp 8080 -v
fi

export PCPMAP_LAB=pmdemo PCPMAP_BUILD_DIR=$REPO/build
LAB=$REPO/tests/interop/lab.sh
OUT=$(mktemp -d)
cleanup() {
	[[ -n ${PID:-} ]] && kill "$PID" 2>/dev/null
	"$LAB" down >/dev/null 2>&1 || true
	rm -rf "$OUT"
}
trap cleanup EXIT

say() { printf '\n== %s\n' "$*"; }

say "bringing up the demo gateway: miniupnpd (PCP, NAT-PMP, UPnP) in network namespaces"
"$LAB" up
say "pcpmap map tcp 8080 (in the client namespace, 192.168.77.2; stays in the foreground, refreshing)"
"$LAB" cli "$PCPMAP" map tcp 8080 -v >"$OUT/map.out" 2>&1 &
PID=$!
for _ in $(seq 50); do
	grep -q '^mapped' "$OUT/map.out" && break
	sleep 0.1
done
cat "$OUT/map.out"
ext=$(sed -n 's/^mapped .* -> [0-9.]*:\([0-9]*\) .*/\1/p' "$OUT/map.out" | head -n1)
[[ -n $ext ]] || { echo "demo: no mapping"; exit 1; }

say "the gateway's rules now hold the mapping"
"$LAB" rules | grep -w "$ext"
say "a TCP connection from the internet namespace (203.0.113.2) to 203.0.113.1:$ext reaches port 8080"
"$LAB" reach tcp "$ext" 8080 && echo "reachable: yes"

say "Ctrl-C: pcpmap deletes the mapping (PCP MAP with lifetime 0, same nonce) and exits"
kill -INT "$PID"
wait "$PID"
PID=
tail -n 3 "$OUT/map.out"
if "$LAB" rules | grep -qw "$ext"; then
	echo "demo: the rule is still there"
	exit 1
fi
echo "the gateway's rule for $ext is gone"
say "done: tearing down the demo gateway"
