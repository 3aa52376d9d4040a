#!/usr/bin/env bash
# Proves the interop lab works, using only Debian's own clients (natpmpc, upnpc) and the lab's checks.
# Exit: 0 pass, 1 fail, 77 skip (lab unavailable here: not root, no namespaces, tools or stun_responder missing).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
LAB=$HERE/lab.sh
RAW=$HERE/pcp_raw.py
# PCPMAP_LAB_TAG (optional) keeps the labs of two build trees apart.
export PCPMAP_LAB=${PCPMAP_LAB:-${PCPMAP_LAB_TAG:-}pmst$$}
if [[ -x /usr/bin/python3 ]]; then PY=/usr/bin/python3; else PY=python3; fi

failures=0
pass() { echo "ok   - $*"; }
fail() {
	echo "FAIL - $*"
	failures=$((failures + 1))
}
now_ms() {
	local s=${EPOCHREALTIME/./}
	echo $((s / 1000))
}

cleanup() {
	"$LAB" down >/dev/null 2>&1 || true
	rm -rf "${TMPD:-}"
}
trap cleanup EXIT

for t in natpmpc upnpc; do
	if ! command -v "$t" >/dev/null 2>&1; then
		echo "SKIP: $t not installed"
		exit 77
	fi
done

t0=$(now_ms)
rc=0
"$LAB" up --upnp yes --natpmp yes || rc=$?
if [[ $rc -eq 77 ]]; then
	echo "SKIP: lab unavailable"
	exit 77
elif [[ $rc -ne 0 ]]; then
	echo "FAIL - lab.sh up exited $rc"
	exit 1
fi
pass "lab up in $(($(now_ms) - t0)) ms"
TMPD=$(mktemp -d)

# NAT-PMP through natpmpc: public port 5678 -> client port 1234 (natpmpc -a PUBLIC PRIVATE PROTO LIFETIME).
out=$("$LAB" cli natpmpc -g 192.168.77.1 -a 5678 1234 tcp 3600 2>&1) || true
if [[ $out == *"Mapped public port 5678 protocol TCP to local port 1234"* ]]; then
	pass "natpmpc maps tcp 5678 -> 1234"
else
	fail "natpmpc mapping: $out"
fi
rules=$("$LAB" rules)
if [[ $rules == *"dport 5678 dnat ip to 192.168.77.2:1234"* ]]; then
	pass "DNAT rule 5678 -> 192.168.77.2:1234 in the gateway's chains"
else
	fail "no rule for 5678 in: $rules"
fi
if "$LAB" reach tcp 5678 1234; then
	pass "tcp 203.0.113.1:5678 reaches the client's port 1234"
else
	fail "reach tcp 5678 1234"
fi
if "$LAB" reach tcp 5679 1234 2>/dev/null; then
	fail "reach succeeded through an unmapped port 5679"
else
	pass "unmapped port 5679 does not reach the client"
fi

# UPnP IGD through upnpc, without discovery (the IGD's public address is a documentation one, hence -i).
out=$("$LAB" cli upnpc -i -u http://192.168.77.1:5000/rootDesc.xml -a 192.168.77.2 2345 6789 UDP 3600 2>&1) || true
if [[ $out == *"external 203.0.113.1:6789 UDP is redirected to internal 192.168.77.2:2345"* ]]; then
	pass "upnpc maps udp 6789 -> 2345"
else
	fail "upnpc mapping: $out"
fi
if "$LAB" reach udp 6789 2345; then
	pass "udp 203.0.113.1:6789 reaches the client's port 2345"
else
	fail "reach udp 6789 2345"
fi
# SSDP discovery (waits its full 2 s window) finds the IGD and lists both mappings.
out=$("$LAB" cli upnpc -i -l 2>&1) || true
if [[ $out == *"IGD : http://192.168.77.1:5000/"* && $out == *"6789->192.168.77.2:2345"* && $out == *"5678->192.168.77.2:1234"* ]]; then
	pass "upnpc discovers the IGD and lists both mappings"
else
	fail "upnpc -l: $out"
fi

# PCP over IPv6 opens a pinhole (raw MAP tcp, internal port 40100, suggested [::]:40100).
map6=(02 01 00 00 00 00 0e 10 fd 77 00 77 00 00 00 00 00 00 00 00 00 00 00 02
	a1 a2 a3 a4 a5 a6 a7 a8 a9 aa ab ac 06 00 00 00 9c a4 9c a4
	00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00)
out=$("$LAB" cli "$PY" "$RAW" -s fd77:77::1 "${map6[@]}" 2>&1) || true
if [[ $out == *"result=0 (SUCCESS)"*"external=[fd77:77::2]:40100"* ]] && "$LAB" reach tcp 40100 40100 -6; then
	pass "PCP MAP over IPv6 opens a working pinhole"
else
	fail "PCP MAP over IPv6: $out"
fi

# Capture of a PCP exchange decodes cleanly.
announce=(02 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 ff ff c0 a8 4d 02)
"$LAB" capture-start "$TMPD/pcp.pcapng"
"$LAB" cli "$PY" "$RAW" "${announce[@]}" >/dev/null || true
"$LAB" capture-stop
if "$LAB" capture-check "$TMPD/pcp.pcapng" >/dev/null; then
	pass "capture of a PCP ANNOUNCE exchange is clean"
else
	fail "capture-check"
fi
# ... and the check can fail: an unknown opcode draws a Wireshark expert warning.
"$LAB" capture-start "$TMPD/bad.pcapng"
"$LAB" cli "$PY" "$RAW" 02 3f 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 ff ff c0 a8 4d 02 >/dev/null || true
"$LAB" capture-stop
if "$LAB" capture-check "$TMPD/bad.pcapng" >/dev/null 2>&1; then
	fail "capture-check accepted an unknown opcode"
else
	pass "capture-check flags an unknown opcode"
fi

# Gateway stopped: natpmpc fails at once (ICMP port unreachable), not after its retry ladder.
"$LAB" gw-stop
t0=$(now_ms)
if "$LAB" cli natpmpc -g 192.168.77.1 >/dev/null 2>&1; then
	fail "natpmpc succeeded with the gateway stopped"
else
	dt=$(($(now_ms) - t0))
	if [[ $dt -lt 1000 ]]; then
		pass "natpmpc fails fast with the gateway stopped ($dt ms)"
	else
		fail "natpmpc took $dt ms to fail with the gateway stopped"
	fi
fi

# Restart keeping the lease file: the mapping survives; epoch restarts near 0.
"$LAB" gw-start
out=$("$LAB" cli natpmpc -g 192.168.77.1 2>&1) || true
if [[ $out == *"epoch = "[0-9]* && $out == *"Public IP address : 203.0.113.1"* ]] && "$LAB" reach tcp 5678 1234 >/dev/null; then
	pass "gw-start: gateway answers again and the mapping still works"
else
	fail "after gw-start: $out"
fi
# Restart with --flush: rules gone.
"$LAB" gw-restart --flush
rules=$("$LAB" rules)
if [[ $rules == *dport* ]]; then
	fail "gw-restart --flush left rules: $rules"
else
	pass "gw-restart --flush removes every mapping"
fi

# Blocked gateway: requests time out silently (natpmpc still waiting after 1 s).
"$LAB" gw-block
rc=0
timeout 1 "$LAB" cli natpmpc -g 192.168.77.1 >/dev/null 2>&1 || rc=$?
if [[ $rc -eq 124 ]]; then
	pass "gw-block: natpmpc gets no answer and no error"
else
	fail "gw-block: natpmpc ended with $rc"
fi
"$LAB" gw-unblock
if "$LAB" cli natpmpc -g 192.168.77.1 >/dev/null 2>&1; then
	pass "gw-unblock: natpmpc works again"
else
	fail "gw-unblock: natpmpc fails"
fi

# Loss on the LAN link: 100 % loses everything, off restores.
"$LAB" netem 100
rc=0
timeout 1 "$LAB" cli natpmpc -g 192.168.77.1 >/dev/null 2>&1 || rc=$?
"$LAB" netem off
if [[ $rc -eq 124 ]] && "$LAB" cli natpmpc -g 192.168.77.1 >/dev/null 2>&1; then
	pass "netem 100 drops the exchange, netem off restores it"
else
	fail "netem: natpmpc ended with $rc under 100 % loss"
fi

t0=$(now_ms)
"$LAB" down
dt=$(($(now_ms) - t0))
if [[ -e /run/netns/$PCPMAP_LAB-gw || -e /run/netns/$PCPMAP_LAB-cli || -e /run/netns/$PCPMAP_LAB-wan ]]; then
	fail "namespaces left after down"
else
	pass "lab down in $dt ms"
fi
"$LAB" down || fail "second down is not idempotent"

if [[ $failures -gt 0 ]]; then
	echo "lab-selftest: $failures failure(s)"
	exit 1
fi
echo "lab-selftest: all passed"
