#!/usr/bin/env bash
# The functions of libpcpmap that run while an application makes and holds one mapping (bench_rss_holder
# through a PCP gateway, cold start then warm starts, and `pcpmap map` holding one): the list cmake/libpcpmap-hold.list that the library's
# link places first in .text, so that what a holding process touches shares as few 64 KiB windows as
# possible (doc/PERFORMANCE.md, "Memory of holding one mapping"). Runs the holder under valgrind's callgrind
# in the lab (root). Usage: bench/holdlist.sh [OUT] (default: print the list).
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${PCPMAP_BUILD_DIR:-$PWD/build}
OUT=${1:-/dev/stdout}
command -v valgrind >/dev/null || { echo "holdlist: valgrind is needed (Debian package valgrind)" >&2; exit 1; }
export PCPMAP_LAB=${PCPMAP_LAB_TAG:-}pmhold PCPMAP_BUILD_DIR=$BUILD
TMP=$(mktemp -d /tmp/pcpmap-holdlist.XXXXXX)
export XDG_RUNTIME_DIR=$TMP/xdg
mkdir -p "$XDG_RUNTIME_DIR"
trap 'tests/interop/lab.sh down >/dev/null 2>&1 || true; rm -rf "$TMP"' EXIT
tests/interop/lab.sh up >/dev/null
for run in cold warm1 warm2 cli; do
	port=$((42100 + RANDOM % 500))
	holder=("$BUILD/bench/bench_rss_holder" "$port")
	[ "$run" = cli ] && holder=("${PCPMAP_BIN:-$BUILD/cli/pcpmap}" map tcp "$port" --lifetime 600)
	mkfifo "$TMP/out"
	tests/interop/lab.sh cli valgrind --tool=callgrind --callgrind-out-file="$TMP/$run.cg" "${holder[@]}" \
		>"$TMP/out" 2>/dev/null &
	pid=$!
	read -r line <"$TMP/out" || { echo "holdlist: the holder did not map ($run)" >&2; exit 1; }
	sleep 2 # the renewals' and the monitors' first timers
	kill "$pid"
	wait "$pid" || true
	rm -f "$TMP/out"
done
# Callgrind names each function once per object as "fn=(id) name" (or "cfn=" for a callee, its object
# given by "cob="), later by its id alone: keep those of libpcpmap.
awk '
	function take(id, name, obj) {
		if (name != "") names[id] = name
		if (obj ~ /libpcpmap\.so/ && names[id] !~ /^0x/) seen[names[id]] = 1
	}
	FNR == 1 { split("", names); split("", objs); ob = ""; cob = "" }
	/^(ob|cob|fn|cfn)=\(/ {
		key = substr($0, 1, index($0, "=") - 1)
		rest = substr($0, index($0, "(") + 1)
		id = substr(rest, 1, index(rest, ")") - 1)
		name = substr(rest, index(rest, ")") + 2)
		if (key == "ob" || key == "cob") {
			if (name != "") objs[id] = name
			if (key == "ob") { ob = objs[id]; cob = "" } else cob = objs[id]
		} else if (key == "fn") {
			take(id, name, ob)
		} else {
			take(id, name, cob != "" ? cob : ob)
			cob = ""
		}
	}
	END { for (f in seen) print f }
' "$TMP"/*.cg | LC_ALL=C sort >"$TMP/list"
{
	echo "# Functions of libpcpmap run while an application makes and holds one PCP mapping, cold and warm, and"
	echo "# while \`pcpmap map\` holds one"
	echo "# (bench/holdlist.sh writes this list; a function missing here only costs memory, never behaviour)."
	cat "$TMP/list"
} >"$OUT"
echo "holdlist: $(wc -l <"$TMP/list") functions" >&2
