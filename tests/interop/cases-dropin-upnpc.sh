#!/usr/bin/env bash
# Interop cases of the binary drop-in libminiupnpc.so.17: upnpc binaries nobody rebuilt for pcpmap, run with
# the drop-in first in their library path, against the real miniupnpd made a PCP-only router (UPnP off,
# NAT-PMP dropped by the gateway's firewall). They map through PCP (the gateway's log says so), the port is
# reachable from the wan side, a later upnpc lists the mapping and another deletes it (the rule goes); the
# same binaries without the drop-in find no gateway there, which proves the test.
# Usage: cases-dropin-upnpc.sh CASE   (root; PCPMAP_BUILD_DIR names the build tree)
# Cases: daemon (pcpmapd runs: upnpc lists and deletes what it holds for the user, a permanent lease
#        outlives upnpc), debian_upnpc (Debian's /usr/bin/upnpc), source_upnpc (miniupnpc's upnpc.c from Debian's source
#        package, built against Debian's headers and run with the drop-in, and built against pcpmap's compat
#        headers), upnp_only (the drop-in beside libpcpmap's own private libminiupnpc: UPnP still works).
# Exit 0 pass, 1 fail, 77 skip.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SRC=$(cd "$HERE/../.." && pwd)
CASE_PREFIX=pmdu
CASE_SCRIPT=cases-dropin-upnpc.sh
# shellcheck source=tests/interop/common.sh
source "$HERE/common.sh"
CLI4=192.168.77.2
GWLOG=$LAB_STATE/miniupnpd.log
DROPIN_DIR=${PCPMAP_DROPIN_DIR:-$PCPMAP_BUILD_DIR/compat/dropin}
# Records of earlier processes (doc/COMPAT.md) stay with this case.
STATE=$WORK/state

# Variables for the programs (pcpmapd's socket in the daemon case).
EXTRA_ENV=()
# Runs PROGRAM in the client namespace with the drop-in first in its library path (the one place to change
# for a launcher).
run_dropin() { # PROGRAM [ARG]...
	"$LAB" cli env PCPMAP_DEBUG=1 PCPMAP_COMPAT_STATE_DIR="$STATE" ${EXTRA_ENV[@]+"${EXTRA_ENV[@]}"} \
		PCPMAP_DROPIN_DIR="$DROPIN_DIR" "$PCPMAP_BUILD_DIR/compat/pcpmap-run" "$@"
}
# The same program as it runs without pcpmap.
run_plain() { # PROGRAM [ARG]...
	"$LAB" cli "$@"
}
# run NAME RUNNER PROGRAM [ARG]...: output in $WORK/NAME.out, exit code in $RC.
run() {
	local name=$1
	shift
	RC=0
	"$@" >"$WORK/$name.out" 2>&1 || RC=$?
}

has() { # FILE LITERAL
	grep -qF -- "$2" "$1" || fail "$(basename "$1" .out) did not print '$2'"
}
has_re() { # FILE REGEX
	grep -qE -- "$2" "$1" || fail "$(basename "$1" .out) did not print a line matching '$2'"
}

# A sanitizer build cannot hold the drop-in beside the real library: libpcpmap loads the real miniupnpc without
# RTLD_DEEPBIND there (AddressSanitizer refuses it), so the real library's calls to itself would reach the
# drop-in, and Debian's binaries do not load the sanitizer runtime first.
need_plain_build() {
	if grep -q '^PCPMAP_SANITIZE:BOOL=ON' "$PCPMAP_BUILD_DIR/CMakeCache.txt" 2>/dev/null; then
		echo "SKIP [$CASE]: sanitizer build (no RTLD_DEEPBIND): the drop-in is tested in a normal build"
		exit 77
	fi
}

# The gateway drops NAT-PMP (version 0) and answers PCP: with UPnP off, a PCP-only router.
pcp_only_lab() {
	lab_up --upnp no
	cat >"$WORK/dropnatpmp.nft" <<'NFT'
table inet pcpmapcase_dropnatpmp {
	chain input {
		type filter hook input priority filter - 10; policy accept;
		udp dport 5351 @th,64,8 0x00 drop
	}
}
NFT
	"$LAB" gw nft -f "$WORK/dropnatpmp.nft" || fail "cannot drop NAT-PMP on the gateway"
	[[ -f $DROPIN_DIR/libminiupnpc.so.17 ]] || fail "no drop-in in $DROPIN_DIR (build dropin-miniupnpc)"
}

# The whole scenario for one upnpc binary: RUNNER is run_dropin, or run_plain for a binary built against the
# compat library itself.
upnpc_scenario() { # LABEL BINARY RUNNER PORT
	local label=$1 bin=$2 runner=$3 port=$4
	run "$label-add" "$runner" "$bin" -e "dropin $label" -a "$CLI4" "$port" "$port" TCP
	[[ $RC -eq 0 ]] || fail "$label: upnpc -a exited $RC"
	has "$WORK/$label-add.out" "Found valid IGD : pcpmap://$GW4/PCP/ctl/IPConn"
	has "$WORK/$label-add.out" "ExternalIPAddress = $EXT4"
	has "$WORK/$label-add.out" "external $EXT4:$port TCP is redirected to internal $CLI4:$port"
	has "$WORK/$label-add.out" "mapped via PCP"
	gw_log_has "PCP MAP: added mapping TCP $port->$CLI4:$port"
	rules_have "dport $port" || fail "$label: no gateway rule for port $port"
	"$LAB" reach tcp "$port" "$port" >/dev/null || fail "$label: TCP to $EXT4:$port did not reach the client"
	ok "$label: upnpc -a mapped TCP $port through PCP, reachable from outside"

	# Later processes: one lists it, the next deletes it.
	run "$label-list" "$runner" "$bin" -l
	[[ $RC -eq 0 ]] || fail "$label: upnpc -l exited $RC"
	has_re "$WORK/$label-list.out" "^ *0 TCP +$port->$CLI4:$port +'dropin $label' ''"
	run "$label-del" "$runner" "$bin" -d "$port" TCP
	[[ $RC -eq 0 ]] || fail "$label: upnpc -d exited $RC"
	has "$WORK/$label-del.out" "UPNP_DeletePortMapping() returned : 0"
	has "$WORK/$label-del.out" "(made by an earlier process): deleted via PCP"
	wait_rule_gone "$port"
	expect_gone "$port" "the mapping upnpc -d deleted"
	run "$label-list2" "$runner" "$bin" -l
	has "$WORK/$label-list2.out" "GetGenericPortMappingEntry() returned 713"
	grep -qE -- "TCP +$port->" "$WORK/$label-list2.out" && fail "$label: upnpc -l still lists $port after -d"
	run "$label-del2" "$runner" "$bin" -d "$port" TCP
	has "$WORK/$label-del2.out" "UPNP_DeletePortMapping() failed with code : 714"
	ok "$label: a later upnpc -l listed it, another upnpc -d deleted it through PCP (rule gone), then 714"
}

# Without the drop-in the binary speaks UPnP only: nothing on this gateway.
plain_fails() { # LABEL BINARY PORT
	run "$1-plain" run_plain "$2" -a "$CLI4" "$3" "$3" TCP
	[[ $RC -ne 0 ]] || fail "$1 without the drop-in mapped on a gateway without UPnP: $(cat "$WORK/$1-plain.out")"
	has "$WORK/$1-plain.out" "No IGD UPnP Device found"
	rules_have "dport $3" && fail "$1 without the drop-in left a rule for $3"
	ok "$1 without the drop-in: no IGD on the PCP-only gateway (exit $RC)"
}

case_debian_upnpc() {
	need_plain_build
	[[ -x /usr/bin/upnpc ]] || {
		echo "SKIP [$CASE]: /usr/bin/upnpc is not installed (Debian package miniupnpc)"
		exit 77
	}
	pcp_only_lab
	plain_fails debian /usr/bin/upnpc 7300
	upnpc_scenario debian /usr/bin/upnpc run_dropin 7300
}

case_source_upnpc() {
	need_plain_build
	local rc=0
	bash "$SRC/tests/compat/upnpc-source.sh" "$SRC" "$PCPMAP_BUILD_DIR" "$WORK/src" >"$WORK/source.log" 2>&1 || rc=$?
	if [[ $rc -eq 77 ]]; then
		echo "SKIP [$CASE]: $(tail -n1 "$WORK/source.log")"
		exit 77
	fi
	[[ $rc -eq 0 ]] || { cat "$WORK/source.log"; fail "upnpc-source.sh failed"; }
	pcp_only_lab
	# Built against Debian's headers and libminiupnpc: the binary drop-in.
	plain_fails source-debian "$WORK/src/upnpc.debian" 7310
	upnpc_scenario source-debian "$WORK/src/upnpc.debian" run_dropin 7310
	# Built against pcpmap's compat headers and library: no drop-in needed.
	upnpc_scenario source-pcpmap "$WORK/src/upnpc.pcpmap" run_pcpmap_build 7311
}

# A binary built against libpcpmap-miniupnpc: the library is its own, nothing to put first.
run_pcpmap_build() { # PROGRAM [ARG]...
	"$LAB" cli env PCPMAP_DEBUG=1 PCPMAP_COMPAT_STATE_DIR="$STATE" "$@"
}

# A UPnP-only router: the drop-in hands the mapping to libpcpmap's UPnP backend, which calls the real
# libminiupnpc it loaded privately, not the drop-in that stands in the program's place. Listings and deletions
# of what this process does not hold go to the IGD, as with miniupnpc: a mapping Debian's upnpc made without
# the drop-in is listed and deleted.
case_upnp_only() {
	need_plain_build
	[[ -x /usr/bin/upnpc ]] || {
		echo "SKIP [$CASE]: /usr/bin/upnpc is not installed (Debian package miniupnpc)"
		exit 77
	}
	lab_up --natpmp no
	[[ -f $DROPIN_DIR/libminiupnpc.so.17 ]] || fail "no drop-in in $DROPIN_DIR"
	# -i: miniupnpc calls this IGD "not connected" (its external address is a documentation address).
	run plain-add run_plain /usr/bin/upnpc -i -e "plain upnpc" -a "$CLI4" 7321 7321 TCP 600
	[[ $RC -eq 0 ]] || fail "upnpc without the drop-in exited $RC"
	run upnp-add run_dropin /usr/bin/upnpc -e "dropin upnp" -a "$CLI4" 7320 7320 TCP 600
	[[ $RC -eq 0 ]] || fail "upnpc -a exited $RC"
	has "$WORK/upnp-add.out" "Found valid IGD : pcpmap://$GW4/UPnP/ctl/IPConn"
	has "$WORK/upnp-add.out" "mapped via UPnP"
	gw_log_has "AddPortMapping: ext port 7320 to $CLI4:7320 protocol TCP"
	"$LAB" reach tcp 7320 7320 >/dev/null || fail "TCP to $EXT4:7320 did not reach the client"
	ok "UPnP-only gateway: upnpc with the drop-in mapped TCP 7320 through libpcpmap's own miniupnpc"

	run upnp-list run_dropin /usr/bin/upnpc -l
	[[ $RC -eq 0 ]] || fail "upnpc -l exited $RC"
	has_re "$WORK/upnp-list.out" "TCP +7320->$CLI4:7320 +'dropin upnp'"
	has_re "$WORK/upnp-list.out" "TCP +7321->$CLI4:7321 +'plain upnpc'"
	run upnp-del1 run_dropin /usr/bin/upnpc -d 7321 TCP
	has "$WORK/upnp-del1.out" "UPNP_DeletePortMapping() returned : 0"
	wait_rule_gone 7321
	run upnp-del0 run_dropin /usr/bin/upnpc -d 7320 TCP
	has "$WORK/upnp-del0.out" "UPNP_DeletePortMapping() returned : 0"
	wait_rule_gone 7320
	expect_gateway
	ok "UPnP-only gateway: upnpc -l with the drop-in lists the IGD's table (its own and another's), -d deletes both"
}

PCPMAPD=$PCPMAP_BUILD_DIR/daemon/pcpmapd
DMODE_APP=$PCPMAP_BUILD_DIR/tests/interop/daemon_mode_app
DPID=
case_cleanup() {
	if [[ -n $DPID ]]; then
		kill -TERM "$DPID" 2>/dev/null && wait "$DPID" 2>/dev/null
	fi
	return 0
}

# pcpmapd in the client namespace with a socket and state of the case's own (as cases-daemon-mode.sh).
start_daemon() {
	local sock=$WORK/run/pcpmapd.sock
	mkdir -p "$WORK/run" "$WORK/dstate"
	printf 'log_level = debug\n' >"$WORK/pcpmapd.conf"
	"$LAB" cli "$PCPMAPD" -c "$WORK/pcpmapd.conf" -s "$sock" -S "$WORK/dstate" >>"$WORK/daemon.log" 2>&1 &
	DPID=$!
	for _ in $(seq 50); do
		[[ -S $sock ]] && break
		kill -0 "$DPID" 2>/dev/null || fail "pcpmapd exited at start"
		sleep 0.1
	done
	[[ -S $sock ]] || fail "pcpmapd did not open $sock"
	EXTRA_ENV=("PCPMAPD_SOCKET=$sock")
}

# pcpmapd runs: what it holds for this user is listed and deleted by upnpc under the drop-in, whoever made it.
case_daemon() {
	need_plain_build
	[[ -x /usr/bin/upnpc ]] || {
		echo "SKIP [$CASE]: /usr/bin/upnpc is not installed (Debian package miniupnpc)"
		exit 77
	}
	[[ -x $PCPMAPD && -x $DMODE_APP && -x $PCPMAP ]] || fail "build pcpmapd, pcpmap and daemon_mode_app first"
	pcp_only_lab
	start_daemon
	# Another program's persistent mapping, held by the daemon after that program is gone.
	run other "$LAB" cli "$DMODE_APP" -m daemon -s "${EXTRA_ENV[0]#PCPMAPD_SOCKET=}" -p -k tcp 7330
	[[ $RC -eq 0 ]] || fail "daemon_mode_app exited $RC: $(cat "$WORK/other.out")"
	local pa
	pa=$(grep -E '^event=(MAPPED|CHANGED) port=7330 ' "$WORK/other.out" | tail -n1 | grep -o ' ext=[^ ]*' | cut -d= -f2)
	pa=${pa##*:}
	[[ -n $pa ]] || fail "no external port in: $(cat "$WORK/other.out")"
	rules_have "dport $pa" || fail "no rule for the daemon's mapping on $pa"
	# upnpc's permanent lease goes to the daemon and outlives upnpc.
	run add run_dropin /usr/bin/upnpc -e "dropin daemon" -a "$CLI4" 7331 7331 TCP
	[[ $RC -eq 0 ]] || fail "upnpc -a exited $RC"
	# The daemon holds it, persistent.
	"$LAB" cli "$PCPMAP" daemon -s "${EXTRA_ENV[0]#PCPMAPD_SOCKET=}" list >"$WORK/dlist.out" 2>&1 ||
		fail "pcpmap daemon list failed: $(cat "$WORK/dlist.out")"
	grep "int=$CLI4:7331 " "$WORK/dlist.out" | grep -q 'persistent=yes' ||
		fail "pcpmapd does not hold upnpc's permanent lease as persistent: $(cat "$WORK/dlist.out")"
	rules_have "dport 7331" || fail "the permanent lease went with upnpc"
	"$LAB" reach tcp 7331 7331 >/dev/null || fail "TCP to $EXT4:7331 did not reach the client"
	run list run_dropin /usr/bin/upnpc -l
	has_re "$WORK/list.out" "TCP +$pa->$CLI4:7330 +'daemon_mode_app'"
	has_re "$WORK/list.out" "TCP +7331->$CLI4:7331 +'dropin daemon'"
	ok "pcpmapd's mappings of this user listed: another program's ($pa) and upnpc's permanent lease (7331)"
	run del1 run_dropin /usr/bin/upnpc -d "$pa" TCP
	has "$WORK/del1.out" "UPNP_DeletePortMapping() returned : 0"
	wait_rule_gone "$pa"
	run del2 run_dropin /usr/bin/upnpc -d 7331 TCP
	has "$WORK/del2.out" "UPNP_DeletePortMapping() returned : 0"
	wait_rule_gone 7331
	expect_gateway
	ok "upnpc -d deleted both through pcpmapd; the gateway holds nothing"
}

declare -F "case_$CASE" >/dev/null || {
	echo "cases-dropin-upnpc.sh: unknown case '$CASE'" >&2
	exit 2
}
"case_$CASE"
