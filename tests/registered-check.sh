#!/usr/bin/env bash
# Every test source is registered: a tests/unit/NAME.c without pcpmap_unit_test(NAME) or a tests/fuzz/NAME.c
# without pcpmap_fuzzer(NAME), or a bench/NAME.c not named in bench/CMakeLists.txt, would be left out of the
# build without a word (a merge once dropped two benchmarks the bench scripts run). Usage: registered-check.sh SRCDIR
set -euo pipefail
root=${1:?usage: registered-check.sh SRCDIR}
list=$root/tests/CMakeLists.txt
bad=0
for f in "$root"/tests/unit/*.c; do
	n=$(basename "$f" .c)
	grep -qE "pcpmap_unit_test\(${n}[ )]" "$list" || { echo "registered-check: tests/unit/$n.c is not registered (pcpmap_unit_test($n) in tests/CMakeLists.txt)"; bad=1; }
done
for f in "$root"/tests/fuzz/fuzz_*.c; do
	n=$(basename "$f" .c)
	grep -qE "pcpmap_fuzzer\(${n}[ )]" "$list" || { echo "registered-check: tests/fuzz/$n.c is not registered (pcpmap_fuzzer($n) in tests/CMakeLists.txt)"; bad=1; }
done
for f in "$root"/bench/*.c; do
	n=$(basename "$f" .c)
	grep -qE "(^|[[:space:](])${n}([[:space:])]|$)" "$root/bench/CMakeLists.txt" || { echo "registered-check: bench/$n.c is not built (name it in bench/CMakeLists.txt)"; bad=1; }
done
[ $bad = 0 ] && echo "registered-check: every unit test, fuzz target and benchmark is registered"
exit $bad
