#!/usr/bin/env bash
# Proves that labs of different names coexist, which is what lets ctest run interop cases in parallel: two
# labs come up at once, nothing appears in the host namespace, each has its own state directory, gateway,
# STUN responder, rules and lease file, a multicast announcement stays inside its lab, and one lab going
# down while a third comes up leaves the other one working. Uses Debian's natpmpc and tests/interop/pcp_raw.py.
# Exit: 0 pass, 1 fail, 77 skip (lab unavailable here).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
LAB=$HERE/lab.sh
RAW=$HERE/pcp_raw.py
A=${PCPMAP_LAB_TAG:-}pmpar-a$$
B=${PCPMAP_LAB_TAG:-}pmpar-b$$
C=${PCPMAP_LAB_TAG:-}pmpar-c$$
if [[ -x /usr/bin/python3 ]]; then PY=/usr/bin/python3; else PY=python3; fi

failures=0
pass() { echo "ok   - $*"; }
fail() {
	echo "FAIL - $*"
	failures=$((failures + 1))
}
lab() { # NAME COMMAND...
	local name=$1
	shift
	PCPMAP_LAB=$name "$LAB" "$@"
}

TMPD=$(mktemp -d /tmp/pcpmap-lab-parallel.XXXXXX)
cleanup() {
	local n
	for n in "$A" "$B" "$C"; do
		lab "$n" down >/dev/null 2>&1 || true
	done
	rm -rf "$TMPD"
}
trap cleanup EXIT

command -v natpmpc >/dev/null 2>&1 || {
	echo "SKIP: natpmpc not installed"
	exit 77
}

host_links() { ip -o link show 2>/dev/null | awk -F': ' '{print $2}' | sort; }
links_before=$(host_links)

# Both labs at once.
lab "$A" up >"$TMPD/a.up" 2>&1 &
pa=$!
lab "$B" up >"$TMPD/b.up" 2>&1 &
pb=$!
ra=0
rb=0
wait "$pa" || ra=$?
wait "$pb" || rb=$?
if [[ $ra -eq 77 || $rb -eq 77 ]]; then
	echo "SKIP: lab unavailable: $(tail -n1 "$TMPD/a.up")"
	exit 77
fi
if [[ $ra -ne 0 || $rb -ne 0 ]]; then
	echo "FAIL - labs brought up together: $A exited $ra, $B exited $rb"
	cat "$TMPD/a.up" "$TMPD/b.up"
	exit 1
fi
pass "labs $A and $B came up at the same time"

links_after=$(host_links)
if [[ $links_before == "$links_after" ]]; then
	pass "no interface appeared in the host namespace"
else
	fail "host interfaces changed: $(diff <(echo "$links_before") <(echo "$links_after") | grep '^[<>]' | tr '\n' ' ')"
fi

# Own state directory, own processes in own namespaces.
for n in "$A" "$B"; do
	st=/run/pcpmap-lab/$n
	if [[ -d $st ]] && grep -qx "lease_file=$st/leases" "$st/miniupnpd.conf"; then
		pass "$n keeps its state and lease file in $st"
	else
		fail "$n: state directory or lease file not its own"
	fi
	gw=$(ip netns identify "$(cat "$st/miniupnpd.pid")" 2>/dev/null || true)
	wan=$(ip netns identify "$(cat "$st/stun.pid")" 2>/dev/null || true)
	if [[ $gw == "$n-gw" && $wan == "$n-wan" ]]; then
		pass "$n's miniupnpd runs in $gw, its STUN responder in $wan"
	else
		fail "$n: miniupnpd in '$gw', STUN responder in '$wan'"
	fi
done

# A mapping made in A exists only in A.
out=$(lab "$A" cli natpmpc -g 192.168.77.1 -a 5678 1234 tcp 3600 2>&1) || true
[[ $out == *"Mapped public port 5678"* ]] || fail "natpmpc in $A: $out"
if [[ $(lab "$A" rules) == *"dport 5678 "* ]] && [[ $(lab "$B" rules) != *"dport 5678 "* ]]; then
	pass "the mapping made in $A is a rule in $A's gateway only"
else
	fail "rules: $A and $B do not hold what each was asked"
fi
if lab "$A" reach tcp 5678 1234 >/dev/null 2>&1 && ! lab "$B" reach tcp 5678 1234 >/dev/null 2>&1; then
	pass "traffic to port 5678 reaches $A's client, not $B's"
else
	fail "reach tcp 5678: the labs' data paths are not separate"
fi
sleep 0.2 # miniupnpd writes its lease file after answering
if grep -q 5678 "/run/pcpmap-lab/$A/leases" 2>/dev/null && ! grep -q 5678 "/run/pcpmap-lab/$B/leases" 2>/dev/null; then
	pass "only $A's lease file records it"
else
	fail "lease files: $A's lacks the mapping or $B's has it"
fi

# Announcements (224.0.0.1:5350) stay in their lab: B hears its own gateway, not A's.
listen() { # LISTENER-LAB ANNOUNCER-LAB OUTFILE
	lab "$1" cli "$PY" "$RAW" --listen 5350 -t 1.5 >"$3" 2>&1 &
	local p=$!
	sleep 0.4
	lab "$2" gw-usr1
	wait "$p" || true
}
listen "$B" "$A" "$TMPD/b-hears-a.out"
listen "$B" "$B" "$TMPD/b-hears-b.out"
if grep -q '^reply' "$TMPD/b-hears-b.out" && ! grep -q '^reply' "$TMPD/b-hears-a.out"; then
	pass "$B's client hears its own gateway's announcement and not $A's"
else
	fail "announcements: from $B's gateway [$(head -n1 "$TMPD/b-hears-b.out")], from $A's [$(head -n1 "$TMPD/b-hears-a.out")]"
fi

# One lab goes down while another comes up; the third keeps working throughout.
lab "$A" down >"$TMPD/a.down" 2>&1 &
pa=$!
lab "$C" up >"$TMPD/c.up" 2>&1 &
pc=$!
ra=0
rc=0
wait "$pa" || ra=$?
wait "$pc" || rc=$?
if [[ $ra -eq 0 && $rc -eq 0 && ! -e /run/netns/$A-gw && -e /run/netns/$C-gw ]]; then
	pass "$A went down while $C came up"
else
	fail "$A down exited $ra, $C up exited $rc: $(cat "$TMPD/a.down" "$TMPD/c.up")"
fi
out=$(lab "$B" cli natpmpc -g 192.168.77.1 -a 5679 1235 tcp 3600 2>&1) || true
if [[ $out == *"Mapped public port 5679"* && -d /run/pcpmap-lab/$B ]] && [[ $(lab "$B" rules) == *"dport 5679 "* ]]; then
	pass "$B still maps after the others' changes"
else
	fail "$B after $A's down and $C's up: $out"
fi
lab "$C" down
lab "$B" down
if [[ ! -e /run/netns/$B-gw && ! -d /run/pcpmap-lab/$B && $(host_links) == "$links_before" ]]; then
	pass "down removes each lab's namespaces and state, and nothing is left in the host namespace"
else
	fail "leftovers after down"
fi

if [[ $failures -ne 0 ]]; then
	echo "$failures check(s) failed"
	exit 1
fi
echo "all checks passed"
