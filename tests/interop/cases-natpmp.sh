#!/usr/bin/env bash
# NAT-PMP interop cases: the pcpmap tool with `--protocol natpmp` (the NAT-PMP backend only) against the
# real miniupnpd in network namespaces (tests/interop/lab.sh). Same conventions as cases.sh: each case builds
# its own lab, proves the result on the gateway side (nft rules) and end to end (traffic from the wan
# namespace), and always tears the lab down.
# Usage: cases-natpmp.sh CASE   (root). Exit 0 pass, 1 fail, 77 skip (no namespaces here).
# Cases: map_tcp map_udp renew_and_sigterm not_authorized unreachable unreachable_exit capture_clean
# once_unmap_hint
set -euo pipefail

CASE_PREFIX=pmn
CASE_SCRIPT=cases-natpmp.sh
# shellcheck source=tests/interop/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
NP=(--protocol natpmp)

now_ms() {
	echo $(($(date +%s%N) / 1000000))
}

# A mapping through NAT-PMP: carried by NAT-PMP, public address from the public-address answer, rule on the
# gateway, traffic from the wan reaches the client.
map_and_check() { # PROTO PORT [extra pcpmap options]
	local proto=$1 port=$2
	shift 2
	pm map map "$proto" "$port" --once --json -v "${NP[@]}" "$@"
	[[ $RC -eq 0 ]] || fail "map exited $RC"
	local ext addr carrier
	ext=$(json_field "$WORK/map.out" external.port)
	addr=$(json_field "$WORK/map.out" external.address)
	carrier=$(json_field "$WORK/map.out" protocol)
	[[ $carrier == NAT-PMP ]] || fail "carried by '$carrier', not NAT-PMP"
	[[ $addr == "$EXT4" ]] || fail "external address $addr, want $EXT4 (from the public address answer)"
	grep -q "NAT-PMP map $proto request internal=$port suggest=0 lifetime=7200" "$WORK/map.out" ||
		fail "no NAT-PMP map request in the trace"
	grep -q "NAT-PMP public address response result=Success .* external=$EXT4" "$WORK/map.out" ||
		fail "no public address answer in the trace"
	rules_have "$ext" || fail "no gateway rule for port $ext"
	expect_gateway_from "$WORK/map.out"
	"$LAB" reach "$proto" "$ext" "$port" || fail "${proto^^} to $EXT4:$ext did not reach the client"
	MAPPED_EXT=$ext
}

case_map_tcp() {
	lab_up
	map_and_check tcp 7100 -g $GW4
	ok "TCP 7100 -> $EXT4:$MAPPED_EXT over NAT-PMP, rule present, reachable from the wan"
}

case_map_udp() {
	lab_up
	map_and_check udp 7101
	ok "UDP 7101 -> $EXT4:$MAPPED_EXT over NAT-PMP (gateway from netlink), reachable from the wan"
}

case_renew_and_sigterm() {
	# miniupnpd does not clamp NAT-PMP lifetimes: 8 s means a renewal about 4.5 s in.
	lab_up
	"$LAB" cli "$PCPMAP" map tcp 7102 --lifetime 8 --json -v "${NP[@]}" -g $GW4 >"$WORK/fg.out" 2>"$WORK/fg.err" &
	BG_PID=$!
	sleep 7
	local requests ext renewals
	requests=$(grep -c 'NAT-PMP map tcp request internal=7102 suggest=[0-9]* lifetime=8' "$WORK/fg.err" || true)
	[[ $requests -ge 2 ]] || fail "expected a renewal within 7 s of an 8 s lifetime, saw $requests requests"
	ext=$(json_field "$WORK/fg.out" external.port)
	# Renewals suggest the assigned port (RFC 6886 3.3), and the port never moves.
	renewals=$(grep -c "NAT-PMP map tcp request internal=7102 suggest=$ext lifetime=8" "$WORK/fg.err" || true)
	[[ $renewals -eq $((requests - 1)) ]] || fail "$renewals of $((requests - 1)) renewals suggested $ext"
	! grep -q '"event":"changed"\|"event":"lost"\|"event":"failed"' "$WORK/fg.out" ||
		fail "renewal reported a change, loss or failure"
	rules_have 7102 || fail "rule gone while the tool runs"
	"$LAB" reach tcp "$ext" 7102 || fail "not reachable while renewed"
	expect_gateway_from "$WORK/fg.out"
	kill -TERM "$BG_PID"
	wait "$BG_PID" || fail "pcpmap exited non-zero after SIGTERM"
	BG_PID=
	grep -q 'NAT-PMP map tcp request internal=7102 suggest=0 lifetime=0' "$WORK/fg.err" || fail "no delete sent on SIGTERM"
	grep -q 'NAT-PMP map tcp response result=Success epoch=[0-9]* internal=7102 external=0 lifetime=0' "$WORK/fg.err" ||
		fail "the delete was not confirmed"
	! rules_have 7102 || fail "rule still present after SIGTERM"
	expect_gone "$ext" "the SIGTERM delete"
	expect_gateway
	ok "$requests requests in 7 s at lifetime 8 s, renewals suggest port $ext, deleted on SIGTERM"
}

case_not_authorized() {
	lab_up
	# miniupnpd takes 1.2-1.6 s to refuse a denied port, more on a busy machine.
	pm map map tcp 80 --once -v "${NP[@]}" -g $GW4 --timeout 20000
	[[ $RC -eq 4 ]] || fail "denied port exited $RC, want 4"
	grep -q 'NAT-PMP map tcp response result=NotAuthorized' "$WORK/map.out" || fail "no NotAuthorized answer traced"
	grep -q '^failed .*NotAuthorized' "$WORK/map.out" || fail "error does not name NotAuthorized: $(cat "$WORK/map.out")"
	! rules_have 80 || fail "a rule for port 80 appeared"
	expect_gateway
	ok "$(grep '^failed' "$WORK/map.out")"
}

# The stopped server: ICMP port unreachable must fail the mapping at once, exit 3. Starts pcpmap in the
# background and times the failure line and the exit separately.
run_unreachable() {
	lab_up
	"$LAB" gw-stop
	local t0 rc=0
	t0=$(now_ms)
	"$LAB" cli "$PCPMAP" map tcp 7103 --once "${NP[@]}" -g $GW4 >"$WORK/map.out" 2>&1 &
	BG_PID=$!
	T_FAILED=
	while kill -0 "$BG_PID" 2>/dev/null; do
		if [[ -z $T_FAILED ]] && grep -q '^failed' "$WORK/map.out"; then
			T_FAILED=$(($(now_ms) - t0))
		fi
		sleep 0.005
	done
	wait "$BG_PID" || rc=$?
	BG_PID=
	T_EXIT=$(($(now_ms) - t0))
	[[ -n $T_FAILED ]] || T_FAILED=$T_EXIT
	[[ $rc -eq 3 ]] || fail "stopped server exited $rc, want 3: $(cat "$WORK/map.out")"
	grep -qi 'refused' "$WORK/map.out" || fail "error does not say refused: $(cat "$WORK/map.out")"
	expect_gateway
}

case_unreachable() {
	run_unreachable
	[[ $T_FAILED -lt 1000 ]] || fail "took $T_FAILED ms to report an unreachable server"
	ok "stopped server reported in $T_FAILED ms (exit 3 after $T_EXIT ms)"
}

case_unreachable_exit() {
	run_unreachable
	# The whole run, exit included. A NAT-PMP-only mapping waits behind the protocol probe without a
	# server; freeing it must not leave a delete with nobody to send it to (pcpmap_client_flush waits).
	[[ $T_EXIT -lt 1000 ]] || fail "exit 3 took $T_EXIT ms (failure reported after $T_FAILED ms)"
	ok "stopped server: exit 3 in $T_EXIT ms"
}

case_capture_clean() {
	lab_up
	"$LAB" capture-start "$WORK/cap.pcapng"
	sleep 0.5
	pm a map tcp 7104 --once "${NP[@]}" -g $GW4
	[[ $RC -eq 0 ]] || fail "map exited $RC"
	pm b map udp 7105 --once "${NP[@]}" -g $GW4
	"$LAB" cli "$PCPMAP" map udp 7106 --lifetime 8 "${NP[@]}" -g $GW4 --timeout 30000 >"$WORK/d.out" 2>&1 &
	BG_PID=$!
	local i
	for ((i = 0; i < 300; i++)); do
		grep -q '^mapped' "$WORK/d.out" && break
		sleep 0.1
	done
	sleep 5 # a renewal, 4-5 s into the 8 s lifetime
	expect_gateway_from "$WORK/a.out" "$WORK/b.out" "$WORK/d.out"
	kill -TERM "$BG_PID" 2>/dev/null || fail "pcpmap (udp 7106) exited early: $(cat "$WORK/d.out")"
	wait "$BG_PID" || true
	BG_PID=
	expect_gone 7106 "the SIGTERM delete"
	# The refusal last: miniupnpd answers each denied request after 1.2-1.6 s, one at a time, and holds up
	# every request behind c's retransmissions meanwhile.
	pm c map tcp 80 --once "${NP[@]}" -g $GW4 --timeout 20000
	[[ $RC -ne 0 ]] || fail "map tcp 80 was granted: miniupnpd's rules deny ports below 1024"
	expect_gateway_from "$WORK/a.out" "$WORK/b.out"
	sleep 0.5
	"$LAB" capture-stop
	"$LAB" capture-check "$WORK/cap.pcapng" nat-pmp || fail "capture shows malformed packets or warnings"
	local n
	n=$(tshark -r "$WORK/cap.pcapng" -Y nat-pmp 2>/dev/null | wc -l)
	[[ $n -ge 12 ]] || fail "only $n NAT-PMP packets captured"
	ok "$n NAT-PMP packets (address, map, renewal, delete, refusal) decode cleanly in tshark"
}

# `map --once` over NAT-PMP prints the command that deletes the mapping (and puts it in its JSON, without a
# nonce: NAT-PMP has none), and that command deletes exactly that mapping.
case_once_unmap_hint() {
	lab_up
	pm a map tcp 7120 --once "${NP[@]}" -g $GW4
	[[ $RC -eq 0 ]] || fail "map exited $RC"
	pm b map udp 7121 --once --json "${NP[@]}"
	[[ $RC -eq 0 ]] || fail "map --json exited $RC"
	expect_gateway_from "$WORK/a.out" "$WORK/b.out"
	local cmd jcmd
	cmd=$(sed -n 's/^to delete it: pcpmap //p' "$WORK/a.out")
	[[ -n $cmd ]] || fail "no 'to delete it' line: $(cat "$WORK/a.out")"
	jcmd=$(json_field "$WORK/b.out" unmap_command 2>/dev/null) || fail "no unmap_command in $(cat "$WORK/b.out")"
	! grep -q '"nonce"' "$WORK/b.out" || fail "NAT-PMP mapping JSON carries a nonce: $(cat "$WORK/b.out")"
	# shellcheck disable=SC2086
	pm del-a $cmd
	[[ $RC -eq 0 ]] || fail "'$cmd' exited $RC: $(cat "$WORK/del-a.out")"
	expect_gone 7120 "'$cmd'"
	expect_gateway_from "$WORK/b.out"
	# shellcheck disable=SC2086
	pm del-b ${jcmd#pcpmap }
	[[ $RC -eq 0 ]] || fail "'$jcmd' exited $RC: $(cat "$WORK/del-b.out")"
	expect_gone 7121 "'$jcmd'"
	expect_gateway
	ok "printed '$cmd' and JSON '$jcmd' each deleted their mapping"
}

fn=case_$CASE
declare -F "$fn" >/dev/null || { echo "unknown case $CASE" >&2; exit 2; }
"$fn"
