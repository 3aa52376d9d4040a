#!/usr/bin/env bash
# Interop cases of the compat libraries: the example applications tests/compat/natpmp_app.c and upnpc_app.c,
# each built twice from the same source (tests/compat/build-both.sh: real Debian library, pcpmap's library
# through pkg-config), run in the lab's client namespace against the real miniupnpd (tests/interop/lab.sh).
# The gateway's own log says which protocol made each mapping; traffic from the wan namespace proves it works;
# the rules prove the deletion.
# Usage: cases-compat.sh CASE   (root; PCPMAP_BUILD_DIR names the build tree)
# Cases: natpmp_real natpmp_ours natpmp_no_server natpmp_address_creates_nothing natpmp_address_pcp_only
#        natpmp_delete_natpmp_made natpmp_remove_all lease_kept upnpc_real upnpc_ours upnpc_third_party
#        upnpc_pinhole upnpc_upnp_only upnpc_pcp_only
# Exit 0 pass, 1 fail, 77 skip (no namespaces here).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SRC=$(cd "$HERE/../.." && pwd)
CASE_PREFIX=pmc
CASE_SCRIPT=cases-compat.sh
# shellcheck source=tests/interop/common.sh
source "$HERE/common.sh"
BIN=$PCPMAP_BUILD_DIR/tests/compat-apps # build_apps
CLI4=192.168.77.2
GWLOG=$LAB_STATE/miniupnpd.log
LEASES=$LAB_STATE/leases
BG_PID=
BG_PID2=

# A second background client (lease_kept runs two at once); common.sh stops BG_PID itself.
case_cleanup() {
	if [[ -n ${BG_PID2:-} ]]; then
		kill "$BG_PID2" 2>/dev/null || true
		wait "$BG_PID2" 2>/dev/null || true
	fi
}

# The four application binaries, built once per build tree and shared by the cases (they run in parallel):
# rebuilt under a lock when the libraries, the applications or build-both.sh changed since.
build_apps() {
	local dir=$BIN
	mkdir -p "$dir"
	exec {lock}>"$dir.lock"
	flock "$lock"
	if [[ ! -f $dir/built ]] || [[ -n $(find "$PCPMAP_BUILD_DIR" "$SRC/tests/compat" -path "$dir" -prune -o \
		\( -name '*.so*' -o -name '*.pc' -o -name '*_app.c' -o -name build-both.sh \) \
		-newer "$dir/built" -print -quit) ]]; then
		rm -f "$dir/built"
		bash "$SRC/tests/compat/build-both.sh" "$SRC" "$PCPMAP_BUILD_DIR" "$dir" >"$WORK/build.out" 2>&1 || {
			exec {lock}>&-
			cat "$WORK/build.out"
			fail "build-both.sh failed"
		}
		touch "$dir/built"
	fi
	exec {lock}>&-
}

# Runs an application in the client namespace: app NAME BINARY ARGS...; stdout+stderr in $WORK/NAME.out, $RC.
app() {
	local name=$1
	shift
	RC=0
	"$LAB" cli env PCPMAP_DEBUG="${DEBUG:-}" "$@" >"$WORK/$name.out" 2>&1 || RC=$?
}

# The same in the background (BG_PID), for applications that hold a mapping until a file appears.
app_bg() {
	local name=$1
	shift
	"$LAB" cli env PCPMAP_DEBUG="${DEBUG:-}" "$@" >"$WORK/$name.out" 2>&1 &
	BG_PID=$!
}

app_bg_wait() { # expected exit code
	local rc=0
	wait "$BG_PID" || rc=$?
	BG_PID=
	[[ $rc -eq $1 ]] || fail "application exited $rc, want $1"
}

# What miniupnpd logs for a mapping made through each protocol.
proof_line() { # PROTOCOL PROTO PORT (tcp/udp)
	local up=${2^^}
	case $1 in
	PCP) echo "PCP MAP: added mapping $up $3->$CLI4:$3" ;;
	NAT-PMP) echo "NAT-PMP port mapping request : $3->$CLI4:$3 $2" ;;
	UPnP) echo "AddPortMapping: ext port $3 to $CLI4:$3 protocol $up" ;;
	esac
}

# natpmp_app, one build: public address, a held mapping (renewed by re-asking, reachable, deleted in the same
# session), a mapping deleted by a later process, a refusal. Protocol: what the build must speak.
natpmp_case() { # BUILD PROTOCOL
	local b=$1 proto=$2 bin=$BIN/natpmp_app.$1
	lab_up
	build_apps
	"$LAB" capture-start "$WORK/cap.pcapng" >/dev/null

	app_bg held "$bin" map tcp 7100 7100 120 "$WORK/stop"
	wait_line "$WORK/held.out" "mapped TCP 7100 -> public 7100 lifetime 120" 15
	has "$WORK/held.out" "public address $EXT4"
	gw_log_has "$(proof_line "$proto" tcp 7100)"
	if [[ $b == ours ]]; then
		# The address from NAT-PMP's address request (it creates nothing); the mapping over PCP.
		has "$WORK/held.out" "public address $EXT4 via NAT-PMP"
		has "$WORK/held.out" "TCP 7100 -> $EXT4:7100 lifetime 120 s mapped via PCP"
	fi
	rules_have "dport 7100" || fail "no gateway rule for port 7100"
	"$LAB" reach tcp 7100 7100 >/dev/null || fail "TCP to $EXT4:7100 did not reach the client"
	# The application asks again after 2 s, as libnatpmp users renew.
	wait_line "$WORK/held.out" "renewed TCP 7100 -> public 7100" 10
	"$LAB" reach tcp 7100 7100 >/dev/null || fail "TCP 7100 unreachable after the renewal"
	touch "$WORK/stop"
	app_bg_wait 0
	has "$WORK/held.out" "deleted TCP 7100"
	wait_rule_gone 7100
	ok "$b build: TCP 7100 via $proto, reachable, renewed, deleted in the session"

	app once "$bin" map udp 7101 7101 120
	[[ $RC -eq 0 ]] || fail "map udp 7101 exited $RC"
	gw_log_has "$(proof_line "$proto" udp 7101)"
	rules_have "dport 7101" || fail "no gateway rule for port 7101"
	"$LAB" reach udp 7101 7101 >/dev/null || fail "UDP to $EXT4:7101 did not reach the client"
	app unmap "$bin" unmap udp 7101
	[[ $RC -eq 0 ]] || fail "unmap udp 7101 exited $RC"
	has "$WORK/unmap.out" "deleted UDP 7101"
	wait_rule_gone 7101
	ok "$b build: UDP 7101 mapped by one process, deleted by the next"

	# miniupnpd's permission rules deny internal ports below 1024: NOT_AUTHORIZED in both protocols.
	app refused "$bin" map tcp 80 80 120
	[[ $RC -eq 2 ]] || fail "map tcp 80 exited $RC, want 2"
	has "$WORK/refused.out" "map failed -51 "
	has "$WORK/refused.out" "resultcode 2"
	ok "$b build: TCP 80 refused with NATPMP_ERR_NOTAUTHORIZED (-51), resultcode 2"

	"$LAB" capture-stop >/dev/null
	if [[ $proto == PCP ]]; then
		"$LAB" capture-check "$WORK/cap.pcapng" portcontrol >/dev/null || fail "no clean PCP traffic captured"
		ok "$b build: the capture holds well-formed PCP"
	else
		"$LAB" capture-check "$WORK/cap.pcapng" nat-pmp >/dev/null || fail "no clean NAT-PMP traffic captured"
		! "$LAB" capture-check "$WORK/cap.pcapng" portcontrol >/dev/null 2>&1 || fail "the real libnatpmp spoke PCP?"
		ok "$b build: the capture holds NAT-PMP and no PCP"
	fi
}

case_natpmp_real() {
	natpmp_case real NAT-PMP
}

case_natpmp_ours() {
	DEBUG=1 natpmp_case ours PCP
	# pcpmap's NAT-PMP backend carries the same calls when PCP is not to be used (PCPMAP_COMPAT_PROTOCOLS).
	"$LAB" cli env PCPMAP_DEBUG=1 PCPMAP_COMPAT_PROTOCOLS=natpmp "$BIN/natpmp_app.ours" map tcp 7102 7102 120 \
		>"$WORK/np.out" 2>&1 || fail "map over NAT-PMP exited $?"
	has "$WORK/np.out" "TCP 7102 -> $EXT4:7102 lifetime 120 s mapped via NAT-PMP"
	gw_log_has "$(proof_line NAT-PMP tcp 7102)"
	"$LAB" reach tcp 7102 7102 >/dev/null || fail "TCP to $EXT4:7102 did not reach the client"
	"$LAB" cli env PCPMAP_COMPAT_PROTOCOLS=natpmp "$BIN/natpmp_app.ours" unmap tcp 7102 >"$WORK/npu.out" 2>&1 ||
		fail "unmap over NAT-PMP exited $?"
	wait_rule_gone 7102
	ok "ours build, PCP off: TCP 7102 via pcpmap's NAT-PMP backend, reachable, deleted by the next process"
}

# A UPnP-only router (PCP and NAT-PMP off: ICMP port unreachable): both builds give up at once with the same code.
case_natpmp_no_server() {
	lab_up --natpmp no
	build_apps
	local b t0 t1
	for b in real ours; do
		t0=$(date +%s%N)
		app "none-$b" "$BIN/natpmp_app.$b" map tcp 7100 7100 120
		t1=$(date +%s%N)
		[[ $RC -eq 2 ]] || fail "$b build exited $RC, want 2"
		has "$WORK/none-$b.out" "public address failed -7 "
		((t1 - t0 < 5000000000)) || fail "$b build took $(((t1 - t0) / 1000000)) ms to give up"
		ok "$b build: NATPMP_ERR_NOGATEWAYSUPPORT in $(((t1 - t0) / 1000000)) ms"
	done
}

# The gateway drops NAT-PMP (version 0) and keeps answering PCP: a PCP-only router.
drop_natpmp() {
	cat >"$WORK/dropnatpmp.nft" <<'EOF'
table inet pcpmapcase_dropnatpmp {
	chain input {
		type filter hook input priority filter - 10; policy accept;
		udp dport 5351 @th,64,8 0x00 drop
	}
}
EOF
	"$LAB" gw nft -f "$WORK/dropnatpmp.nft" || fail "cannot drop NAT-PMP on the gateway"
}

dnat_rules() { # how many DNAT rules the gateway holds
	"$LAB" rules | grep -c "dnat" || true
}

# Issue 12: an address query leaves nothing on the gateway. Where NAT-PMP answers, its address request is used;
# the earlier code made (and deleted) a PCP mapping each time.
case_natpmp_address_creates_nothing() {
	lab_up
	build_apps
	local i
	for i in 1 2 3; do
		DEBUG=1 app "addr$i" "$BIN/natpmp_app.ours" address
		[[ $RC -eq 0 ]] || fail "address query $i exited $RC"
		has "$WORK/addr$i.out" "public address $EXT4 via NAT-PMP"
	done
	! grep -qF "PCP MAP" "$GWLOG" || fail "an address query made a PCP mapping: $(grep -F "PCP MAP" "$GWLOG" | head -n1)"
	[[ $(dnat_rules) -eq 0 ]] || fail "the gateway holds rules after address queries: $("$LAB" rules)"
	ok "three address queries via NAT-PMP, no PCP mapping, no rule"
}

# Issues 12 and 13: on a PCP-only gateway the address comes from PCP as soon as PCP has it (the earlier code
# waited 4 s for a NAT-PMP probe), and the short mapping that taught it is gone before the answer.
case_natpmp_address_pcp_only() {
	lab_up
	build_apps
	drop_natpmp
	local t0 t1 ms
	t0=$(date +%s%N)
	DEBUG=1 app addr "$BIN/natpmp_app.ours" address
	t1=$(date +%s%N)
	ms=$(((t1 - t0) / 1000000))
	[[ $RC -eq 0 ]] || fail "address query exited $RC"
	has "$WORK/addr.out" "public address $EXT4 via PCP"
	# Generous bound: the NAT-PMP wait this replaces was 4 s; PCP answers here in milliseconds.
	((ms < 2000)) || fail "the address took $ms ms (NAT-PMP's silence was waited for?)"
	gw_log_has "PCP MAP: added mapping UDP"
	gw_log_has "mapping removed"
	[[ $(dnat_rules) -eq 0 ]] || fail "the address mapping is still on the gateway: $("$LAB" rules)"
	ok "PCP-only gateway: address via PCP in $ms ms, its mapping deleted before the answer"
}

# Issue 11: a mapping the real libnatpmp made is deleted by the pcpmap build: PCP refuses its nonce
# (NOT_AUTHORIZED), NAT-PMP deletes it.
case_natpmp_delete_natpmp_made() {
	lab_up
	build_apps
	app made "$BIN/natpmp_app.real" map udp 7120 7120 600
	[[ $RC -eq 0 ]] || fail "the real build's map exited $RC"
	gw_log_has "$(proof_line NAT-PMP udp 7120)"
	rules_have "dport 7120" || fail "no gateway rule for port 7120"
	DEBUG=1 app del "$BIN/natpmp_app.ours" unmap udp 7120
	[[ $RC -eq 0 ]] || fail "unmap udp 7120 exited $RC (the earlier code: -51)"
	has "$WORK/del.out" "deleted UDP 7120"
	has "$WORK/del.out" "UDP 7120 (not made by this session) deleted via NAT-PMP"
	wait_rule_gone 7120
	ok "a mapping made over NAT-PMP is deleted over NAT-PMP after PCP's NOT_AUTHORIZED"
}

# Issue 10: "delete every mapping" (natpmpc -a 0 0 tcp 0) deletes the NAT-PMP mappings of this host; on a
# PCP-only gateway it fails (PCP cannot name mappings it did not make) instead of claiming success.
case_natpmp_remove_all() {
	lab_up
	build_apps
	local p
	for p in 7110 7111; do
		app "made$p" "$BIN/natpmp_app.real" map tcp $p $p 600
		[[ $RC -eq 0 ]] || fail "the real build's map of $p exited $RC"
		rules_have "dport $p" || fail "no gateway rule for port $p"
	done
	DEBUG=1 app all "$BIN/natpmp_app.ours" unmap tcp 0
	[[ $RC -eq 0 ]] || fail "delete every TCP mapping exited $RC"
	has "$WORK/all.out" "deleted TCP 0"
	wait_rule_gone 7110
	wait_rule_gone 7111
	ok "delete every TCP mapping: both NAT-PMP mappings gone"

	drop_natpmp
	DEBUG=1 app none "$BIN/natpmp_app.ours" unmap tcp 0
	[[ $RC -eq 2 ]] || fail "delete every mapping on a PCP-only gateway exited $RC, want 2"
	has "$WORK/none.out" "unmap failed -15 "
	ok "PCP-only gateway: delete every mapping answers NATPMP_ERR_UNSUPPORTEDOPCODE, not success"
}

# Issue 14: the gateway grants 90 s of the 3600 s asked (miniupnpd's max_lifetime) and the application never
# calls the library again (a BitTorrent client between its rare checks): both libraries renew on its behalf.
# The earlier libnatpmp library let miniupnpd expire it ("remove port mapping ... because it has expired").
case_lease_kept() {
	# The gateway grants 20 s of the 3600 asked, so renewals come every 10-12.5 s (RFC 6887 11.2.1) and a
	# wait of 30 s outlives the first grant by half. The renewal schedule itself is the fake clock's
	# (test_timing, test_client); the compat libraries' threads renewing unattended are
	# compat_natpmp_api/compat_miniupnpc_api's; this case checks both libraries against miniupnpd.
	lab_up --min-lifetime 10
	sed -i 's/^max_lifetime=.*/max_lifetime=20/' "/run/pcpmap-lab/$PCPMAP_LAB/miniupnpd.conf"
	"$LAB" gw-restart >/dev/null || fail "miniupnpd did not restart with max_lifetime=20"
	build_apps
	rm -f "$WORK/stop"
	"$LAB" cli env PCPMAP_DEBUG=1 "$BIN/upnpc_app.ours" map tcp 7141 7141 3600 - "$WORK/stop" \
		>"$WORK/uhold.out" 2>&1 &
	BG_PID2=$!
	DEBUG=1 app_bg hold "$BIN/natpmp_app.ours" hold tcp 7140 7140 3600 "$WORK/stop"
	wait_line "$WORK/hold.out" "mapped TCP 7140 -> public 7140 lifetime 20" 15
	wait_line "$WORK/uhold.out" "(lease 3600 s, granted 20 s) mapped via PCP" 15
	sleep 30
	local p
	for p in 7140 7141; do
		! grep -qF "remove port mapping $p TCP because it has expired" "$GWLOG" ||
			fail "miniupnpd expired TCP $p while the application held it"
		rules_have "dport $p" || fail "no gateway rule for port $p after 30 s"
		"$LAB" reach tcp $p $p >/dev/null || fail "TCP $p unreachable after 30 s"
		# The first grant and two renewals (due at 10-12.5 s and 20-25 s).
		[[ $(grep -cF "PCP MAP: added mapping TCP $p->" "$GWLOG") -ge 3 ]] ||
			fail "fewer than two renewals of $p in miniupnpd's log"
	done
	touch "$WORK/stop"
	app_bg_wait 0
	wait "$BG_PID2" || fail "upnpc_app exited $?"
	BG_PID2=
	has "$WORK/uhold.out" "deleted TCP 7141"
	app del "$BIN/natpmp_app.ours" unmap tcp 7140
	[[ $RC -eq 0 ]] || fail "unmap tcp 7140 exited $RC"
	wait_rule_gone 7140
	wait_rule_gone 7141
	ok "granted 20 s of 3600 s: both libraries renewed twice while the applications did not call for 30 s"
}

# upnpc_app, one build: discovery, IGD, external address, add, read back, reachable, delete, gone (714).
upnpc_cycle() { # BUILD PROTOCOL IGD_LINE PORT
	local b=$1 proto=$2 port=$4 bin=$BIN/upnpc_app.$1
	rm -f "$WORK/stop"
	app_bg "cycle-$b" "$bin" map tcp "$port" "$port" 3600 - "$WORK/stop"
	wait_line "$WORK/cycle-$b.out" "entry $CLI4:$port desc 'pcpmap compat test' enabled 1 lease" 20
	has "$WORK/cycle-$b.out" "$3"
	has "$WORK/cycle-$b.out" "external address $EXT4"
	has "$WORK/cycle-$b.out" "mapped TCP $port -> $CLI4:$port"
	gw_log_has "$(proof_line "$proto" tcp "$port")"
	[[ $b == real ]] || has "$WORK/cycle-$b.out" "mapped via $proto"
	rules_have "dport $port" || fail "no gateway rule for port $port"
	"$LAB" reach tcp "$port" "$port" >/dev/null || fail "TCP to $EXT4:$port did not reach the client"
	touch "$WORK/stop"
	app_bg_wait 0
	has "$WORK/cycle-$b.out" "deleted TCP $port"
	has "$WORK/cycle-$b.out" "entry after delete: 714 (NoSuchEntryInArray)"
	wait_rule_gone "$port"
	ok "$b build: TCP $port via $proto, read back, reachable, deleted, then 714"
}

case_upnpc_real() {
	lab_up
	build_apps
	# miniupnpc 2.2.4 calls this IGD "not connected" (2): its external address is a documentation address.
	upnpc_cycle real UPnP "igd 2 control http://192.168.77.1:5000/ctl/IPConn" 7200
	# Refusals, for comparison with the pcpmap build (doc/COMPAT.md).
	app tp "$BIN/upnpc_app.real" map tcp 7211 7211 600 192.168.77.3
	[[ $RC -eq 2 ]] || fail "third party exited $RC, want 2"
	has "$WORK/tp.out" "add failed 718 (ConflictInMappingEntry)"
	app low "$BIN/upnpc_app.real" map tcp 7212 80 600
	[[ $RC -eq 2 ]] || fail "internal port 80 exited $RC, want 2"
	has "$WORK/low.out" "add failed 606 (Action not authorized)"
	ok "real build: another host 718, internal port 80 606"
}

case_upnpc_ours() {
	lab_up
	build_apps
	DEBUG=1 upnpc_cycle ours PCP "igd 1 control pcpmap://192.168.77.1/PCP/ctl/IPConn" 7200

	# Refusals become UPnP codes. Another host: THIRD_PARTY, which this gateway does not allow.
	DEBUG=1 app tp "$BIN/upnpc_app.ours" map tcp 7211 7211 600 192.168.77.3
	[[ $RC -eq 2 ]] || fail "third party exited $RC, want 2"
	has "$WORK/tp.out" "add failed 606 (Action not authorized)"
	# An external port held by another mapping (here one NAT-PMP made): PREFER_FAILURE cannot hold, 718.
	app holder "$BIN/natpmp_app.real" map tcp 7220 7220 600
	[[ $RC -eq 0 ]] || fail "NAT-PMP holder exited $RC"
	DEBUG=1 app taken "$BIN/upnpc_app.ours" map tcp 7220 7221 600
	[[ $RC -eq 2 ]] || fail "taken port exited $RC, want 2"
	has "$WORK/taken.out" "add failed 718 (ConflictInMappingEntry)"
	rules_have "dport 7220" || fail "the holder's rule for 7220 is gone"
	grep -q "^TCP:7220:$CLI4:7220:" "$LEASES" || fail "the holder's lease for 7220 changed"
	# Internal port 80: miniupnpd answers PCP with CANNOT_PROVIDE_EXTERNAL here, UPnP with 606.
	app low "$BIN/upnpc_app.ours" map tcp 7212 80 600
	[[ $RC -eq 2 ]] || fail "internal port 80 exited $RC, want 2"
	has "$WORK/low.out" "add failed 718 (ConflictInMappingEntry)"
	ok "ours build: another host 606, a taken external port 718 (holder untouched), internal port 80 718"
}

# A router that allows THIRD_PARTY: the pcpmap build maps for another host of the LAN (the UPnP InternalClient),
# which miniupnpd's UPnP side refuses (secure mode), so the real build gets 718.
case_upnpc_third_party() {
	lab_up --thirdparty yes
	build_apps
	DEBUG=1 app tp "$BIN/upnpc_app.ours" map tcp 7230 7230 600 192.168.77.3
	[[ $RC -eq 0 ]] || fail "third party exited $RC"
	has "$WORK/tp.out" "entry 192.168.77.3:7230 desc 'pcpmap compat test' enabled 1"
	gw_log_has "PCP MAP: added mapping TCP 7230->192.168.77.3:7230"
	"$LAB" rules | grep -qF "dnat ip to 192.168.77.3:7230" || fail "no DNAT to 192.168.77.3:7230"
	"$LAB" reach tcp 7230 7230 >/dev/null || fail "TCP to $EXT4:7230 did not reach the client"
	ok "ours build: TCP 7230 for 192.168.77.3 via PCP THIRD_PARTY, reachable"
	app tpr "$BIN/upnpc_app.real" map tcp 7231 7231 600 192.168.77.3
	[[ $RC -eq 2 ]] || fail "real third party exited $RC, want 2"
	has "$WORK/tpr.out" "add failed 718 (ConflictInMappingEntry)"
	ok "real build: 718 for the same request over UPnP"
}

# IPv6 pinholes (WANIPv6FirewallControl) become PCP MAP requests for IPv6. miniupnpd refuses UPnP's AddPinhole
# from an IPv4 control point (606), so the real build is the comparison, not a second success.
case_upnpc_pinhole() {
	lab_up
	build_apps
	rm -f "$WORK/stop"
	DEBUG=1 app_bg ph "$BIN/upnpc_app.ours" pinhole tcp 7250 600 fd77:77::2 "$WORK/stop"
	wait_line "$WORK/ph.out" "pinhole TCP [fd77:77::2]:7250 id" 20
	has "$WORK/ph.out" "working 1"
	has "$WORK/ph.out" "open via PCP (gateway [fd77:77::1]:5351)"
	gw_log_has "PCP MAP: added mapping TCP 7250->fd77:77::2:7250"
	rules_have "dport 7250" || fail "no gateway rule for the pinhole"
	"$LAB" reach tcp 7250 7250 -6 >/dev/null || fail "TCP to [fd77:77::2]:7250 did not pass the pinhole"
	touch "$WORK/stop"
	app_bg_wait 0
	has "$WORK/ph.out" "pinhole deleted 0 (Success)"
	wait_rule_gone 7250
	ok "ours build: IPv6 pinhole TCP 7250 via PCP, reachable from the wan, deleted"
	app phr "$BIN/upnpc_app.real" pinhole tcp 7251 600 fd77:77::2
	[[ $RC -eq 2 ]] || fail "real pinhole exited $RC, want 2"
	has "$WORK/phr.out" "pinhole failed 606 (Action not authorized)"
	ok "real build: AddPinhole over UPnP from IPv4 refused with 606"
}

# A UPnP-only router: the pcpmap build falls back to UPnP through pcpmap's own backend.
case_upnpc_upnp_only() {
	lab_up --natpmp no
	build_apps
	DEBUG=1 upnpc_cycle ours UPnP "igd 1 control pcpmap://192.168.77.1/UPnP/ctl/IPConn" 7300
	has "$WORK/cycle-ours.out" "PCP Connection refused"
	upnpc_cycle real UPnP "igd 2 control http://192.168.77.1:5000/ctl/IPConn" 7301
}

# A PCP/NAT-PMP-only router (UPnP off): the real miniupnpc finds no IGD, the pcpmap build of the same
# unchanged source maps through PCP.
case_upnpc_pcp_only() {
	lab_up --upnp no
	build_apps
	app real "$BIN/upnpc_app.real" map tcp 7250 7250 600
	[[ $RC -ne 0 ]] || fail "the real miniupnpc build mapped on a gateway without UPnP: $(cat "$WORK/real.out")"
	local real_rc=$RC
	DEBUG=1 upnpc_cycle ours PCP "igd 1 control pcpmap://192.168.77.1/PCP/ctl/IPConn" 7251
	ok "UPnP off: the real build fails (exit $real_rc), the pcpmap build maps through PCP"
}

declare -F "case_$CASE" >/dev/null || {
	echo "cases-compat.sh: unknown case '$CASE'" >&2
	exit 2
}
"case_$CASE"
