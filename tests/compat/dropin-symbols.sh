#!/usr/bin/env bash
# A drop-in library exports what the real one exports: the same defined dynamic symbols with the same types
# (nm -D), the same symbol versions (objdump -T: "Base" for unversioned ones) and the same SONAME, so any
# binary linked with the real library resolves every name it imports.
# Usage: dropin-symbols.sh REAL_LIB DROPIN_LIB   (exit 77: the real library is not installed)
set -euo pipefail
real=$1 dropin=$2
if [[ ! -e $real ]]; then
	echo "dropin-symbols: $real is not installed; nothing to compare the drop-in with (skipped)"
	exit 77
fi
[[ -e $dropin ]] || {
	echo "dropin-symbols: $dropin was not built" >&2
	exit 1
}
# "name type" for every defined symbol (weak and data ones included).
syms() { nm -D --defined-only "$1" | awk '{sub(/@.*/, "", $3); print $3, $2}' | sort; }
# "name version" from the dynamic symbol table; the version is the column before the name.
versions() { objdump -T "$1" | awk '$0 !~ /\*UND\*/ && NF >= 6 && $(NF-1) != "" {print $NF, $(NF-1)}' | sort; }
soname() { objdump -p "$1" | awk '$1 == "SONAME" {print $2}'; }
rc=0
if ! d=$(diff -u <(syms "$real") <(syms "$dropin")); then
	printf 'dropin-symbols: exported symbols differ (- real, + drop-in):\n%s\n' "$d" >&2
	rc=1
fi
if ! d=$(diff -u <(versions "$real") <(versions "$dropin")); then
	printf 'dropin-symbols: symbol versions differ (- real, + drop-in):\n%s\n' "$d" >&2
	rc=1
fi
if [[ $(soname "$real") != "$(soname "$dropin")" ]]; then
	echo "dropin-symbols: SONAME $(soname "$dropin"), the real library's is $(soname "$real")" >&2
	rc=1
fi
[[ $rc -eq 0 ]] && echo "dropin-symbols: $(basename "$dropin"): $(syms "$real" | wc -l) symbols, versions and SONAME $(soname "$real") as $real"
exit $rc
