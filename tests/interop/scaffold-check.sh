#!/usr/bin/env bash
# Checks the interop scaffold (tests/interop/common.sh) without a lab: a case that passes but whose programs
# printed a sanitizer report fails; a clean case passes; a failing case keeps its exit code; the cleanup hook
# runs; two long case names that start alike still get labs of their own, short enough for lab.sh. Then it
# holds every case script (tests/interop/cases*.sh, or the scripts given as arguments) to the scaffold: it
# sources common.sh, sets no trap of its own, and sends no output of a program of ours past the sanitizer
# check (to /dev/null, or into a variable that is not handed to keep).
# Usage: scaffold-check.sh (PCPMAP_BUILD_DIR set; no root needed). Exit 0 pass, 1 fail.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
export PCPMAP_BUILD_DIR=${PCPMAP_BUILD_DIR:-build}
T=$(mktemp -d /tmp/pcpmap-scaffold-check.XXXXXX)
trap 'rm -rf "$T"' EXIT

# A case script as the real ones are written, with cases that only touch $WORK.
cat >"$T/cases-x.sh" <<EOF
set -euo pipefail
CASE_PREFIX=pmx
CASE_SCRIPT=cases-x.sh
source "$HERE/common.sh"
case_cleanup() { echo "cleanup hook ran" >"$T/hook"; }
case \$CASE in
asan) echo "==1==ERROR: AddressSanitizer: heap-use-after-free on address 0x1" >"\$WORK/prog.err" ;;
lsan) echo "==1==ERROR: LeakSanitizer: detected memory leaks" >"\$WORK/daemon.log" ;;
ubsan) echo "core/x.c:1:2: runtime error: signed integer overflow" >"\$WORK/app.out" ;;
clean) echo "mapped tcp 7000" >"\$WORK/prog.out" ;;
failing) exit 3 ;;
*) echo "\$PCPMAP_LAB" ;;
esac
EOF

failures=0
check() { # DESCRIPTION EXPECTED-RC CASE [OUTPUT-PATTERN]
	local rc=0 out
	out=$(PCPMAP_LAB_TAG= bash "$T/cases-x.sh" "$3" 2>&1) || rc=$?
	if [[ $rc -ne $2 ]] || [[ -n ${4-} && $out != *"$4"* ]]; then
		echo "FAIL - $1: exit $rc (want $2), output: $out"
		failures=$((failures + 1))
	else
		echo "ok   - $1"
	fi
}
check "an AddressSanitizer report in a program's stderr fails a passing case" 1 asan "sanitizer report in prog.err"
check "a LeakSanitizer report in a daemon log fails a passing case" 1 lsan "sanitizer report in daemon.log"
check "an UndefinedBehaviorSanitizer report in a program's output fails a passing case" 1 ubsan "sanitizer report"
check "a clean case passes" 0 clean
check "a failing case keeps its exit code" 3 failing
rm -f "$T/hook"
check "the case's cleanup hook runs" 0 clean
if [[ -r $T/hook ]]; then echo "ok   - hook file written"; else
	echo "FAIL - case_cleanup did not run"
	failures=$((failures + 1))
fi

a=$(PCPMAP_LAB_TAG=zz bash "$T/cases-x.sh" fallback_pcp_dropped_natpmp_first)
b=$(PCPMAP_LAB_TAG=zz bash "$T/cases-x.sh" fallback_pcp_dropped_natpmp_second)
if [[ $a != "$b" && ${#a} -le 32 && ${#b} -le 32 && $a == zzpmx-* ]]; then
	echo "ok   - long case names that start alike get different labs ($a, $b)"
else
	echo "FAIL - lab names '$a' and '$b'"
	failures=$((failures + 1))
fi

# The case scripts themselves. "Ours": the tool, the daemon, its test client, the example applications.
ours='"\$(PCPMAP|PCPMAPD|CTL|APP|PM|pcpmapd)"|\$BIN/|\$PCPMAP_BUILD_DIR/[A-Za-z_-]+/'
scripts=("$@")
[[ ${#scripts[@]} -gt 0 ]] || scripts=("$HERE"/cases*.sh)
for f in "${scripts[@]}"; do
	n=$(basename "$f")
	bad=()
	grep -qE '^[[:space:]]*(source|\.)[[:space:]].*common\.sh' "$f" || bad+=("does not source common.sh")
	if t=$(grep -nE '^[[:space:]]*trap[[:space:]]' "$f"); then
		bad+=("sets its own trap (define case_cleanup instead): $t")
	fi
	# A line running a program of ours (or its continuation line) that sends output to /dev/null.
	if t=$(grep -nE "($ours)" -A1 "$f" | grep -E '>[[:space:]]*/dev/null' | grep -vE '^[0-9]+[-:][[:space:]]*#' |
		grep -vE '\[\[ -[xS]|kill |wait |command -v'); then
		bad+=("discards the output of a program of ours (write it to \$WORK/NAME.out): $t")
	fi
	# Output of a program of ours captured in a variable must be kept on the next line.
	while IFS=: read -r ln _; do
		[[ -n $ln ]] || continue
		sed -n "$((ln + 1))p" "$f" | grep -qE '^[[:space:]]*keep[[:space:]]' ||
			bad+=("line $ln captures a program's output without keep NAME \"\$var\" after it")
	done < <(grep -nE "=\\$\((timeout [0-9]+ )?($ours)" "$f" || true)
	if [[ ${#bad[@]} -eq 0 ]]; then
		echo "ok   - $n uses the scaffold"
	else
		for b in "${bad[@]}"; do echo "FAIL - $n $b"; done
		failures=$((failures + 1))
	fi
done

[[ $failures -eq 0 ]] || exit 1
echo "all checks passed"
