#!/usr/bin/env bash
# Interop cases: the pcpmap tool against a real miniupnpd in network namespaces (tests/interop/lab.sh).
# Usage: cases.sh CASE   (root). Each case builds its own lab, proves the result on the gateway side
# (nft rules) and end to end (traffic from the wan namespace), and always tears the lab down.
# Exit 0 pass, 1 fail, 77 skip (no namespaces here).
set -euo pipefail

CASE_PREFIX=pmt
CASE_SCRIPT=cases.sh
# shellcheck source=tests/interop/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

case_map_tcp() {
	lab_up
	pm map map tcp 7000 --once --json -g $GW4
	[[ $RC -eq 0 ]] || fail "map exited $RC"
	local ext addr
	ext=$(json_field "$WORK/map.out" external.port)
	addr=$(json_field "$WORK/map.out" external.address)
	[[ $addr == "$EXT4" ]] || fail "external address $addr, want $EXT4"
	[[ $(json_field "$WORK/map.out" protocol) == PCP ]] || fail "not carried by PCP"
	rules_have "$ext" || fail "no gateway rule for port $ext"
	expect_gateway_from "$WORK/map.out"
	"$LAB" reach tcp "$ext" 7000 || fail "TCP to $EXT4:$ext did not reach the client"
	ok "TCP 7000 -> $addr:$ext, rule present, reachable from the wan"
}

case_map_udp() {
	lab_up
	pm map map udp 7001 --once --json
	[[ $RC -eq 0 ]] || fail "map exited $RC"
	local ext
	ext=$(json_field "$WORK/map.out" external.port)
	rules_have "$ext" || fail "no gateway rule for port $ext"
	expect_gateway_from "$WORK/map.out"
	"$LAB" reach udp "$ext" 7001 || fail "UDP to $EXT4:$ext did not reach the client"
	ok "UDP 7001 -> $ext reachable (default gateway discovered through netlink)"
}

case_map_ipv6() {
	lab_up
	pm map map tcp 7002 -6 --once --json
	[[ $RC -eq 0 ]] || fail "map -6 exited $RC"
	local ext addr
	ext=$(json_field "$WORK/map.out" external.port)
	addr=$(json_field "$WORK/map.out" external.address)
	[[ $addr == fd77:77::2 ]] || fail "pinhole address $addr, want the client's fd77:77::2"
	rules_have "$ext" || fail "no pinhole rule for port $ext on the gateway"
	expect_gateway # a pinhole, no IPv4 port mapping
	"$LAB" reach tcp "$ext" 7002 -6 || fail "TCP over IPv6 through the pinhole did not reach the client"
	# The human output brackets IPv6 endpoints, as [addr]:port.
	pm map6h map tcp 7004 -6 --once
	grep -Eq '^mapped tcp \[fd77:77::2\]:7004 -> \[fd77:77::2\]:[0-9]+ ' "$WORK/map6h.out" ||
		fail "IPv6 endpoints not bracketed: $(head -n1 "$WORK/map6h.out")"
	ok "IPv6 pinhole [$addr]:$ext reachable"
}

case_peer() {
	lab_up
	pm peer peer tcp 40000 203.0.113.2 8080 --once --json -g $GW4
	[[ $RC -eq 0 ]] || fail "peer exited $RC"
	local ext
	ext=$(json_field "$WORK/peer.out" external.port)
	[[ $(json_field "$WORK/peer.out" kind) == peer ]] || fail "not a PEER mapping"
	# PCP has no delete for a PEER mapping: no command is offered as if it had one.
	[[ $(json_field "$WORK/peer.out" unmap_command) == None ]] || fail "a PEER mapping got an unmap_command"
	local post
	post=$("$LAB" gw nft list chain inet filter postrouting_miniupnpd)
	grep -qw 40000 <<<"$post" || fail "no SNAT rule for the PEER mapping"
	expect_gateway # a PEER mapping opens no inbound port
	# End to end: a connection from client port 40000 to the peer leaves with the assigned external port.
	local seen
	seen=$("$LAB" wan python3 -c '
import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("203.0.113.2", 8080)); s.listen(1); s.settimeout(3)
c, a = s.accept(); print(a[1])' &
		for ((i = 0; i < 100; i++)); do
			[[ -n $("$LAB" wan ss -Htln 'sport = :8080') ]] && break
			sleep 0.05
		done
		"$LAB" cli python3 -c '
import socket
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("192.168.77.2", 40000)); s.settimeout(3); s.connect(("203.0.113.2", 8080)); s.close()' >/dev/null
		wait)
	[[ $seen == "$ext" ]] || fail "peer saw source port $seen, want the assigned $ext"
	ok "PEER tcp 40000 -> 203.0.113.2:8080 leaves as $EXT4:$ext"
}

case_delete() {
	lab_up
	pm map map tcp 7003 --once
	[[ $RC -eq 0 ]] || fail "map exited $RC"
	local cmd
	cmd=$(grep -o 'unmap .*' "$WORK/map.out")
	rules_have 7003 || fail "no rule after map"
	# shellcheck disable=SC2086
	pm unmap $cmd
	[[ $RC -eq 0 ]] || fail "unmap exited $RC: $(cat "$WORK/unmap.out")"
	! rules_have 7003 || fail "rule still present after unmap"
	expect_gone 7003 "unmap tcp 7003"
	# A delete with another nonce is refused by the gateway: the mapping stays.
	pm map2 map tcp 7004 --once
	pm unmap2 unmap tcp 7004 --nonce 000000000000000000000000
	[[ $RC -eq 4 ]] || fail "unmap with a wrong nonce exited $RC, want 4 (refused)"
	grep -q NOT_AUTHORIZED "$WORK/unmap2.out" || fail "no NOT_AUTHORIZED in: $(cat "$WORK/unmap2.out")"
	rules_have 7004 || fail "a wrong-nonce delete removed the mapping"
	expect_gateway_from "$WORK/map2.out"
	# The JSON of a --once mapping carries the command that deletes it, with its nonce.
	pm map3 map udp 7005 --once --json -g $GW4
	[[ $RC -eq 0 ]] || fail "map --json exited $RC"
	local jcmd nonce
	jcmd=$(json_field "$WORK/map3.out" unmap_command 2>/dev/null) || fail "no unmap_command in $(cat "$WORK/map3.out")"
	nonce=$(json_field "$WORK/map3.out" nonce)
	[[ $jcmd == *"--nonce $nonce"* ]] || fail "unmap_command '$jcmd' does not carry the nonce $nonce"
	expect_gateway_from "$WORK/map2.out" "$WORK/map3.out"
	# shellcheck disable=SC2086
	pm unmap3 ${jcmd#pcpmap }
	[[ $RC -eq 0 ]] || fail "'$jcmd' exited $RC: $(cat "$WORK/unmap3.out")"
	expect_gone 7005 "'$jcmd'"
	expect_gateway_from "$WORK/map2.out"
	ok "unmap with the nonce removes the rule; another nonce is refused (NOT_AUTHORIZED); JSON's unmap_command works"
}

case_foreground_renew_and_sigterm() {
	lab_up --min-lifetime 8
	"$LAB" cli "$PCPMAP" map tcp 7005 --lifetime 8 --json -v >"$WORK/fg.out" 2>"$WORK/fg.err" &
	BG_PID=$!
	# The first renewal slot of an 8 s lifetime is 4-5 s in (RFC 6887 11.2.1); the slots themselves are
	# test_client's (fake clock), this proves one renewal against the real server.
	sleep 7
	local requests ports
	requests=$(grep -c -- '-> .* MAP request lifetime=8' "$WORK/fg.err" || true)
	[[ $requests -ge 2 ]] || fail "expected a renewal within 7 s of an 8 s lifetime, saw $requests requests"
	ports=$(grep -o 'MAP response result=SUCCESS lifetime=[0-9]* epoch=[0-9]* tcp internal=7005 external=[0-9.]*:[0-9]*' "$WORK/fg.err" | sed 's/.*://' | sort -u)
	[[ $(echo "$ports" | wc -l) -eq 1 ]] || fail "renewals changed the external port: $ports"
	! grep -q '"event":"changed"\|"event":"lost"' "$WORK/fg.out" || fail "renewal reported a change or loss"
	rules_have 7005 || fail "rule gone while the tool runs"
	expect_gateway_from "$WORK/fg.out"
	kill -TERM "$BG_PID"
	wait "$BG_PID" || fail "pcpmap exited non-zero after SIGTERM"
	BG_PID=
	grep -q 'MAP request lifetime=0' "$WORK/fg.err" || fail "no delete sent on SIGTERM"
	! rules_have 7005 || fail "rule still present after SIGTERM"
	expect_gone 7005 "the SIGTERM delete"
	expect_gateway
	ok "$requests requests in 7 s at lifetime 8 s, same port $ports, deleted on SIGTERM"
}

case_prefer_failure() {
	lab_up
	pm a map tcp 7006 -e 17006 --prefer-failure --once --json
	[[ $RC -eq 0 ]] || fail "first PREFER_FAILURE map exited $RC"
	[[ $(json_field "$WORK/a.out" external.port) == 17006 ]] || fail "did not get the pinned port"
	pm b map tcp 7007 -e 17006 --prefer-failure --once
	[[ $RC -eq 4 ]] || fail "second mapping onto a taken port exited $RC, want 4: $(cat "$WORK/b.out")"
	sleep 0.3
	! rules_have 7007 || fail "the refused mapping was left on the gateway"
	expect_gateway_from "$WORK/a.out"
	ok "pinned port granted; a taken pinned port is refused and nothing is left behind"
}

case_third_party() {
	lab_up --thirdparty yes
	pm map map tcp 7008 --third-party 192.168.77.3 --once --json -g $GW4
	[[ $RC -eq 0 ]] || fail "THIRD_PARTY map exited $RC"
	local ext
	ext=$(json_field "$WORK/map.out" external.port)
	[[ $(json_field "$WORK/map.out" internal.address) == 192.168.77.3 ]] || fail "internal address not the third party"
	local r
	r=$("$LAB" rules)
	grep -w -- "$ext" <<<"$r" | grep -q 192.168.77.3 || fail "gateway rule does not point at 192.168.77.3"
	expect_gateway_from "$WORK/map.out"
	"$LAB" reach tcp "$ext" 7008 || fail "not reachable"
	ok "THIRD_PARTY mapping for 192.168.77.3 on port $ext"
}

case_port_pair() {
	lab_up
	pm map map udp 7010 --pair --once --json
	[[ $RC -eq 0 ]] || fail "pair map exited $RC"
	local p1 p2
	p1=$(json_field "$WORK/map.out" external.port)
	p2=$(json_field "$WORK/map.out" external.port2)
	[[ $((p1 % 2)) -eq 0 && $p2 -eq $((p1 + 1)) ]] || fail "not an even/odd pair: $p1 $p2"
	rules_have "$p1" && rules_have "$p2" || fail "gateway lacks one of the pair's rules"
	"$LAB" reach udp "$p1" 7010 || fail "RTP port not reachable"
	"$LAB" reach udp "$p2" 7011 || fail "RTCP port not reachable"
	expect_gateway_from "$WORK/map.out"
	# Both halves go with the commands the JSON names.
	local c1 c2
	c1=$(json_field "$WORK/map.out" unmap_command)
	c2=$(json_field "$WORK/map.out" unmap_command2)
	# shellcheck disable=SC2086
	pm del1 ${c1#pcpmap }
	[[ $RC -eq 0 ]] || fail "'$c1' exited $RC: $(cat "$WORK/del1.out")"
	# shellcheck disable=SC2086
	pm del2 ${c2#pcpmap }
	[[ $RC -eq 0 ]] || fail "'$c2' exited $RC: $(cat "$WORK/del2.out")"
	expect_gone "$p1" "'$c1'"
	expect_gone "$p2" "'$c2'"
	expect_gateway
	ok "RTP/RTCP pair $p1/$p2 via $(json_field "$WORK/map.out" external.pair_method); both deleted by unmap_command(2)"
}

case_not_authorized() {
	lab_up
	# PCP's own refusal (miniupnpd takes ~1 s to refuse, long enough for NAT-PMP to win the fallback; more
	# on a busy machine, hence the longer timeout).
	pm map map tcp 80 --once --protocol pcp --timeout 20000
	[[ $RC -eq 4 ]] || fail "denied port exited $RC, want 4"
	grep -q NOT_AUTHORIZED "$WORK/map.out" || fail "error does not name NOT_AUTHORIZED: $(cat "$WORK/map.out")"
	expect_gateway
	ok "$(head -n1 "$WORK/map.out")"
}

case_unreachable() {
	lab_up
	"$LAB" gw-stop
	local t0 t1
	t0=$(date +%s%N)
	pm map map tcp 7012 --once -g $GW4 --protocol pcp
	t1=$(date +%s%N)
	[[ $RC -eq 3 ]] || fail "stopped server exited $RC, want 3: $(cat "$WORK/map.out")"
	grep -qi 'refused' "$WORK/map.out" || fail "error does not say refused: $(cat "$WORK/map.out")"
	local ms=$(((t1 - t0) / 1000000))
	[[ $ms -lt 1000 ]] || fail "took $ms ms to report an unreachable server"
	expect_gateway
	ok "stopped server reported in $ms ms"
}

case_announce() {
	lab_up
	pm ann announce --json -g $GW4
	[[ $RC -eq 0 ]] || fail "announce exited $RC"
	grep -q '"version":2' "$WORK/ann.out" || fail "no version 2 in $(cat "$WORK/ann.out")"
	expect_gateway # an announcement maps nothing
	ok "$(cat "$WORK/ann.out")"
}

case_capture_clean() {
	lab_up --thirdparty yes
	"$LAB" capture-start "$WORK/cap.pcapng"
	sleep 0.5
	pm a announce -g $GW4
	pm b map tcp 7013 --once --description "pcpmap capture" --filter 203.0.113.0/24,0 -g $GW4
	pm c map udp 7014 --pair --once -g $GW4
	pm d peer tcp 40001 203.0.113.2 443 --once -g $GW4
	pm e map tcp 7015 --third-party 192.168.77.3 -e 17015 --prefer-failure --once -g $GW4
	pm f map tcp 7016 -6 --once
	cmd=$(grep -o 'unmap .*' "$WORK/b.out")
	# shellcheck disable=SC2086
	pm g $cmd
	[[ $RC -eq 0 ]] || fail "'$cmd' exited $RC: $(cat "$WORK/g.out")"
	expect_gone 7013 "'$cmd'"
	expect_gateway_from "$WORK/c.out" "$WORK/e.out"
	sleep 0.5
	"$LAB" capture-stop
	"$LAB" capture-check "$WORK/cap.pcapng" || fail "capture shows malformed packets or warnings"
	local n
	n=$(tshark -r "$WORK/cap.pcapng" -Y portcontrol 2>/dev/null | wc -l)
	ok "$n PCP packets (MAP, PEER, ANNOUNCE, options, IPv4 and IPv6) decode cleanly in tshark"
}

# Waits up to $2 seconds for a rule naming port $1; prints the seconds it took.
wait_rule() {
	local t0 now
	t0=$(date +%s%N)
	for _ in $(seq $(($2 * 10))); do
		if rules_have "$1"; then
			now=$(date +%s%N)
			echo $(((now - t0) / 1000000))
			return 0
		fi
		sleep 0.1
	done
	return 1
}

case_gateway_reboot_restores() {
	lab_up
	"$LAB" cli "$PCPMAP" map tcp 7020 --json -v >"$WORK/fg.out" 2>"$WORK/fg.err" &
	BG_PID=$!
	wait_rule 7020 5 >/dev/null || fail "no mapping"
	# Let the epoch grow, or a restart right after the start is indistinguishable from none (RFC 6887 8.5).
	sleep 4
	# Full state loss: rules flushed, leases gone, epoch back to 0. miniupnpd announces itself on start.
	# gw-restart --flush fails unless the flush left no rule (checked before miniupnpd is back).
	"$LAB" gw-restart --flush || fail "the restart did not flush the gateway's rules"
	local ms
	ms=$(wait_rule 7020 10) || fail "mapping not restored within 10 s"
	grep -q 'unsolicited ANNOUNCE' "$WORK/fg.err" || fail "the multicast ANNOUNCE was not received"
	# The renewal that confirmed the mapping got the same port back: the application saw nothing change.
	grep -q '"event":"changed"' "$WORK/fg.out" && fail "CHANGED although the same port came back"
	"$LAB" reach tcp 7020 7020 || fail "not reachable after the restore"
	expect_gateway_from "$WORK/fg.out"
	kill -TERM "$BG_PID"
	wait "$BG_PID" || true
	BG_PID=
	expect_gone 7020 "the SIGTERM delete"
	ok "gateway lost its state; ANNOUNCE heard; mapping restored ${ms} ms after the restart"
}

case_route_loss_suspends() {
	lab_up --min-lifetime 8
	"$LAB" cli "$PCPMAP" map tcp 7021 --lifetime 8 --json -v >"$WORK/fg.out" 2>"$WORK/fg.err" &
	BG_PID=$!
	wait_rule 7021 5 >/dev/null || fail "no mapping"
	"$LAB" cli ip route del default
	"$LAB" cli ip -6 route del default 2>/dev/null || true
	sleep 1
	local before after
	before=$(grep -c -- '-> .* MAP request' "$WORK/fg.err" || true)
	sleep 5
	after=$(grep -c -- '-> .* MAP request' "$WORK/fg.err" || true)
	[[ $after -eq $before ]] || fail "sent $((after - before)) requests without a route"
	"$LAB" cli ip route add default via $GW4
	sleep 1.5
	local resumed
	resumed=$(grep -c -- '-> .* MAP request' "$WORK/fg.err" || true)
	[[ $resumed -gt $after ]] || fail "no request after the route came back"
	rules_have 7021 || fail "mapping gone"
	expect_gateway_from "$WORK/fg.out"
	kill -TERM "$BG_PID"
	wait "$BG_PID" || true
	BG_PID=
	expect_gone 7021 "the SIGTERM delete"
	ok "no packet for 5 s without a default route; renewed at once when it returned"
}

case_sigusr1_announce() {
	lab_up
	"$LAB" cli "$PCPMAP" map tcp 7022 --json -v >"$WORK/fg.out" 2>"$WORK/fg.err" &
	BG_PID=$!
	wait_rule 7022 5 >/dev/null || fail "no mapping"
	sleep 4 # let the epoch grow
	local before t0 t1
	before=$(grep -c -- '-> .* MAP request' "$WORK/fg.err" || true)
	t0=$(date +%s%N)
	"$LAB" gw-usr1
	for _ in $(seq 70); do
		[[ $(grep -c -- '-> .* MAP request' "$WORK/fg.err" || true) -gt $before ]] && break
		sleep 0.1
	done
	t1=$(date +%s%N)
	grep -q 'unsolicited ANNOUNCE' "$WORK/fg.err" || fail "the ANNOUNCE was not received"
	[[ $(grep -c -- '-> .* MAP request' "$WORK/fg.err" || true) -gt $before ]] || fail "no re-mapping within 7 s"
	local ms=$(((t1 - t0) / 1000000))
	[[ $ms -le 5600 ]] || fail "re-mapped $ms ms after the announcement, beyond the RFC's 0-5 s"
	rules_have 7022 || fail "mapping gone"
	expect_gateway_from "$WORK/fg.out"
	sleep 0.5
	# miniupnpd kept the rule: LOST would be a lie (the renewal only confirmed it).
	grep -q '"event":"lost"' "$WORK/fg.out" && fail "LOST reported although the gateway kept the rule"
	kill -TERM "$BG_PID"
	wait "$BG_PID" || true
	BG_PID=
	expect_gone 7022 "the SIGTERM delete"
	ok "ANNOUNCE (epoch reset) heard; confirmed $ms ms later (random 0-5 s), mapping kept, no LOST"
}

# A restart within the epoch check's slack (RFC 6887 8.5: epoch 0, then 0 again) is invisible to the epoch;
# the ANNOUNCE the server multicasts when it comes back must still make the client re-verify and restore.
case_gateway_quick_restart_restores() {
	lab_up
	"$LAB" cli "$PCPMAP" map tcp 7024 --json -v >"$WORK/fg.out" 2>"$WORK/fg.err" &
	BG_PID=$!
	wait_rule 7024 5 >/dev/null || fail "no mapping"
	# gw-restart --flush fails unless the flush left no rule (checked before miniupnpd is back).
	"$LAB" gw-restart --flush || fail "the restart did not flush the gateway's rules"
	local ms
	ms=$(wait_rule 7024 10) || fail "mapping not restored within 10 s of a quick restart"
	grep -q 'unsolicited ANNOUNCE' "$WORK/fg.err" || fail "the multicast ANNOUNCE was not received"
	"$LAB" reach tcp 7024 7024 || fail "not reachable after the restore"
	expect_gateway_from "$WORK/fg.out"
	kill -TERM "$BG_PID"
	wait "$BG_PID" || true
	BG_PID=
	expect_gone 7024 "the SIGTERM delete"
	ok "restart right after the mapping (same epoch) restored ${ms} ms later through the ANNOUNCE"
}

case_server_down_then_up() {
	lab_up --min-lifetime 8
	"$LAB" cli "$PCPMAP" map tcp 7023 --lifetime 8 --json -v >"$WORK/fg.out" 2>"$WORK/fg.err" &
	BG_PID=$!
	wait_rule 7023 5 >/dev/null || fail "no mapping"
	sleep 1
	"$LAB" gw-stop
	local t0 before
	before=$(grep -c -- '-> .* MAP request' "$WORK/fg.err" || true)
	t0=$(date +%s%N)
	# Past the end of the lifetime: the renewal 4-5 s in is refused, the loss comes at 8 s. The pace over a
	# longer outage and the exact retry times are test_outage's (fake clock).
	sleep 9
	local during=$(($(grep -c -- '-> .* MAP request' "$WORK/fg.err" || true) - before))
	# 9 s: renewal slots at >= 4 s apart until the 8 s lifetime ends, then the RFC ladder 3, 6, 12 s.
	[[ $during -le 8 ]] || fail "$during requests in 9 s with the server down: faster than RFC 6887 allows"
	"$LAB" gw-start
	local ms
	ms=$(wait_rule 7023 10) || fail "mapping not restored within 10 s of the restart"
	grep -q '"event":"lost"' "$WORK/fg.out" || fail "no lost event while the server was down"
	"$LAB" reach tcp 7023 7023 || fail "not reachable after the restart"
	expect_gateway_from "$WORK/fg.out"
	kill -TERM "$BG_PID"
	wait "$BG_PID" || true
	BG_PID=
	expect_gone 7023 "the SIGTERM delete"
	ok "$during requests in 9 s with the server down; restored ${ms} ms after it came back"
}

# 100 mappings while 30% of what the client sends is lost, then the link heals; every mapping must end
# MAPPED on the client and be a DNAT rule on the gateway, exactly once.
# Arithmetic: RFC 6887 8.1.1 sends at 0, RT1, RT1+RT2, ... with RT1 = 3 s and each RT twice the last, each
# +-10% of the last: sends 1-3 leave between 0 and 10.3 s, send 4 between 17.6 and 24.8 s. With loss for the
# first 12 s, exactly 3 sends per mapping cross the lossy link; all 3 are lost with probability
# 0.3^3 = 2.7%, so 94% of runs have a mapping that is only made by a retransmission after the link healed.
# Loss alone never fails the case; a failure is a retransmission that stopped, a duplicate, or a mapping the
# client and the gateway disagree on. The same property over a minute of loss, with the exact send times,
# is test_outage's (fake clock).
case_lossy_link_100() {
	lab_up
	# As `tc netem loss 30%` on the client's link (LAB.md): 30% of what the client sends is lost.
	"$LAB" netem 30 out
	# PCP pinned: the case is about RFC 6887 retransmission under loss.
	"$LAB" cli "$PCPMAP_BUILD_DIR/tests/interop/many_maps" 100 31000 150 pcp >"$WORK/many.out" 2>&1 &
	BG_PID=$!
	# 6 s of loss: the sends at 0 and 3 s of the RFC 6887 ladder (about 9 of the 100 mappings lose both and
	# are answered at 9 s). The ladder under longer loss is test_outage's (fake clock).
	local end=$((SECONDS + 6))
	while ((SECONDS < end)) && kill -0 "$BG_PID" 2>/dev/null; do
		sleep 0.2
	done
	"$LAB" netem off
	local rc=0
	wait "$BG_PID" || rc=$?
	BG_PID=
	[[ $rc -eq 0 ]] || fail "not all MAPPED within 150 s: $(grep -v '^mapping ' "$WORK/many.out")"
	local specs=()
	mapfile -t specs < <(sed -n 's/^mapping //p' "$WORK/many.out")
	[[ ${#specs[@]} -eq 100 ]] || fail "${#specs[@]} mappings listed, want 100"
	expect_gateway "${specs[@]}"
	ok "30% loss for the first 6 s: $(head -n1 "$WORK/many.out"); the gateway holds exactly the 100 mappings"
}

case_gateway_address_change() {
	lab_up
	"$LAB" cli "$PCPMAP" map tcp 7024 --json -v >"$WORK/fg.out" 2>"$WORK/fg.err" &
	BG_PID=$!
	wait_rule 7024 5 >/dev/null || fail "no mapping"
	# The gateway is renumbered (its daemon restarted on the new address, keeping its leases) and the
	# client's default route moves to the new address.
	# (Deleting a primary address also deletes the secondaries of its subnet: delete first.)
	"$LAB" gw ip addr del 192.168.77.1/24 dev lan0
	"$LAB" gw ip addr add 192.168.77.254/24 dev lan0
	"$LAB" gw-restart
	"$LAB" cli ip route replace default via 192.168.77.254
	for _ in $(seq 50); do
		grep -q -- '-> 192.168.77.254:5351' "$WORK/fg.err" && break
		sleep 0.1
	done
	grep -q -- '-> 192.168.77.254:5351' "$WORK/fg.err" || fail "no request to the new gateway address"
	sleep 0.5
	[[ $(grep -c '"event":"mapped"' "$WORK/fg.out") -ge 2 ]] || fail "not mapped again through the new address"
	grep -q '"event":"lost"' "$WORK/fg.out" || fail "no lost event for the old gateway"
	local r
	r=$("$LAB" rules)
	[[ $(grep -c 'dport 7024 .*dnat' <<<"$r") -eq 1 ]] || fail "want exactly one DNAT rule for 7024: $r"
	"$LAB" reach tcp 7024 7024 || fail "not reachable"
	expect_gateway_from "$WORK/fg.out"
	kill -TERM "$BG_PID"
	wait "$BG_PID" || true
	BG_PID=
	expect_gone 7024 "the SIGTERM delete"
	ok "default gateway moved to 192.168.77.254: mapping released on the old address and made on the new"
}

elapsed_ms() { # START_NS
	echo $((($(date +%s%N) - $1) / 1000000))
}

case_fallback_pcp_dropped_natpmp() {
	lab_up
	"$LAB" gw-drop-pcp
	local t0
	t0=$(date +%s%N)
	pm map map tcp 7030 --once --json
	local ms
	ms=$(elapsed_ms "$t0")
	[[ $RC -eq 0 ]] || fail "map exited $RC: $(cat "$WORK/map.out")"
	[[ $(json_field "$WORK/map.out" protocol) == NAT-PMP ]] || fail "not carried by NAT-PMP"
	rules_have 7030 || fail "no rule"
	expect_gateway_from "$WORK/map.out"
	"$LAB" reach tcp "$(json_field "$WORK/map.out" external.port)" 7030 || fail "not reachable"
	ok "PCP silently dropped: mapped through NAT-PMP in $ms ms (whole process), reachable"
}

# Warm start on a gateway that drops PCP: the second run asks NAT-PMP only (no PCP packet reaches the
# gateway), the first one's PCP silence is remembered in the gateway cache.
case_warm_pcp_dropped_natpmp() {
	lab_up --upnp no
	"$LAB" gw-drop-pcp
	local cache=$XDG_RUNTIME_DIR/pcpmap/gateways pcp
	pm cold map tcp 7035 --once --json -v
	[[ $RC -eq 0 ]] || fail "cold map exited $RC"
	[[ $(json_field "$WORK/cold.out" protocol) == NAT-PMP ]] || fail "cold map not carried by NAT-PMP"
	grep -q 'proto=natpmp pcp=silent' "$cache" || fail "PCP's silence not remembered: $(cat "$cache")"
	count_start pcp "udp dport 5351 @th,64,8 0x02"
	pm warm map tcp 7036 --once --json -v
	[[ $RC -eq 0 ]] || fail "warm map exited $RC"
	pcp=$(count_read pcp)
	[[ $pcp -eq 0 ]] || fail "the warm start sent $pcp PCP packets"
	grep -q 'using NAT-PMP as remembered (PCP silent there)' "$WORK/warm.out" || fail "cache not used"
	[[ $(json_field "$WORK/warm.out" protocol) == NAT-PMP ]] || fail "warm map not carried by NAT-PMP"
	expect_gateway_from "$WORK/cold.out" "$WORK/warm.out"
	"$LAB" reach tcp "$(json_field "$WORK/warm.out" external.port)" 7036 || fail "not reachable"
	# PCP comes back (the gateway was fixed) while the memory says NAT-PMP: the memory is used until it is
	# an hour old; --no-cache probes and finds PCP at once.
	"$LAB" gw-undrop-pcp
	pm fresh map tcp 7037 --once --json --no-cache
	[[ $RC -eq 0 ]] || fail "--no-cache map exited $RC"
	[[ $(json_field "$WORK/fresh.out" protocol) == PCP ]] || fail "--no-cache did not find PCP"
	grep -q 'proto=natpmp' "$cache" || fail "--no-cache wrote the cache"
	ok "warm start through NAT-PMP sent no PCP packet; --no-cache probes afresh"
}

case_fallback_no_upnp_uses_pcp() {
	lab_up --upnp no
	pm map map udp 7031 --once --json
	[[ $RC -eq 0 ]] || fail "map exited $RC"
	[[ $(json_field "$WORK/map.out" protocol) == PCP ]] || fail "not carried by PCP"
	expect_gateway_from "$WORK/map.out"
	"$LAB" reach udp "$(json_field "$WORK/map.out" external.port)" 7031 || fail "not reachable"
	ok "PCP/NAT-PMP-only gateway: PCP used"
}

case_fallback_natpmp_only() {
	lab_up --upnp no
	"$LAB" gw-drop-pcp
	pm map map tcp 7032 --once --json
	[[ $RC -eq 0 ]] || fail "map exited $RC"
	[[ $(json_field "$WORK/map.out" protocol) == NAT-PMP ]] || fail "not carried by NAT-PMP"
	expect_gateway_from "$WORK/map.out"
	"$LAB" reach tcp "$(json_field "$WORK/map.out" external.port)" 7032 || fail "not reachable"
	ok "NAT-PMP-only gateway: NAT-PMP used"
}

case_fallback_gateway_off() {
	lab_up
	"$LAB" gw-stop
	local t0 ms
	t0=$(date +%s%N)
	pm map map tcp 7033 --once
	ms=$(elapsed_ms "$t0")
	[[ $RC -eq 3 ]] || fail "exit $RC, want 3 (no gateway support): $(cat "$WORK/map.out")"
	grep -q 'tried PCP (port unreachable), NAT-PMP (port unreachable)' "$WORK/map.out" ||
		fail "the error does not say what was tried: $(cat "$WORK/map.out")"
	expect_gateway
	ok "gateway off: '$(head -n1 "$WORK/map.out")' after $ms ms"
}

case_fallback_gateway_silent() {
	lab_up
	"$LAB" gw-block
	local t0 ms
	t0=$(date +%s%N)
	pm map map tcp 7034 --once -t 1500
	ms=$(elapsed_ms "$t0")
	[[ $RC -eq 5 ]] || fail "exit $RC, want 5 (timeout): $(cat "$WORK/map.out")"
	grep -q 'tried PCP (no answer)' "$WORK/map.out" || fail "the error does not say what was tried"
	[[ $ms -ge 1400 && $ms -le 2500 ]] || fail "gave up after $ms ms with --timeout 1500"
	expect_gateway
	ok "gateway silent: error after $ms ms with --timeout 1500: $(head -n1 "$WORK/map.out")"
}

case_fallback_upnp_only() {
	lab_up --natpmp no
	local t0 ms
	t0=$(date +%s%N)
	pm map map tcp 7035 --once --json -g $GW4
	ms=$(elapsed_ms "$t0")
	[[ $RC -eq 0 ]] || fail "map exited $RC: $(cat "$WORK/map.out")"
	[[ $(json_field "$WORK/map.out" protocol) == UPnP ]] || fail "not carried by UPnP"
	local ext
	ext=$(json_field "$WORK/map.out" external.port)
	rules_have "$ext" || fail "no rule"
	expect_gateway_from "$WORK/map.out"
	"$LAB" reach tcp "$ext" 7035 || fail "not reachable"
	ok "UPnP-only gateway (PCP port closed): mapped through UPnP in $ms ms (whole process), reachable"
}

case_pair_every_protocol() {
	lab_up
	local proto p1 p2 out=""
	for proto in natpmp upnp; do
		pm "pair-$proto" map udp 7040 --pair --once --json --protocol "$proto"
		[[ $RC -eq 0 ]] || fail "pair over $proto exited $RC: $(cat "$WORK/pair-$proto.out")"
		p1=$(json_field "$WORK/pair-$proto.out" external.port)
		p2=$(json_field "$WORK/pair-$proto.out" external.port2)
		[[ $((p1 % 2)) -eq 0 && $p2 -eq $((p1 + 1)) ]] || fail "$proto: not an even/odd pair: $p1 $p2"
		"$LAB" reach udp "$p1" 7040 || fail "$proto: RTP port not reachable"
		"$LAB" reach udp "$p2" 7041 || fail "$proto: RTCP port not reachable"
		out="$out $proto $p1/$p2"
		expect_gateway_from "$WORK/pair-$proto.out"
		# Free both halves, with the commands the JSON names, before the next protocol tries the same
		# internal ports.
		local c
		for c in "$(json_field "$WORK/pair-$proto.out" unmap_command)" \
			"$(json_field "$WORK/pair-$proto.out" unmap_command2)"; do
			# shellcheck disable=SC2086
			pm "del-$proto" ${c#pcpmap }
			[[ $RC -eq 0 ]] || fail "'$c' exited $RC: $(cat "$WORK/del-$proto.out")"
		done
		expect_gone "$p1" "$proto's first half"
		expect_gone "$p2" "$proto's second half"
		expect_gateway
	done
	ok "RTP/RTCP pairs emulated with two mappings:$out"
}

case_connections_peer() {
	lab_up
	# A connection of our own: client 192.168.77.2:40100 -> wan 203.0.113.2:8081, held open.
	"$LAB" wan python3 -c '
import socket, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("203.0.113.2", 8081)); s.listen(1); s.settimeout(10)
c, a = s.accept(); time.sleep(8)' &
	BG_PID=$!
	# Wait for the listener and then for the connection, not a fixed time: labs run in parallel on a busy
	# machine, where starting python in a namespace can take longer than any fixed pause.
	local i
	for ((i = 0; i < 100; i++)); do
		[[ -n $("$LAB" wan ss -Htln 'sport = :8081') ]] && break
		sleep 0.05
	done
	"$LAB" cli python3 -c '
import socket, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("192.168.77.2", 40100)); s.connect(("203.0.113.2", 8081)); time.sleep(6)' &
	local conn_pid=$!
	for ((i = 0; i < 100; i++)); do
		[[ -n $("$LAB" cli ss -Htn state established 'sport = :40100') ]] && break
		sleep 0.05
	done
	pm list connections tcp -4 --json
	[[ $RC -eq 0 ]] || fail "connections exited $RC"
	local n
	n=$(python3 - "$WORK/list.out" <<'PY'
import json, sys
for i, line in enumerate(l for l in open(sys.argv[1]) if l.startswith('{')):
    d = json.loads(line)
    if d.get("local", {}).get("port") == 40100 and d.get("remote", {}).get("port") == 8081:
        print(d.get("index", i + 1)); break
PY
)
	[[ -n $n ]] || fail "our connection is not listed: $(cat "$WORK/list.out")"
	pm pick connections tcp -4 --pick "$n" --once --json -g $GW4
	[[ $RC -eq 0 ]] || fail "--pick $n exited $RC: $(cat "$WORK/pick.out")"
	[[ $(json_field "$WORK/pick.out" kind) == peer ]] || fail "not a PEER mapping"
	local post
	post=$("$LAB" gw nft list chain inet filter postrouting_miniupnpd)
	grep -qw 40100 <<<"$post" || fail "no PEER rule for port 40100 on the gateway"
	expect_gateway # a PEER mapping opens no inbound port
	wait "$conn_pid" 2>/dev/null || true
	ok "connection #$n (40100 -> 203.0.113.2:8081) listed; its PEER mapping is on the gateway"
}

# The informational commands, human and JSON (parsed), and Ctrl-C (SIGINT) in the foreground mode.
case_cli_outputs() {
	lab_up
	pm probe probe --json -g $GW4
	[[ $RC -eq 0 ]] || fail "probe exited $RC"
	python3 - "$WORK/probe.out" <<'PY' || fail "probe JSON: $(cat "$WORK/probe.out")"
import json, sys
d = json.loads(open(sys.argv[1]).readline())
assert d["event"] == "probe" and d["chosen"] == "PCP" and d["external_address"] == "203.0.113.1", d
for k in ("pcp", "natpmp", "upnp"):
    assert d["protocols"][k]["tried"] and d["protocols"][k]["answers"], (k, d)
assert d["protocols"]["pcp"]["version"] == 2 and not d["external_is_private"]
PY
	pm probe-h probe -g $GW4
	grep -q '^  PCP      yes  version 2' "$WORK/probe-h.out" || fail "probe table: $(cat "$WORK/probe-h.out")"
	grep -q '^pcpmap uses PCP; external address 203.0.113.1' "$WORK/probe-h.out" || fail "probe summary"
	pm ext external-address --json -g $GW4
	python3 -c 'import json,sys; d=json.loads(open(sys.argv[1]).readline()); assert d["external_address"]=="203.0.113.1" and d["protocol"]=="PCP", d' "$WORK/ext.out" ||
		fail "external-address JSON: $(cat "$WORK/ext.out")"
	pm ext-h external-address -g $GW4
	[[ $(head -n1 "$WORK/ext-h.out") == 203.0.113.1 ]] || fail "external-address: $(cat "$WORK/ext-h.out")"
	pm ann announce --json -g $GW4
	python3 -c 'import json,sys; d=json.loads(open(sys.argv[1]).readline()); assert d["event"]=="announce" and d["version"]==2 and d["rtt_us"]>0, d' "$WORK/ann.out" ||
		fail "announce JSON: $(cat "$WORK/ann.out")"
	# Foreground map, then Ctrl-C: the mapping leaves the gateway and the tool exits 0.
	"$LAB" cli "$PCPMAP" map tcp 7060 --json >"$WORK/fg.out" 2>&1 &
	BG_PID=$!
	wait_rule 7060 5 >/dev/null || fail "no mapping"
	"$LAB" cli pkill -INT -f 'cli/pcpmap map tcp 7060'
	local rc=0
	wait "$BG_PID" || rc=$?
	BG_PID=
	[[ $rc -eq 0 ]] || fail "Ctrl-C exit $rc"
	grep -q '"event":"deleted"' "$WORK/fg.out" || fail "no deleted event after Ctrl-C: $(cat "$WORK/fg.out")"
	! rules_have 7060 || fail "rule still present after Ctrl-C"
	expect_gone 7060 "the Ctrl-C delete"
	expect_gateway
	ok "probe, external-address, announce: JSON parsed and tables checked; Ctrl-C deleted the mapping"
}

fn=case_$CASE
declare -F "$fn" >/dev/null || { echo "unknown case $CASE" >&2; exit 2; }
"$fn"
