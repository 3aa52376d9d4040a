#!/usr/bin/env bash
# The compat libraries export exactly the names of their version scripts (the emulated API under its
# pcpmap_compat_ link names), and never the plain libnatpmp/miniupnpc names that pcpmap's own backends
# import from the real libraries.
# Usage: exports.sh LIB MAPFILE [LIB MAPFILE]...
set -euo pipefail
rc=0
while [[ $# -ge 2 ]]; do
	lib=$1 map=$2
	shift 2
	want=$(sed -n '/global:/,/local:/p' "$map" | grep -o 'pcpmap_compat_[A-Za-z0-9_]*' | sort)
	have=$(nm -D --defined-only "$lib" | awk '$2 ~ /^[TDBRW]$/ {sub(/@.*/, "", $3); print $3}' | sort)
	if [[ $want != "$have" ]]; then
		echo "exports: $lib differs from $map:" >&2
		diff <(echo "$want") <(echo "$have") >&2 || true
		rc=1
		continue
	fi
	plain=${want//pcpmap_compat_/}
	# A plain API name defined here would take the place of the real library's in libpcpmap's backends.
	if nm -D --defined-only "$lib" | awk '{sub(/@.*/, "", $3); print $3}' | grep -qxF -f <(echo "$plain"); then
		echo "exports: $lib defines a plain libnatpmp/miniupnpc name" >&2
		rc=1
		continue
	fi
	echo "exports: $(basename "$lib"): $(wc -l <<<"$want") functions, all pcpmap_compat_*, as $(basename "$map")"
done
exit $rc
