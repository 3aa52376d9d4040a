#!/usr/bin/env bash
# Interop cases for the UPnP IGD backend: the pcpmap tool against a real miniupnpd in network namespaces
# (tests/interop/lab.sh), with the gateway in UPnP-only mode (lab.sh up --natpmp no: the IPv4 PCP/NAT-PMP
# port is closed). Usage: cases-upnp.sh CASE (root), or cases-upnp.sh list. Each case builds its own lab
# named pmu-CASE, proves the result on the gateway (nft rules) and end to end (traffic from the wan
# namespace), and always tears the lab down. Exit 0 pass, 1 fail, 77 skip (no namespaces, no upnpc).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
LAB=$HERE/lab.sh
CASES="map_tcp map_udp sigterm_delete presence_check gateway_restart conflict refused ipv6_pinhole no_gateway
silent_gateway time_to_mapping unmap once_unmap_hint warm_start"
if [[ ${1-} == list ]]; then
	echo "$CASES"
	exit 0
fi
CASE_PREFIX=pmu
CASE_SCRIPT=cases-upnp.sh
LAB_UP_ARGS=(--natpmp no)
# shellcheck source=tests/interop/common.sh
source "$HERE/common.sh"
CLI4=192.168.77.2
CLI6=fd77:77::2
ROOTDESC=http://192.168.77.1:5000/rootDesc.xml
BG_PID=

skip() {
	echo "SKIP [$CASE]: $*"
	exit 77
}

need_upnpc() {
	command -v upnpc >/dev/null 2>&1 || skip "upnpc (miniupnpc) not installed"
}

# Runs pcpmap in the client namespace with UPnP only; stdout in $WORK/NAME.out, stderr in NAME.err,
# exit code in $RC (unlike common.sh's pm, the trace stays apart from the JSON).
pm() {
	local name=$1
	shift
	RC=0
	"$LAB" cli "$PCPMAP" "$@" --protocol upnp >"$WORK/$name.out" 2>"$WORK/$name.err" || RC=$?
}

# Waits (up to $2 tenths of a second) until FILE holds a line matching the extended regex $3.
wait_for() {
	local file=$1 tenths=$2 re=$3 i
	for ((i = 0; i < tenths; i++)); do
		grep -Eq -- "$re" "$file" 2>/dev/null && return 0
		sleep 0.1
	done
	return 1
}

# Starts `pcpmap map ...` in the foreground (in the background of this script), JSON on NAME.out and the
# trace on NAME.err, and waits until it reports the mapping.
pm_fg() {
	local name=$1
	shift
	"$LAB" cli "$PCPMAP" map "$@" --protocol upnp --json -v >"$WORK/$name.out" 2>"$WORK/$name.err" &
	BG_PID=$!
	wait_for "$WORK/$name.out" 100 '"event":"mapped"' || fail "no mapping within 10 s"
}

stop_fg() {
	kill -TERM "$BG_PID"
	local rc=0
	wait "$BG_PID" || rc=$?
	BG_PID=
	[[ $rc -eq 0 ]] || fail "pcpmap exited $rc after SIGTERM"
}

case_map_tcp() {
	lab_up
	pm map map tcp 7100 --once --json -v
	[[ $RC -eq 0 ]] || fail "map exited $RC"
	local ext addr
	[[ $(json_field "$WORK/map.out" protocol) == UPnP ]] || fail "not carried by UPnP"
	ext=$(json_field "$WORK/map.out" external.port)
	addr=$(json_field "$WORK/map.out" external.address)
	[[ $addr == "$EXT4" ]] || fail "external address $addr, want $EXT4"
	[[ $(json_field "$WORK/map.out" internal.address) == "$CLI4" ]] || fail "internal address is not $CLI4"
	rules_have "$ext" || fail "no gateway rule for port $ext"
	expect_gateway_from "$WORK/map.out"
	"$LAB" reach tcp "$ext" 7100 || fail "TCP to $EXT4:$ext did not reach the client"
	# Decoded trace: every IGD action with its outcome and duration, no datagram bytes.
	grep -Eq 'UPnP Add(Any)?PortMapping TCP 7100->192\.168\.77\.2:7100 lease 7200 -> OK .*\([0-9.]+ ms\)' \
		"$WORK/map.err" || fail "no decoded AddPortMapping trace line"
	grep -q 'UPnP (0 bytes)' "$WORK/map.err" || fail "trace lines carry bytes"
	ok "TCP 7100 -> $addr:$ext via UPnP, rule present, reachable from the wan"
}

case_map_udp() {
	lab_up
	pm map map udp 7101 -e 17101 --once --json
	[[ $RC -eq 0 ]] || fail "map exited $RC"
	local ext
	ext=$(json_field "$WORK/map.out" external.port)
	[[ $ext == 17101 ]] || fail "suggested external port 17101 not granted (got $ext)"
	rules_have "$ext" || fail "no gateway rule for port $ext"
	expect_gateway_from "$WORK/map.out"
	"$LAB" reach udp "$ext" 7101 || fail "UDP to $EXT4:$ext did not reach the client"
	ok "UDP 7101 -> $EXT4:$ext (suggested port honoured), reachable"
}

case_sigterm_delete() {
	lab_up
	pm_fg fg tcp 7102
	local ext
	ext=$(json_field "$WORK/fg.out" external.port)
	rules_have "$ext" || fail "no rule while the tool runs"
	expect_gateway_from "$WORK/fg.out"
	stop_fg
	grep -q "UPnP DeletePortMapping TCP $ext -> OK" "$WORK/fg.err" || fail "no DeletePortMapping on SIGTERM"
	! rules_have "$ext" || fail "rule still present after SIGTERM"
	expect_gone "$ext" "the SIGTERM delete"
	expect_gateway
	ok "mapping $ext deleted on SIGTERM (DeletePortMapping), rule gone"
}

case_presence_check() {
	need_upnpc
	lab_up
	# Lease 8 s: the first renewal (the presence check) comes after about 4 s.
	pm_fg fg tcp 7103 --lifetime 8
	local ext
	ext=$(json_field "$WORK/fg.out" external.port)
	rules_have "$ext" || fail "no rule after map"
	# Another control point removes the mapping behind our back.
	"$LAB" cli upnpc -i -d "$ext" TCP >"$WORK/upnpc.out" 2>&1 || fail "upnpc -d failed: $(cat "$WORK/upnpc.out")"
	! rules_have "$ext" || fail "upnpc did not remove the rule"
	# The renewal's presence check finds it missing (the first 714 was the check before the first add).
	wait_for "$WORK/fg.err" 120 'had lost it \(presence check\): re-added' ||
		fail "no presence check found the mapping missing within 12 s"
	[[ $(grep -c "GetSpecificPortMappingEntry TCP $ext -> 714" "$WORK/fg.err") -ge 2 ]] ||
		fail "the renewal did not see 714"
	grep -q "AddPortMapping TCP $ext->$CLI4:7103 lease 8 -> OK" "$WORK/fg.err" || fail "no re-add in the trace"
	rules_have "$ext" || fail "rule not re-added"
	"$LAB" reach tcp "$ext" 7103 || fail "re-added mapping not reachable"
	# The engine saw a plain renewal: no extra event.
	! grep -Eq '"event":"(lost|changed|failed)"' "$WORK/fg.out" || fail "the re-add surfaced as an event"
	expect_gateway_from "$WORK/fg.out"
	stop_fg
	! rules_have "$ext" || fail "rule still present after SIGTERM"
	expect_gone "$ext" "the SIGTERM delete"
	expect_gateway
	ok "mapping deleted by upnpc -d was found missing (714) at the renewal, re-added and reachable"
}

case_gateway_restart() {
	lab_up
	pm_fg fg tcp 7104 --lifetime 8
	local ext
	ext=$(json_field "$WORK/fg.out" external.port)
	# Full state loss: miniupnpd restarts with its chains flushed and its lease file gone.
	# gw-restart --flush fails unless the flush left no rule (checked before miniupnpd is back).
	"$LAB" gw-restart --flush >/dev/null || fail "the restart did not flush the gateway's rules"
	wait_for "$WORK/fg.err" 120 'had lost it \(presence check\): re-added' ||
		fail "no presence check found the mapping missing within 12 s"
	grep -q "AddPortMapping TCP $ext->$CLI4:7104 lease 8 -> OK" "$WORK/fg.err" || fail "no re-add in the trace"
	rules_have "$ext" || fail "rule not back after the restart"
	"$LAB" reach tcp "$ext" 7104 || fail "not reachable after the restart"
	expect_gateway_from "$WORK/fg.out"
	stop_fg
	expect_gone "$ext" "the SIGTERM delete"
	expect_gateway
	ok "mapping $ext re-created after a gateway restart with state loss"
}

case_conflict() {
	lab_up
	pm a map tcp 7110 -e 17110 --once --json
	[[ $RC -eq 0 && $(json_field "$WORK/a.out" external.port) == 17110 ]] || fail "first mapping did not get 17110"
	# Another application of this host wants the same external port: an IGD overwrites a mapping of the
	# same internal client silently, so pcpmap checks first and moves on instead.
	pm b map tcp 7111 -e 17110 --once --json -v
	[[ $RC -eq 0 ]] || fail "second mapping exited $RC"
	local ext
	ext=$(json_field "$WORK/b.out" external.port)
	[[ $ext != 17110 ]] || fail "the second mapping took 17110 from the first"
	grep -q "GetSpecificPortMappingEntry TCP 17110 -> $CLI4:7110" "$WORK/b.err" || fail "no ownership check in the trace"
	"$LAB" reach tcp 17110 7110 || fail "the first mapping was overwritten"
	"$LAB" reach tcp "$ext" 7111 || fail "the second mapping ($ext) is not reachable"
	# Pinned to the taken port: refused (718 ConflictInMappingEntry, EADDRINUSE, exit 4), nothing changed.
	pm c map tcp 7112 -e 17110 --prefer-failure --once --json
	[[ $RC -eq 4 ]] || fail "pinned to a taken port: exit $RC, want 4"
	grep -q '"errno":98,.*"result_code":718,"result":"ConflictInMappingEntry"' "$WORK/c.out" ||
		fail "error is not EADDRINUSE/718: $(cat "$WORK/c.out")"
	"$LAB" reach tcp 17110 7110 || fail "the pinned attempt disturbed the first mapping"
	expect_gateway_from "$WORK/a.out" "$WORK/b.out"
	ok "17110 kept by its owner, the second mapping moved to $ext, a pinned request refused with 718"
}

case_refused() {
	lab_up
	# secure_mode=yes: miniupnpd maps only to the requesting host. THIRD_PARTY over UPnP is refused.
	pm tp map tcp 7113 --third-party 192.168.77.3 --once --json -v
	[[ $RC -eq 4 ]] || fail "third-party mapping: exit $RC, want 4 (refused)"
	grep -q '"errno":13,.*"result_code":606,"result":"ActionNotAuthorized"' "$WORK/tp.out" ||
		fail "error is not EACCES/606: $(cat "$WORK/tp.out")"
	grep -q 'UPnP Add.*PortMapping TCP 7113->192.168.77.3:7113 lease 7200 -> 606 ActionNotAuthorized' "$WORK/tp.err" ||
		fail "no decoded refusal in the trace"
	# A PEER mapping has no UPnP equivalent: refused for good before anything is sent.
	pm peer peer tcp 40000 203.0.113.2 443 --once --json
	[[ $RC -eq 3 ]] || fail "PEER over UPnP: exit $RC, want 3 (not supported)"
	grep -q '"errno":95' "$WORK/peer.out" || fail "PEER error is not EOPNOTSUPP: $(cat "$WORK/peer.out")"
	! rules_have 7113 || fail "a refused mapping left a rule"
	expect_gateway
	ok "THIRD_PARTY refused with 606 (EACCES, exit 4); PEER refused with EOPNOTSUPP (exit 3)"
}

case_ipv6_pinhole() {
	lab_up
	if ! "$LAB" cli python3 -c "import urllib.request,sys; sys.exit(0 if b'WANIPv6FirewallControl' in urllib.request.urlopen('$ROOTDESC', timeout=3).read() else 1)"; then
		skip "this miniupnpd offers no WANIPv6FirewallControl"
	fi
	pm map map tcp 7105 -6 --once --json -v
	[[ $RC -eq 0 ]] || fail "map -6 exited $RC"
	local ext addr
	ext=$(json_field "$WORK/map.out" external.port)
	addr=$(json_field "$WORK/map.out" external.address)
	[[ $(json_field "$WORK/map.out" protocol) == UPnP ]] || fail "not carried by UPnP"
	[[ $addr == "$CLI6" ]] || fail "pinhole address $addr, want the client's $CLI6"
	grep -q 'UPnP AddPinhole TCP \[fd77:77::2\]:7105 lease 7200 -> OK id' "$WORK/map.err" || fail "no AddPinhole trace"
	"$LAB" reach tcp "$ext" 7105 -6 || fail "TCP over IPv6 through the pinhole did not reach the client"
	rules_have "$ext" || fail "no pinhole rule for port $ext on the gateway"
	# Only its maker can name a pinhole: the tool says so instead of printing an unmap command.
	[[ $(json_field "$WORK/map.out" unmap_command) == None ]] || fail "a UPnP pinhole got an unmap_command"
	# A foreground pinhole is deleted on SIGTERM.
	pm_fg fg tcp 7106 -6
	"$LAB" reach tcp 7106 7106 -6 || fail "second pinhole not reachable"
	stop_fg
	grep -q 'UPnP DeletePinhole .* -> OK' "$WORK/fg.err" || fail "no DeletePinhole on SIGTERM"
	! "$LAB" reach tcp 7106 7106 -6 2>/dev/null || fail "pinhole still open after SIGTERM"
	expect_gone 7106 "the SIGTERM DeletePinhole"
	rules_have "$ext" || fail "the --once pinhole $ext went too"
	expect_gateway # pinholes only, no IPv4 port mapping
	ok "IPv6 pinholes [$addr]:$ext and :7106 reachable through WANIPv6FirewallControl; DeletePinhole closes it"
}

case_no_gateway() {
	lab_up
	"$LAB" gw-stop
	local t0 ms rc=0
	# The gateway is up but runs no SSDP listener: the unicast M-SEARCH draws ICMP port unreachable.
	t0=$(date +%s%N)
	"$LAB" cli "$PCPMAP" map tcp 7107 --once --json --protocol upnp >"$WORK/map.out" 2>"$WORK/map.err" || rc=$?
	ms=$((($(date +%s%N) - t0) / 1000000))
	[[ $rc -eq 3 ]] || fail "no SSDP listener: exit $rc, want 3: $(cat "$WORK/map.out" "$WORK/map.err")"
	grep -q '"errno":111' "$WORK/map.out" || fail "error is not ECONNREFUSED: $(cat "$WORK/map.out")"
	[[ $ms -lt 500 ]] || fail "reported the failure after $ms ms"
	expect_gateway
	ok "gateway without UPnP: ECONNREFUSED reported after $ms ms"
}

case_silent_gateway() {
	lab_up
	"$LAB" gw-block
	local t0 ms rc=0
	t0=$(date +%s%N)
	"$LAB" cli "$PCPMAP" map tcp 7108 --once --json --protocol upnp -t 5000 >"$WORK/map.out" 2>"$WORK/map.err" || rc=$?
	ms=$((($(date +%s%N) - t0) / 1000000))
	[[ $rc -eq 5 ]] || fail "no IGD answering: exit $rc, want 5 (timeout): $(cat "$WORK/map.out" "$WORK/map.err")"
	grep -q '"errno":110' "$WORK/map.out" || fail "error is not ETIMEDOUT: $(cat "$WORK/map.out")"
	# Discovery listens 100 + 400 + 1500 ms, then gives up.
	[[ $ms -ge 1900 && $ms -lt 3500 ]] || fail "reported the failure after $ms ms, want about 2 s"
	expect_gateway
	ok "no IGD answering: ETIMEDOUT reported after $ms ms (discovery windows 100+400+1500 ms)"
}

# `pcpmap unmap --protocol upnp` finds the IGD, deletes the mapping it names (by external port) and says so;
# a delete that finds nothing to delete is an error, never "deleted".
case_unmap() {
	lab_up
	pm a map tcp 9550 --once --json
	[[ $RC -eq 0 ]] || fail "map exited $RC"
	pm b map udp 9551 -e 19551 --once --json
	[[ $RC -eq 0 ]] || fail "map -e 19551 exited $RC"
	expect_gateway_from "$WORK/a.out" "$WORK/b.out"
	pm del unmap tcp 9550 -v
	[[ $RC -eq 0 ]] || fail "unmap exited $RC: $(cat "$WORK/del.out" "$WORK/del.err")"
	grep -q '^deleted tcp 9550' "$WORK/del.out" || fail "no 'deleted' line: $(cat "$WORK/del.out")"
	grep -q 'UPnP DeletePortMapping TCP 9550 -> OK' "$WORK/del.err" || fail "no DeletePortMapping in the trace"
	expect_gone 9550 "unmap tcp 9550"
	expect_gateway_from "$WORK/b.out"
	# Nothing left at 9550: an error that says so, exit 4, and nothing else touched.
	pm again unmap tcp 9550
	[[ $RC -eq 4 ]] || fail "deleting a mapping that is not there exited $RC, want 4: $(cat "$WORK/again.out")"
	grep -qi '^failed tcp 9550 .*nothing was deleted' "$WORK/again.out" ||
		fail "the error does not say nothing was deleted: $(cat "$WORK/again.out")"
	grep -q 'UPnP finds a mapping by its external port' "$WORK/again.err" ||
		fail "the error does not say what to try: $(cat "$WORK/again.err")"
	# UPnP names mappings by external port: without -e the one at 19551 is not found, with it it goes.
	pm wrong unmap udp 9551 --json
	[[ $RC -eq 4 ]] || fail "unmap udp 9551 (external port 19551) exited $RC, want 4"
	grep -q '"event":"failed"' "$WORK/wrong.out" || fail "no failed JSON object: $(cat "$WORK/wrong.out")"
	expect_gateway_from "$WORK/b.out"
	pm right unmap udp 9551 -e 19551
	[[ $RC -eq 0 ]] || fail "unmap udp 9551 -e 19551 exited $RC: $(cat "$WORK/right.out")"
	expect_gone 19551 "unmap udp 9551 -e 19551"
	expect_gateway
	ok "UPnP unmap deleted 9550 and 19551 (rules gone); nothing to delete is exit 4: $(head -n1 "$WORK/again.out")"
}

# `map --once` over UPnP prints the command that deletes the mapping (and puts it in its JSON, without a
# nonce: UPnP has none), and that command deletes exactly that mapping.
case_once_unmap_hint() {
	lab_up
	pm a map tcp 9540 --once -g $GW4
	[[ $RC -eq 0 ]] || fail "map exited $RC"
	pm b map tcp 9541 -e 19541 --once --json
	[[ $RC -eq 0 ]] || fail "map --json exited $RC"
	expect_gateway_from "$WORK/a.out" "$WORK/b.out"
	local cmd jcmd
	cmd=$(sed -n 's/^to delete it: pcpmap //p' "$WORK/a.out")
	[[ -n $cmd ]] || fail "no 'to delete it' line: $(cat "$WORK/a.out")"
	jcmd=$(json_field "$WORK/b.out" unmap_command 2>/dev/null) || fail "no unmap_command in $(cat "$WORK/b.out")"
	! grep -q '"nonce"' "$WORK/b.out" || fail "UPnP mapping JSON carries a nonce: $(cat "$WORK/b.out")"
	local rc=0
	# shellcheck disable=SC2086
	"$LAB" cli "$PCPMAP" $cmd >"$WORK/del-a.out" 2>&1 || rc=$?
	[[ $rc -eq 0 ]] || fail "'$cmd' exited $rc: $(cat "$WORK/del-a.out")"
	expect_gone 9540 "'$cmd'"
	expect_gateway_from "$WORK/b.out"
	rc=0
	# shellcheck disable=SC2086
	"$LAB" cli "$PCPMAP" ${jcmd#pcpmap } >"$WORK/del-b.out" 2>&1 || rc=$?
	[[ $rc -eq 0 ]] || fail "'$jcmd' exited $rc: $(cat "$WORK/del-b.out")"
	expect_gone 19541 "'$jcmd'"
	expect_gateway
	ok "printed '$cmd' and JSON '$jcmd' each deleted their mapping"
}

median() {
	sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'
}

case_time_to_mapping() {
	need_upnpc
	lab_up
	local i t0 t1 ours=() theirs=() disc=() d
	for i in 1 2 3 4 5; do
		t0=$(date +%s%N)
		pm m$i map tcp $((7200 + i)) --once --json -v --no-cache # cold: each run discovers
		t1=$(date +%s%N)
		[[ $RC -eq 0 ]] || fail "run $i exited $RC"
		ours+=($(((t1 - t0) / 1000)))
		d=$(grep -o 'UPnP discovery: .* -> OK ([0-9.]* ms' "$WORK/m$i.err" | grep -o '([0-9.]* ms' | tr -d '( ms')
		disc+=("$d")
	done
	for i in 1 2 3; do
		t0=$(date +%s%N)
		"$LAB" cli upnpc -i -a "$CLI4" $((7300 + i)) $((7300 + i)) TCP >"$WORK/upnpc$i.out" 2>&1 ||
			fail "upnpc -a failed: $(cat "$WORK/upnpc$i.out")"
		t1=$(date +%s%N)
		grep -q 'is redirected to internal' "$WORK/upnpc$i.out" || fail "upnpc did not map: $(cat "$WORK/upnpc$i.out")"
		theirs+=($(((t1 - t0) / 1000)))
	done
	local o u dm
	o=$(printf '%s\n' "${ours[@]}" | median)
	u=$(printf '%s\n' "${theirs[@]}" | median)
	dm=$(printf '%s\n' "${disc[@]}" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
	echo "time to a UPnP mapping (process start to exit, median): pcpmap $((o / 1000)).$(((o % 1000) / 100)) ms" \
		"(runs: ${ours[*]} us), upnpc -i -a $((u / 1000)).$(((u % 1000) / 100)) ms (runs: ${theirs[*]} us)"
	echo "pcpmap discovery time (median): $dm ms (runs: ${disc[*]} ms)"
	# Five of pcpmap's and three of upnpc's, no more, no less.
	expect_gateway_from -m "tcp 7301 $CLI4:7301" -m "tcp 7302 $CLI4:7302" -m "tcp 7303 $CLI4:7303" \
		"$WORK"/m[1-5].out
	[[ $o -lt $u ]] || fail "pcpmap ($o us) not faster than upnpc ($u us)"
	[[ $o -lt 1000000 ]] || fail "pcpmap took $o us: discovery waited for a full window"
	ok "pcpmap $((o / 1000)) ms vs upnpc $((u / 1000)) ms (discovery $dm ms)"
}

# Warm start: the second `map --once` uses the IGD the first one found (gateway cache) and sends no SSDP; a
# stale URL in the cache is tried once, refuted, and the IGD discovered again.
case_warm_start() {
	lab_up
	local cache=$XDG_RUNTIME_DIR/pcpmap/gateways cold warm ext
	count_start ssdp "udp dport 1900"
	RC=0
	"$LAB" cli "$PCPMAP" map tcp 7400 --once --json -v >"$WORK/cold.out" 2>"$WORK/cold.err" || RC=$?
	[[ $RC -eq 0 ]] || fail "cold map exited $RC"
	cold=$(count_read ssdp)
	[[ $cold -gt 0 ]] || fail "the cold start sent no SSDP (counter $cold): the counter does not count"
	grep -q 'UPnP discovery: IGD' "$WORK/cold.err" || fail "the cold start did not discover the IGD"
	[[ -f $cache ]] || fail "no gateway cache written"
	[[ $(stat -c %a "$cache") == 600 ]] || fail "gateway cache not mode 0600"
	grep -q 'proto=upnp pcp=refused .*url=http://192.168.77.1:5000/' "$cache" ||
		fail "gateway cache lacks the IGD: $(cat "$cache")"
	count_start ssdp "udp dport 1900"
	"$LAB" cli "$PCPMAP" map tcp 7401 --once --json -v >"$WORK/warm.out" 2>"$WORK/warm.err" || RC=$?
	[[ $RC -eq 0 ]] || fail "warm map exited $RC"
	warm=$(count_read ssdp)
	[[ $warm -eq 0 ]] || fail "the warm start sent $warm SSDP packets"
	grep -q 'using UPnP as remembered' "$WORK/warm.err" || fail "the warm start did not use the cache"
	if grep -q 'UPnP discovery' "$WORK/warm.err"; then fail "the warm start discovered"; fi
	if grep -q -- '-> 192.168.77.1:5351' "$WORK/warm.err"; then fail "the warm start asked PCP or NAT-PMP"; fi
	[[ $(json_field "$WORK/warm.out" protocol) == UPnP ]] || fail "warm mapping not carried by UPnP"
	ext=$(json_field "$WORK/warm.out" external.port)
	rules_have "$ext" || fail "no gateway rule for port $ext"
	"$LAB" reach tcp "$ext" 7401 || fail "TCP to $EXT4:$ext did not reach the client"
	# A stale control URL (an IGD restarted on another HTTP port): refuted by its first request, the same
	# run discovers and maps, and the cache is corrected.
	sed -i 's|url=http://192.168.77.1:5000/|url=http://192.168.77.1:5999/|' "$cache"
	"$LAB" cli "$PCPMAP" map tcp 7402 --once --json -v >"$WORK/stale.out" 2>"$WORK/stale.err" || RC=$?
	[[ $RC -eq 0 ]] || fail "map with a stale cache exited $RC"
	grep -q 'remembered IGD http://192.168.77.1:5999/.* did not serve the request' "$WORK/stale.err" ||
		fail "the stale URL was not tried and refuted"
	grep -q 'UPnP discovery: IGD' "$WORK/stale.err" || fail "no discovery after the stale URL"
	grep -q 'url=http://192.168.77.1:5000/' "$cache" || fail "cache not corrected: $(cat "$cache")"
	expect_gateway_from "$WORK/cold.out" "$WORK/warm.out" "$WORK/stale.out"
	ok "cold start $cold SSDP packets, warm start none; a stale IGD URL is refuted and rediscovered"
}

fn=case_$CASE
declare -F "$fn" >/dev/null || {
	echo "unknown case $CASE (cases: $CASES)" >&2
	exit 2
}
"$fn"
