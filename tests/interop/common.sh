# Scaffolding shared by the interop case scripts (cases.sh, cases-natpmp.sh). The sourcing script sets
# CASE_PREFIX (lab name prefix) and CASE_SCRIPT (its name, for usage) and passes its arguments.
# Provides: LAB, PCPMAP, CASE, WORK, GW4, EXT4, the EXIT trap, fail, ok, lab_up, pm, json_field, rules_have.
# shellcheck shell=bash

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
LAB=$HERE/lab.sh
: "${PCPMAP_BUILD_DIR:?PCPMAP_BUILD_DIR must name the build tree}"
export PCPMAP_BUILD_DIR
PCPMAP=${PCPMAP_BIN:-$PCPMAP_BUILD_DIR/cli/pcpmap}
CASE=${1:?usage: $CASE_SCRIPT CASE}
export PCPMAP_LAB=$CASE_PREFIX-${CASE//_/-}
# PCPMAP_LAB_TAG (optional) keeps labs of two build trees run at once apart.
export PCPMAP_LAB=${PCPMAP_LAB_TAG:-}${PCPMAP_LAB:0:30}
WORK=$(mktemp -d "/tmp/pcpmap-interop-$CASE_PREFIX.XXXXXX")
GW4=192.168.77.1
EXT4=203.0.113.1

cleanup() {
	local rc=$?
	if [[ -n ${BG_PID:-} ]]; then
		kill "$BG_PID" 2>/dev/null || true
		wait "$BG_PID" 2>/dev/null || true
	fi
	"$LAB" capture-stop >/dev/null 2>&1 || true
	"$LAB" down >/dev/null 2>&1 || true
	if [[ $rc -ne 0 && $rc -ne 77 ]]; then
		echo "--- case $CASE failed (rc $rc); pcpmap output:"
		tail -n 40 "$WORK"/*.out 2>/dev/null || true
		echo "--- miniupnpd log:"
		tail -n 20 "/run/pcpmap-lab/$PCPMAP_LAB/miniupnpd.log" 2>/dev/null || true
	fi
	rm -rf "$WORK"
	exit $rc
}
trap cleanup EXIT

fail() {
	echo "FAIL [$CASE]: $*" >&2
	exit 1
}
ok() {
	echo "ok [$CASE]: $*"
}

lab_up() {
	local rc=0
	"$LAB" up "$@" >"$WORK/lab.out" 2>&1 || rc=$?
	if [[ $rc -eq 77 ]]; then
		echo "SKIP [$CASE]: $(tail -n1 "$WORK/lab.out")"
		exit 77
	fi
	[[ $rc -eq 0 ]] || { cat "$WORK/lab.out"; fail "lab did not come up"; }
}

# Runs pcpmap in the client namespace; output in $WORK/NAME.out, exit code in $RC.
pm() {
	local name=$1
	shift
	RC=0
	"$LAB" cli "$PCPMAP" "$@" >"$WORK/$name.out" 2>"$WORK/$name.err" || RC=$?
	cat "$WORK/$name.err" >>"$WORK/$name.out"
}

json_field() { # FILE KEY (a dotted path, e.g. external.port) from the first JSON line with "event":"mapped"
	python3 - "$1" "$2" <<'PY'
import json, sys
for line in open(sys.argv[1]):
    line = line.strip()
    if not line.startswith('{'):
        continue
    d = json.loads(line)
    if d.get('event') not in ('mapped', 'changed'):
        continue
    for k in sys.argv[2].split('.'):
        d = d[k]
    print(d)
    break
PY
}

rules_have() { # PORT: the gateway holds a rule naming this port
	local r
	r=$("$LAB" rules)
	grep -qw -- "$1" <<<"$r"
}
