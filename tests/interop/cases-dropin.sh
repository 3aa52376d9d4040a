#!/usr/bin/env bash
# Interop cases of the binary drop-in (doc/COMPAT.md, "Binary drop-in"): Debian's own programs, unmodified,
# run through pcpmap-run against a PCP-only lab gateway (UPnP off, NAT-PMP dropped by the gateway's
# firewall), where the same binaries without the launcher map nothing. The gateway's log proves the protocol,
# traffic from the wan namespace proves the mapping, the rules prove the deletion.
# Usage: cases-dropin.sh CASE   (root; PCPMAP_BUILD_DIR names the build tree)
# Cases: natpmpc_pcp_only natpmpc_source
# Exit 0 pass, 1 fail, 77 skip (no namespaces here, natpmpc not installed, no libnatpmp source).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SRC=$(cd "$HERE/../.." && pwd)
CASE_PREFIX=pmdi
CASE_SCRIPT=cases-dropin.sh
# shellcheck source=tests/interop/common.sh
source "$HERE/common.sh"
CLI4=192.168.77.2
RUN=$PCPMAP_BUILD_DIR/compat/pcpmap-run
DROPIN=$PCPMAP_BUILD_DIR/compat/dropin
NATPMPC=/usr/bin/natpmpc
# Without the launcher, natpmpc waits for NAT-PMP through libnatpmp's nine sends (about 128 s); this long
# shows that nothing answers.
NO_LAUNCHER_WAIT=6
# A sanitized build tree's drop-in needs the sanitizer runtimes loaded first in a program that was not built
# with them (Debian's natpmpc); a source build gets the flags themselves.
SAN_ENV=()
SAN_CFLAGS=()
if grep -q '^PCPMAP_SANITIZE:BOOL=ON' "$PCPMAP_BUILD_DIR/CMakeCache.txt" 2>/dev/null; then
	SAN_ENV=("LD_PRELOAD=$(cc -print-file-name=libasan.so):$(cc -print-file-name=libubsan.so)")
	SAN_CFLAGS=(-fsanitize=address -fsanitize=undefined -fno-omit-frame-pointer)
fi

case_lab_ready() {
	[[ -x $RUN && -e $DROPIN/libnatpmp.so.1 ]] || fail "pcpmap-run or the drop-in is not built in $PCPMAP_BUILD_DIR"
}

need_natpmpc() {
	if [[ ! -x $NATPMPC ]]; then
		echo "SKIP [$CASE]: $NATPMPC is not installed (Debian package natpmpc)"
		exit 77
	fi
}

# Runs a command in the client namespace: run NAME CMD...; stdout+stderr in $WORK/NAME.out, exit code in $RC.
run() {
	local name=$1
	shift
	RC=0
	"$LAB" cli env PCPMAP_DEBUG="${DEBUG:-}" "$@" >"$WORK/$name.out" 2>&1 || RC=$?
}

# The same through the build tree's launcher.
launched() {
	local name=$1
	shift
	run "$name" env ${SAN_ENV[@]+"${SAN_ENV[@]}"} PCPMAP_DROPIN_DIR="$DROPIN" "$RUN" "$@"
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

# One natpmpc binary (BIN) against the PCP-only gateway, map and delete TCP PORT:
#   without the launcher it gets no answer (LAUNCH=yes: proves the lab), then with it (LAUNCH=yes) or as it is
#   (LAUNCH=no, a build against pcpmap's headers) it maps through PCP, the port is reachable from the wan side,
#   and natpmpc's own delete (lifetime 0), from a later process, removes the rule.
natpmpc_cycle() { # BIN PORT LAUNCH
	local bin=$1 port=$2 launch=$3 how
	if [[ $launch == yes ]]; then
		run bare timeout "$NO_LAUNCHER_WAIT" "$bin" -a "$port" "$port" tcp 600
		[[ $RC -ne 0 ]] || fail "$bin mapped without the launcher on a PCP-only gateway: $(cat "$WORK/bare.out")"
		! rules_have "dport $port" || fail "$bin without the launcher left a rule for port $port"
		! grep -qF "Mapped public port" "$WORK/bare.out" || fail "$bin without the launcher claims a mapping"
		ok "$bin without the launcher: no mapping (exit $RC after ${NO_LAUNCHER_WAIT} s, NAT-PMP unanswered)"
		how=launched
	else
		how=run
	fi

	DEBUG=1 $how map "$bin" -a "$port" "$port" tcp 600
	[[ $RC -eq 0 ]] || fail "natpmpc -a $port $port tcp 600 exited $RC"
	has "$WORK/map.out" "Public IP address : $EXT4"
	has "$WORK/map.out" "Mapped public port $port protocol TCP to local port $port"
	has "$WORK/map.out" "TCP $port -> $EXT4:$port lifetime"
	has "$WORK/map.out" "mapped via PCP"
	gw_log_has "PCP MAP: added mapping TCP $port->$CLI4:$port"
	rules_have "dport $port" || fail "no gateway rule for port $port after natpmpc exited"
	"$LAB" reach tcp "$port" "$port" >/dev/null || fail "TCP to $EXT4:$port did not reach the client"
	ok "natpmpc ($how): TCP $port mapped via PCP, rule on the gateway, reachable from outside"

	# natpmpc's delete: a new process, lifetime 0. PCP deletes by nonce; the drop-in derives the same one.
	DEBUG=1 $how unmap "$bin" -a "$port" "$port" tcp 0
	[[ $RC -eq 0 ]] || fail "natpmpc -a $port $port tcp 0 exited $RC"
	has "$WORK/unmap.out" "Mapped public port 0 protocol TCP to local port $port"
	wait_rule_gone "$port"
	ok "natpmpc ($how): its delete from a later process removed the rule for TCP $port"
}

case_natpmpc_pcp_only() {
	need_natpmpc
	lab_up --upnp no
	drop_natpmp
	natpmpc_cycle "$NATPMPC" 7300 yes
}

# natpmpc.c from Debian's libnatpmp source package, unmodified, built against Debian's natpmp.h and against
# pcpmap's installed compat header (only the include path and the library change): the Debian build gets no
# answer on the PCP-only gateway, the pcpmap build passes the same scenario as natpmpc under the launcher.
case_natpmpc_source() {
	local srcdir=$WORK/libnatpmp rc=0
	bash "$SRC/tests/compat/debian-source.sh" libnatpmp "$srcdir" >"$WORK/fetch.out" 2>&1 || rc=$?
	if [[ $rc -eq 77 ]]; then
		echo "SKIP [$CASE]: $(tail -n1 "$WORK/fetch.out")"
		exit 77
	fi
	[[ $rc -eq 0 ]] || fail "fetching libnatpmp's source failed: $(tail -n 3 "$WORK/fetch.out")"
	local c
	c=$(find "$srcdir" -name natpmpc.c | head -n1)
	[[ -n $c ]] || fail "libnatpmp's source has no natpmpc.c"
	cmake --install "$PCPMAP_BUILD_DIR" --prefix "$WORK/prefix" >/dev/null
	local pc libdir incdir
	pc=$(find "$WORK/prefix" -name pcpmap-natpmp.pc -printf '%h\n' | head -n1)
	libdir=$(PKG_CONFIG_PATH=$pc pkg-config --variable=libdir pcpmap-natpmp)
	incdir=$(PKG_CONFIG_PATH=$pc pkg-config --variable=includedir pcpmap-natpmp)/pcpmap-compat
	# The same command line but -I and -l (plus -L and the rpath of a private prefix).
	local cflags=(-O2 -Wall -DENABLE_STRNATPMPERR)
	cc "${cflags[@]}" -o "$WORK/natpmpc.debian" "$c" -lnatpmp >"$WORK/cc-debian.out" 2>&1 ||
		fail "natpmpc.c does not build against Debian's natpmp.h: $(cat "$WORK/cc-debian.out")"
	cc "${cflags[@]}" ${SAN_CFLAGS[@]+"${SAN_CFLAGS[@]}"} -I"$incdir" -o "$WORK/natpmpc.pcpmap" "$c" -L"$libdir" -lpcpmap-natpmp -Wl,-rpath,"$libdir" \
		>"$WORK/cc-pcpmap.out" 2>&1 || fail "natpmpc.c does not build against pcpmap's natpmp.h: $(cat "$WORK/cc-pcpmap.out")"
	ok "natpmpc.c built unmodified against Debian's and pcpmap's natpmp.h"

	lab_up --upnp no
	drop_natpmp
	run bare timeout "$NO_LAUNCHER_WAIT" "$WORK/natpmpc.debian" -a 7310 7310 tcp 600
	if [[ $RC -eq 0 ]] || rules_have "dport 7310"; then
		fail "the Debian build mapped on a PCP-only gateway: $(cat "$WORK/bare.out")"
	fi
	ok "the Debian build: no mapping (exit $RC after ${NO_LAUNCHER_WAIT} s)"
	natpmpc_cycle "$WORK/natpmpc.pcpmap" 7311 no
}

declare -F "case_$CASE" >/dev/null || {
	echo "cases-dropin.sh: unknown case '$CASE'" >&2
	exit 2
}
"case_$CASE"
