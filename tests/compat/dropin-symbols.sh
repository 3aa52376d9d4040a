#!/usr/bin/env bash
# A drop-in replacement exports what the real library exports: the same SONAME and the same defined dynamic
# symbols, each with the same kind (function or object) and version (objdump -T's version column).
# Usage: dropin-symbols.sh REAL_LIB DROPIN_LIB     (77 = skipped: the real library is not installed)
set -euo pipefail
real=$1 ours=$2
if [[ ! -e $real ]]; then
	echo "SKIP: $real is not installed (Debian: libminiupnpc17 / libnatpmp1), nothing to compare with"
	exit 77
fi
[[ -e $ours ]] || { echo "FAIL: $ours was not built" >&2; exit 1; }
# "NAME KIND VERSION" per defined dynamic symbol; objdump prints e.g. "... g    DF .text  0000 Base  name".
syms() {
	objdump -T "$1" | awk '$0 ~ /^[0-9a-f]+ / && $0 !~ /\*UND\*/ {
		kind = ($0 ~ / DF /) ? "func" : (($0 ~ / DO /) ? "object" : "other")
		print $NF, kind, $(NF-1) }' | sort
}
soname() { objdump -p "$1" | awk '$1 == "SONAME" {print $2}'; }
rc=0
if [[ $(soname "$real") != "$(soname "$ours")" ]]; then
	echo "FAIL: SONAME $(soname "$ours") of $ours, want $(soname "$real")" >&2
	rc=1
fi
want=$(syms "$real") have=$(syms "$ours")
if [[ $want != "$have" ]]; then
	echo "FAIL: exported symbols of $ours differ from $real (< real, > drop-in):" >&2
	diff <(echo "$want") <(echo "$have") >&2 || true
	rc=1
fi
[[ $rc == 0 ]] && echo "OK: $(basename "$ours"): SONAME $(soname "$ours"), $(wc -l <<<"$want") symbols as $real"
exit $rc
