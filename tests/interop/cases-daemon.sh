#!/usr/bin/env bash
# Interop cases for pcpmapd: the daemon runs in the lab's client namespace with a temporary socket and state
# directory and is driven by `pcpmap daemon` (cli/daemon_ctl.c, on daemon/ipc_client.c), as root and as nobody.
# Usage: cases-daemon.sh CASE   (root). Each case builds its own lab (PCPMAP_LAB=pmd-...), proves the result
# on the gateway (nft rules) and, where it matters, end to end; it always tears the lab down.
# Exit 0 pass, 1 fail, 77 skip. The cases in NOLAB_CASES need no lab and (but for one step) no root: their
# daemon talks to a PCP server address on loopback that nobody answers.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
CASE_PREFIX=pmd
CASE_SCRIPT=cases-daemon.sh
# shellcheck source=tests/interop/common.sh
source "$HERE/common.sh"
PCPMAPD=${PCPMAPD_BIN:-$PCPMAP_BUILD_DIR/daemon/pcpmapd}
NOLAB_CASES=" config unsafe_dirs restore_limits refusal_log "
# nobody must reach the socket below it.
chmod 755 "$WORK"
SOCK=$WORK/run/pcpmapd.sock
STATE=$WORK/state
CONF=$WORK/pcpmapd.conf
DPID=
declare -A HOLD_PID=()

# Run by the scaffold's EXIT trap, before its sanitizer check of daemon.log and the lab's tear-down.
case_cleanup() {
	local n
	for n in "${!HOLD_PID[@]}"; do
		{
			kill -9 "${HOLD_PID[$n]}"
			wait "${HOLD_PID[$n]}"
		} 2>/dev/null || true
	done
	if [[ -n $DPID ]]; then
		kill -TERM "$DPID" 2>/dev/null && wait "$DPID" 2>/dev/null
	fi
	return 0
}

case_lab_ready() {
	[[ -x $PCPMAPD && -x $PCPMAP ]] || fail "build $PCPMAPD and $PCPMAP first"
}

write_conf() {
	cat >"$CONF" <<EOF
# pcpmapd configuration of the interop cases
log_level = debug
max_mappings_per_uid = 3
max_connections_per_uid = 4
# nobody (65534) may map 7000-7999 without listening there (the cases hold no sockets of their own)
user_port_grants = 65534:7000-7999
EOF
}

start_daemon() {
	"$LAB" cli "$PCPMAPD" -c "$CONF" -s "$SOCK" -S "$STATE" >>"$WORK/daemon.log" 2>&1 &
	DPID=$!
	for _ in $(seq 50); do
		if "$LAB" cli "$PCPMAP" daemon -s "$SOCK" stats >>"$WORK/ctl-poll.out" 2>&1; then
			return 0
		fi
		kill -0 "$DPID" 2>/dev/null || fail "pcpmapd exited at start"
		sleep 0.1
	done
	fail "pcpmapd does not answer on $SOCK"
}

stop_daemon() { # [SIGNAL]
	{
		kill "-${1:-TERM}" "$DPID"
		wait "$DPID"
	} 2>/dev/null || true
	DPID=
}

# Runs the test client as USER (root or nobody); output in $WORK/NAME.out, exit code in $RC.
ctl() { # NAME USER ARGS...
	local name=$1 user=$2
	shift 2
	RC=0
	if [[ $user == root ]]; then
		"$LAB" cli "$PCPMAP" daemon -s "$SOCK" "$@" >"$WORK/$name.out" 2>&1 || RC=$?
	else
		"$LAB" cli setpriv --reuid="$user" --regid=nogroup --clear-groups "$PCPMAP" daemon -s "$SOCK" "$@" \
			>"$WORK/$name.out" 2>&1 || RC=$?
	fi
}

# Creates mappings in a client that keeps its connection open until stopped (unhold).
hold() { # NAME USER CREATE-ARGS...
	local name=$1 user=$2
	shift 2
	mkfifo "$WORK/$name.in"
	if [[ $user == root ]]; then
		"$LAB" cli "$PCPMAP" daemon -s "$SOCK" create "$@" --hold <>"$WORK/$name.in" >"$WORK/$name.out" 2>&1 &
	else
		"$LAB" cli setpriv --reuid="$user" --regid=nogroup --clear-groups "$PCPMAP" daemon -s "$SOCK" create "$@" \
			--hold <>"$WORK/$name.in" >"$WORK/$name.out" 2>&1 &
	fi
	HOLD_PID[$name]=$!
	for _ in $(seq 150); do
		grep -q '^holding' "$WORK/$name.out" && return 0
		sleep 0.1
	done
	fail "holder $name did not get its mappings: $(cat "$WORK/$name.out")"
}

unhold() { # NAME [SIGNAL]
	{
		kill "-${2:-TERM}" "${HOLD_PID[$1]}"
		wait "${HOLD_PID[$1]}"
	} 2>/dev/null || true
	unset "HOLD_PID[$1]"
}

field() { # FILE KEY [LINE-PATTERN]: value of KEY=... on the first line matching the pattern
	grep -- "${3:-.}" "$1" | grep -o " $2=[^ ]*" | head -n1 | cut -d= -f2-
}

ext_port() { # FILE [LINE-PATTERN]
	local e
	e=$(field "$1" ext "${2:-^created}")
	echo "${e##*:}"
}

rule_count() { # PORT: nft rules naming this external port (filter + DNAT = 2 per mapping)
	local r
	r=$("$LAB" rules)
	grep -c "dport $1 " <<<"$r" || true
}

wait_rules() { # PORT COUNT SECONDS
	for _ in $(seq $(($3 * 10))); do
		[[ $(rule_count "$1") -eq $2 ]] && return 0
		sleep 0.1
	done
	return 1
}

case_config() {
	[[ -x $PCPMAPD ]] || fail "build $PCPMAPD first"
	printf 'log_level = info\n# comment\nmax_mappings = lots\n' >"$CONF"
	local rc=0 out
	out=$("$PCPMAPD" -c "$CONF" --check-config 2>&1) || rc=$?
	keep config "$out"
	[[ $rc -eq 2 ]] || fail "bad configuration exited $rc, want 2"
	grep -q 'line 3: max_mappings wants' <<<"$out" || fail "error does not name line 3: $out"
	rc=0
	out=$("$PCPMAPD" -c "$CONF" -s "$WORK/x.sock" -S "$WORK/st" 2>&1) || rc=$?
	keep config "$out"
	[[ $rc -eq 2 ]] || fail "start with a bad configuration exited $rc, want 2"
	[[ ! -e $WORK/x.sock ]] || fail "a bad configuration still opened the socket"
	printf 'server = 192.168.1.1:5351\nprotocols = pcp\n' >"$CONF"
	"$PCPMAPD" -c "$CONF" --check-config >>"$WORK/config.out" 2>&1 || fail "valid configuration refused"
	rc=0
	"$PCPMAPD" -c "$WORK/missing.conf" --check-config >>"$WORK/config.out" 2>&1 || rc=$?
	[[ $rc -eq 2 ]] || fail "missing configuration exited $rc, want 2"
	ok "bad line named (line 3), exit 2 at check and at start; valid file accepted"
}

# A daemon outside the lab: PCP only, to a loopback address where nothing answers; no listeners of its own.
write_nolab_conf() {
	cat >"$CONF" <<EOF
server = 127.0.0.1:5351
protocols = pcp
announce_listener = no
netlink_monitor = no
log_level = debug
EOF
}

start_nolab_daemon() { # extra pcpmapd arguments
	"$PCPMAPD" -c "$CONF" -s "$SOCK" -S "$STATE" "$@" >>"$WORK/daemon.log" 2>&1 &
	DPID=$!
	for _ in $(seq 50); do
		"$PCPMAP" daemon -s "$SOCK" stats >>"$WORK/ctl-poll.out" 2>&1 && return 0
		kill -0 "$DPID" 2>/dev/null || fail "pcpmapd exited at start: $(tail -n 5 "$WORK/daemon.log")"
		sleep 0.1
	done
	fail "pcpmapd does not answer on $SOCK"
}

# Runs pcpmapd that must refuse to start; $OUT receives its log.
refused_start() { # WHAT SOCKET STATE-DIR
	local rc=0
	OUT=$(timeout 10 "$PCPMAPD" -c "$CONF" -s "$2" -S "$3" 2>&1) || rc=$?
	keep refused "$OUT"
	[[ $rc -eq 1 ]] || fail "$1: pcpmapd exited $rc, want 1 (refused): $OUT"
	[[ ! -S $2 ]] || fail "$1: the socket was created all the same"
}

case_unsafe_dirs() {
	[[ -x $PCPMAPD && -x $PCPMAP ]] || fail "build $PCPMAPD and $PCPMAP first"
	write_nolab_conf
	local root=no
	[[ $(id -u) -eq 0 ]] && root=yes
	# Links a uid other than root made (as root: the link belongs to nobody) are refused.
	mkdir -m 700 "$WORK/real"
	ln -s "$WORK/real" "$WORK/state-link"
	[[ $root == no ]] || chown -h 65534 "$WORK/state-link"
	refused_start "symlinked state directory" "$WORK/run/pcpmapd.sock" "$WORK/state-link"
	grep -q "state directory $WORK/state-link is a symbolic link that a uid other than root could have made: refusing it" <<<"$OUT" ||
		fail "no clear message for a symlinked state directory: $OUT"
	[[ -z $(ls -A "$WORK/real") ]] || fail "files written through the link: $(ls -A "$WORK/real")"
	mkdir -m 700 "$WORK/run-real"
	ln -s "$WORK/run-real" "$WORK/run-link"
	[[ $root == no ]] || chown -h 65534 "$WORK/run-link"
	refused_start "symlinked socket directory" "$WORK/run-link/pcpmapd.sock" "$STATE"
	grep -q "socket directory $WORK/run-link is a symbolic link" <<<"$OUT" ||
		fail "no clear message for a symlinked socket directory: $OUT"
	mkdir "$WORK/pub"
	chmod 1777 "$WORK/pub"
	refused_start "world-writable socket directory" "$WORK/pub/pcpmapd.sock" "$STATE"
	grep -q "socket directory $WORK/pub is writable by everyone (mode 1777): refusing it" <<<"$OUT" ||
		fail "no clear message for a world-writable socket directory: $OUT"
	mkdir "$WORK/grp"
	chmod 770 "$WORK/grp"
	refused_start "group-writable state directory" "$WORK/run/pcpmapd.sock" "$WORK/grp"
	grep -q "state directory $WORK/grp is writable by its group (mode 0770)" <<<"$OUT" ||
		fail "no clear message for a group-writable state directory: $OUT"
	local owner="skipped (not root)" rootlink="skipped (not root)"
	if [[ $root == yes ]]; then
		mkdir -m 700 "$WORK/theirs"
		chown 65534 "$WORK/theirs"
		refused_start "foreign state directory" "$WORK/run/pcpmapd.sock" "$WORK/theirs"
		grep -q "state directory $WORK/theirs is owned by uid 65534, not by the daemon's uid 0" <<<"$OUT" ||
			fail "no clear message for a foreign state directory: $OUT"
		owner="refused"
		# A link only root could have made (root's, in a directory only root writes) is followed, as
		# systemd's DynamicUser= state directory /var/lib/NAME -> private/NAME must be.
		chmod 755 "$WORK"
		ln -s "$WORK/real" "$WORK/root-link"
		start_nolab_daemon -S "$WORK/root-link"
		[[ -f $WORK/real/mappings.state ]] || fail "state not written through root's link"
		stop_daemon TERM
		rootlink="followed"
	fi
	# Safe directories are created and used; the socket is 0666 from its creation.
	rm -rf "$WORK/run" "$STATE"
	start_nolab_daemon
	[[ $(stat -c %a "$SOCK") == 666 ]] || fail "socket mode $(stat -c %a "$SOCK"), want 666"
	[[ $(stat -c %a "$WORK/run") == 755 && $(stat -c %a "$STATE") == 700 ]] ||
		fail "created modes: run $(stat -c %a "$WORK/run"), state $(stat -c %a "$STATE")"
	stop_daemon TERM
	ok "symlinked state and socket directories, world- and group-writable ones refused with their reason;"\
		"foreign owner $owner; root's link $rootlink; safe ones created (755, 700), socket 0666"
}

# State records beyond max_mappings and max_mappings_per_uid are not restored but kept beside the state.
case_restore_limits() {
	[[ -x $PCPMAPD && -x $PCPMAP ]] || fail "build $PCPMAPD and $PCPMAP first"
	write_nolab_conf
	printf 'max_mappings = 3\nmax_mappings_per_uid = 2\n' >>"$CONF"
	mkdir -m 700 "$STATE"
	local i
	{
		echo "pcpmapd-state 1"
		for i in 1 2 3 4; do
			echo "mapping id=$i uid=65534 persistent=yes kind=map ip_proto=6 internal_port=$((7000 + i))" \
				"family=4 nonce=0123456789abcdef0123450$i lifetime=600"
		done
		for i in 5 6; do
			echo "mapping id=$i uid=0 persistent=yes kind=map ip_proto=17 internal_port=$((7000 + i))" \
				"family=4 nonce=0123456789abcdef0123450$i lifetime=600"
		done
		echo "this line is corrupt"
	} >"$STATE/mappings.state"
	start_nolab_daemon
	"$PCPMAP" daemon -s "$SOCK" list >"$WORK/ls.out" 2>&1 || fail "list failed: $(cat "$WORK/ls.out")"
	grep -q '^count=3$' "$WORK/ls.out" || fail "restored beyond the limits: $(cat "$WORK/ls.out")"
	for i in 1 2 5; do
		grep -q "id=$i " "$WORK/ls.out" || fail "mapping $i not restored: $(cat "$WORK/ls.out")"
	done
	grep -q "persistent mapping 3 (tcp 7003, uid 65534) not restored: max_mappings_per_uid reached" \
		"$WORK/daemon.log" || fail "no reason logged for record 3"
	grep -q "persistent mapping 6 (udp 7006, uid 0) not restored: max_mappings reached" "$WORK/daemon.log" ||
		fail "no reason logged for record 6"
	grep -q "3 state records not restored (limits or engine table); kept in $STATE/mappings.state.unrestored" \
		"$WORK/daemon.log" || fail "no log line naming the file of unrestored records"
	grep -q "moved aside to $STATE/mappings.state.corrupt-[0-9]*;" "$WORK/daemon.log" ||
		fail "the moved-aside line lacks the path"
	local kept
	kept=$(grep -o ' id=[0-9]* ' "$STATE/mappings.state.unrestored" | tr -d ' id=' | sort | tr '\n' ' ')
	[[ $kept == "3 4 6 " ]] || fail "unrestored file holds ids '$kept', want 3 4 6"
	stop_daemon TERM
	{ grep -q 'id=1 ' "$STATE/mappings.state" && ! grep -q 'id=3 ' "$STATE/mappings.state"; } ||
		fail "state file after the stop: $(cat "$STATE/mappings.state")"
	ok "3 of 6 persistent records restored (max_mappings 3, per uid 2); 3, 4 and 6 kept in"\
		"mappings.state.unrestored, each reason logged"
}

# A client that keeps connecting over the limit gets its refusal each time, the log one line a second.
case_refusal_log() {
	[[ -x $PCPMAPD && -x $PCPMAP ]] || fail "build $PCPMAPD and $PCPMAP first"
	write_nolab_conf
	printf 'max_connections = 1\nmax_connections_per_uid = 1\n' >>"$CONF"
	start_nolab_daemon
	mkfifo "$WORK/h.in"
	"$PCPMAP" daemon -s "$SOCK" create tcp 7320 --count 0 --hold <>"$WORK/h.in" >"$WORK/h.out" 2>&1 &
	HOLD_PID[h]=$!
	for _ in $(seq 50); do
		grep -q '^holding' "$WORK/h.out" && break
		sleep 0.1
	done
	grep -q '^holding' "$WORK/h.out" || fail "holder did not connect: $(cat "$WORK/h.out")"
	local i t0=$SECONDS
	for i in $(seq 40); do
		"$PCPMAP" daemon -s "$SOCK" stats >"$WORK/r.out" 2>&1 && fail "connection $i over the limit accepted"
		grep -q 'errno=EUSERS' "$WORK/r.out" || fail "refusal $i: $(cat "$WORK/r.out")"
	done
	local elapsed=$((SECONDS - t0 + 1)) lines
	sleep 1.1
	"$PCPMAP" daemon -s "$SOCK" stats >"$WORK/r.out" 2>&1 && fail "connection over the limit accepted"
	lines=$(grep -c 'refused: too many connections' "$WORK/daemon.log" || true)
	[[ $lines -le $((elapsed + 2)) ]] || fail "$lines log lines for 41 refusals in about $elapsed s"
	grep -q 'more refusals not logged since the last one' "$WORK/daemon.log" ||
		fail "no count of the refusals left unlogged: $(grep refused "$WORK/daemon.log" | tail -n 3)"
	unhold h
	stop_daemon TERM
	ok "41 refused connections, $lines log lines (one per second at most, with the count of the others)"
}

case_create_reaches() {
	lab_up
	write_conf
	start_daemon
	hold a root tcp 7100 --wait 10000
	hold b nobody udp 7102 --wait 10000 --description "pcpmapd test"
	local pa pb
	pa=$(ext_port "$WORK/a.out")
	pb=$(ext_port "$WORK/b.out")
	[[ $(field "$WORK/a.out" state) == MAPPED && $(field "$WORK/a.out" proto) == PCP ]] ||
		fail "root's mapping not MAPPED via PCP: $(cat "$WORK/a.out")"
	[[ $(field "$WORK/b.out" owner) == 65534 ]] || fail "nobody's mapping not owned by 65534"
	[[ $(field "$WORK/a.out" ext) == "$EXT4:$pa" ]] || fail "external address not $EXT4"
	[[ $(rule_count "$pa") -eq 2 ]] || fail "no gateway rules for $pa"
	"$LAB" reach tcp "$pa" 7100 || fail "TCP to $EXT4:$pa did not reach the client"
	"$LAB" reach udp "$pb" 7102 || fail "UDP to $EXT4:$pb (nobody's mapping) did not reach the client"
	ok "root tcp 7100 -> $pa and nobody udp 7102 -> $pb through the daemon, reachable from the wan"
}

case_uid_isolation() {
	lab_up --thirdparty yes
	write_conf
	start_daemon
	hold a root tcp 7200
	hold b nobody tcp 7201
	local ida idb pa
	ida=$(field "$WORK/a.out" id)
	idb=$(field "$WORK/b.out" id)
	pa=$(ext_port "$WORK/a.out")
	ctl del1 nobody delete "$ida"
	{ [[ $RC -eq 4 ]] && grep -q 'errno=EPERM' "$WORK/del1.out"; } || fail "nobody deleted root's mapping: $(cat "$WORK/del1.out")"
	grep -q "belongs to uid 0" "$WORK/del1.out" || fail "refusal does not say whose: $(cat "$WORK/del1.out")"
	[[ $(rule_count "$pa") -eq 2 ]] || fail "root's rule gone after a refused delete"
	# nobody sees root's mapping and its owner, but not its nonce; its own nonce it sees.
	ctl ls nobody list
	grep "id=$ida " "$WORK/ls.out" | grep -q "owner=0" || fail "list lacks root's mapping or owner"
	! grep "id=$ida " "$WORK/ls.out" | grep -q "nonce=" || fail "nobody sees root's nonce"
	grep "id=$idb " "$WORK/ls.out" | grep -q "nonce=" || fail "nobody does not see its own nonce"
	# Authorization of requests: another host's address, a privileged port, protocol 0.
	ctl tp nobody create tcp 7203 --third-party 192.168.77.9
	{ grep -q 'errno=EPERM' "$WORK/tp.out" && grep -q 'not an address of this host' "$WORK/tp.out"; } ||
		fail "nobody's THIRD_PARTY for another host not refused: $(cat "$WORK/tp.out")"
	ctl low nobody create tcp 80
	grep -q 'errno=EPERM' "$WORK/low.out" || fail "nobody mapped port 80: $(cat "$WORK/low.out")"
	ctl all nobody create all 0
	grep -q 'errno=EPERM' "$WORK/all.out" || fail "nobody mapped every port: $(cat "$WORK/all.out")"
	# This host's own second address is allowed; root may name any host.
	ctl own nobody create tcp 7204 --third-party 192.168.77.3 --wait 10000
	[[ $RC -eq 0 ]] || fail "nobody's THIRD_PARTY for its own 192.168.77.3 refused: $(cat "$WORK/own.out")"
	ctl tproot root create tcp 7205 --third-party 192.168.77.9 --wait 10000
	! grep -q 'errno=EPERM' "$WORK/tproot.out" || fail "root's THIRD_PARTY refused by the daemon"
	# Root may delete anyone's; the owner its own.
	ctl del2 root delete "$idb"
	[[ $RC -eq 0 ]] || fail "root could not delete nobody's mapping: $(cat "$WORK/del2.out")"
	ctl del3 nobody delete "$ida"
	grep -q 'errno=EPERM' "$WORK/del3.out" || fail "second refusal missing"
	ctl del4 root delete 9999
	grep -q 'errno=ENOENT' "$WORK/del4.out" || fail "unknown id not ENOENT"
	ok "nobody cannot delete root's mapping (EPERM), sees no foreign nonce, cannot map another host,"\
		"port 80 or all ports; root can delete nobody's"
}

case_per_uid_limit() {
	lab_up
	write_conf
	start_daemon
	hold a nobody tcp 7300 --count 3
	[[ $(grep -c '^created' "$WORK/a.out") -eq 3 ]] || fail "3 mappings under the limit not all created"
	ctl b nobody create tcp 7310
	grep -q 'errno=EDQUOT' "$WORK/b.out" || fail "4th mapping of nobody not refused: $(cat "$WORK/b.out")"
	grep -q 'per-uid limit' "$WORK/b.out" || fail "refusal does not name the limit"
	ctl c root create tcp 7311 --wait 10000
	[[ $RC -eq 0 ]] || fail "root refused while nobody is at its limit: $(cat "$WORK/c.out")"
	# Connections: 4 per uid. Three more holders, then one too many.
	hold h1 nobody tcp 7320 --count 0
	hold h2 nobody tcp 7320 --count 0
	hold h3 nobody tcp 7320 --count 0
	ctl d nobody stats
	grep -q 'errno=EUSERS' "$WORK/d.out" || fail "5th connection of nobody not refused: $(cat "$WORK/d.out")"
	ctl e root stats
	[[ $RC -eq 0 ]] || fail "root refused a connection"
	unhold h3
	sleep 0.2
	ctl f nobody stats
	[[ $RC -eq 0 ]] || fail "connection refused after one closed: $(cat "$WORK/f.out")"
	# SIGHUP re-reads the limits: one more mapping allowed.
	sed -i 's/^max_mappings_per_uid = 3$/max_mappings_per_uid = 4/' "$CONF"
	kill -HUP "$DPID"
	sleep 0.3
	grep -q 'SIGHUP: configuration reloaded' "$WORK/daemon.log" || fail "no reload logged"
	ctl g nobody create tcp 7312 --wait 10000
	[[ $RC -eq 0 ]] || fail "4th mapping refused after raising the limit: $(cat "$WORK/g.out")"
	ok "4th mapping of nobody refused (EDQUOT), root unaffected; 5th connection refused (EUSERS);"\
		"SIGHUP raised the limit"
}

# A socket bound in the client namespace as USER until unhold NAME: TCP listens, UDP is bound.
listen_as() { # NAME USER tcp|udp PORT
	local name=$1 user=$2 proto=$3 port=$4
	local py='import socket, sys, time
t = socket.SOCK_STREAM if sys.argv[1] == "tcp" else socket.SOCK_DGRAM
s = socket.socket(socket.AF_INET, t)
s.bind(("", int(sys.argv[2])))
if t == socket.SOCK_STREAM:
    s.listen()
print("ready", flush=True)
time.sleep(170)'
	"$LAB" cli setpriv --reuid="$user" --regid=nogroup --clear-groups /usr/bin/python3 -S -c "$py" "$proto" \
		"$port" >"$WORK/$name.out" 2>&1 &
	HOLD_PID[$name]=$!
	for _ in $(seq 50); do
		grep -q '^ready' "$WORK/$name.out" && return 0
		sleep 0.1
	done
	fail "$user could not bind $proto $port: $(cat "$WORK/$name.out")"
}

# A uid other than root maps only ports on which it holds a bound socket (outside user_port_grants), and
# a port has one owner: nobody cannot take the port another user's service listens on.
case_port_owner() {
	lab_up
	write_conf
	start_daemon
	listen_as db daemon tcp 8432
	ctl foreign nobody create tcp 8432 --wait 5000
	{ [[ $RC -ne 0 ]] && grep -q 'errno=EPERM' "$WORK/foreign.out"; } ||
		fail "nobody mapped the port uid 1 listens on: $(cat "$WORK/foreign.out")"
	grep -q 'uid 65534 holds no tcp socket bound to port 8432' "$WORK/foreign.out" ||
		fail "refusal does not say why: $(cat "$WORK/foreign.out")"
	grep -q 'uid 65534 (pid [0-9]*) refused tcp 8432: uid 65534 holds no tcp socket' "$WORK/daemon.log" ||
		fail "refusal not logged"
	ctl ls root list
	grep -q '^count=0' "$WORK/ls.out" || fail "a refused request left a mapping: $(cat "$WORK/ls.out")"
	# Its own listener makes the port its own.
	listen_as web nobody tcp 8433
	hold own nobody tcp 8433 --wait 10000
	local pa
	pa=$(ext_port "$WORK/own.out")
	[[ $(field "$WORK/own.out" state) == MAPPED && $(field "$WORK/own.out" owner) == 65534 ]] ||
		fail "nobody's own listening port not mapped: $(cat "$WORK/own.out")"
	[[ $(rule_count "$pa") -eq 2 ]] || fail "no gateway rules for nobody's $pa"
	# One owner per port, root included.
	ctl root8433 root create tcp 8433 --wait 5000
	{ grep -q 'errno=EADDRINUSE' "$WORK/root8433.out" && grep -q 'mapped by uid 65534' "$WORK/root8433.out"; } ||
		fail "a second owner got tcp 8433: $(cat "$WORK/root8433.out")"
	# A bound UDP socket counts; the service's own uid maps its port.
	listen_as u nobody udp 8434
	ctl udp nobody create udp 8434 --wait 10000
	[[ $RC -eq 0 && $(field "$WORK/udp.out" state) == MAPPED ]] || fail "nobody's bound udp 8434: $(cat "$WORK/udp.out")"
	ctl dbown daemon create tcp 8432 --wait 10000
	[[ $RC -eq 0 && $(field "$WORK/dbown.out" state) == MAPPED ]] || fail "uid 1's own 8432: $(cat "$WORK/dbown.out")"
	# End to end: the lab's listener takes the port once nobody's is gone.
	unhold web
	"$LAB" reach tcp "$pa" 8433 || fail "TCP to $EXT4:$pa did not reach the client"
	ok "nobody refused tcp 8432 where uid 1 listens (EPERM, reason given), granted its own 8433 -> $pa"\
		"(rules on the gateway, reachable) and udp 8434; root refused 8433 (EADDRINUSE, one owner)"
}

case_close_deletes() {
	lab_up
	write_conf
	start_daemon
	hold a nobody tcp 7400 --wait 10000
	hold b root udp 7401 --wait 10000
	local pa pb
	pa=$(ext_port "$WORK/a.out")
	pb=$(ext_port "$WORK/b.out")
	[[ $(rule_count "$pa") -eq 2 && $(rule_count "$pb") -eq 2 ]] || fail "rules missing"
	unhold a TERM
	wait_rules "$pa" 0 5 || fail "rule of $pa still there after its client closed"
	# A client that dies without closing: the kernel closes its socket, the daemon deletes.
	unhold b KILL
	wait_rules "$pb" 0 5 || fail "rule of $pb still there after its client was killed"
	ctl ls root list
	grep -q '^count=0' "$WORK/ls.out" || fail "daemon still lists mappings: $(cat "$WORK/ls.out")"
	kill -0 "$DPID" || fail "daemon died"
	ok "closing (and killing) the client deleted its mapping on the gateway"
}

# The records the daemon keeps: the snapshot, then the journal's changes over it (doc/PERSISTENCE.md).
state_records() {
	cat "$STATE/mappings.state" "$STATE/mappings.journal" 2>/dev/null | awk '
		/^mapping / { match($0, / id=[0-9]+ /); r[substr($0, RSTART + 4, RLENGTH - 5)] = $0; next }
		/^delete id=/ { sub(/^delete id=/, ""); delete r[$0] }
		END { for (i in r) print r[i] }'
}

case_persistent_restart() {
	lab_up
	write_conf
	start_daemon
	ctl a nobody create tcp 7500 --persistent --wait 10000
	[[ $RC -eq 0 ]] || fail "persistent create failed: $(cat "$WORK/a.out")"
	local id nonce pa
	id=$(field "$WORK/a.out" id)
	nonce=$(field "$WORK/a.out" nonce)
	pa=$(ext_port "$WORK/a.out")
	sleep 0.5
	[[ $(rule_count "$pa") -eq 2 ]] || fail "persistent mapping gone when its connection closed"
	grep -q "id=$id .*persistent=yes.*nonce=$nonce" <<<"$(state_records)" || fail "state file lacks it"
	stop_daemon TERM
	[[ $(rule_count "$pa") -eq 2 ]] || fail "persistent mapping deleted at daemon stop"
	start_daemon
	sleep 1
	ctl ls nobody list
	local line
	line=$(grep "id=$id " "$WORK/ls.out") || fail "restarted daemon lost mapping $id: $(cat "$WORK/ls.out")"
	grep -q "state=MAPPED" <<<"$line" || fail "not renewed: $line"
	grep -q "nonce=$nonce" <<<"$line" || fail "nonce changed: $line (was $nonce)"
	grep -q "owner=65534" <<<"$line" || fail "owner lost: $line"
	grep -q "ext=$EXT4:$pa " <<<"$line" || fail "external port changed: $line (was $pa)"
	[[ $(rule_count "$pa") -eq 2 ]] || fail "duplicate or missing rules after the renewal: $(rule_count "$pa")"
	grep -q "persistent mapping $id .*renewing with its old nonce" "$WORK/daemon.log" || fail "no renewal logged"
	"$LAB" reach tcp "$pa" 7500 || fail "not reachable after the restart"
	ctl del nobody delete "$id"
	[[ $RC -eq 0 ]] || fail "owner could not delete it"
	wait_rules "$pa" 0 5 || fail "rule still there after delete"
	ok "persistent mapping $id survived a restart with nonce $nonce and port $pa, one rule pair, deleted by its owner"
}

case_kill9_cleanup() {
	lab_up
	write_conf
	start_daemon
	hold a root tcp 7600 --wait 10000
	hold b nobody udp 7601 --wait 10000
	ctl p root create tcp 7602 --persistent --wait 10000
	local pa pb pp
	pa=$(ext_port "$WORK/a.out")
	pb=$(ext_port "$WORK/b.out")
	pp=$(ext_port "$WORK/p.out")
	stop_daemon KILL
	[[ $(rule_count "$pa") -eq 2 && $(rule_count "$pb") -eq 2 ]] || fail "rules vanished with the daemon"
	unhold a KILL
	unhold b KILL
	start_daemon
	wait_rules "$pa" 0 10 || fail "leftover $pa not deleted after restart"
	wait_rules "$pb" 0 10 || fail "leftover $pb not deleted after restart"
	[[ $(rule_count "$pp") -eq 2 ]] || fail "the persistent mapping did not survive kill -9"
	[[ $(grep -c 'leftover mapping .* deleted: re-created with its old nonce' "$WORK/daemon.log") -eq 2 ]] ||
		fail "leftover deletions not logged"
	sleep 0.3
	! grep -q 'persistent=no' <<<"$(state_records)" || fail "state still lists leftovers: $(state_records)"
	ok "after kill -9 the restarted daemon deleted both leftovers ($pa, $pb) and kept the persistent $pp"
}

# A port pair survives a crash whole: its second half's nonce is in the state, so after kill -9 a persistent
# pair is renewed with both nonces (no duplicate rules) and a leftover pair loses both halves.
case_pair_restore() {
	lab_up
	write_conf
	start_daemon
	ctl p root create udp 8000 --pair --persistent --wait 10000
	[[ $RC -eq 0 ]] || fail "persistent pair create failed: $(cat "$WORK/p.out")"
	hold l root udp 8010 --pair --wait 10000
	local pp pl id rec nonce2
	pp=$(ext_port "$WORK/p.out")
	pl=$(ext_port "$WORK/l.out")
	id=$(field "$WORK/p.out" id)
	[[ -n $pl && $(rule_count "$pp") -eq 2 && $(rule_count $((pp + 1))) -eq 2 ]] ||
		fail "pairs not mapped: $(cat "$WORK/p.out" "$WORK/l.out")"
	sleep 1.5 # the journal's sync
	rec=$(grep "id=$id " <<<"$(state_records)")
	nonce2=$(grep -o ' nonce2=[0-9a-f]*' <<<"$rec" | cut -d= -f2)
	[[ ${#nonce2} -eq 24 ]] || fail "the pair's second nonce is not in the state: $rec"
	stop_daemon KILL
	unhold l KILL
	start_daemon
	wait_rules "$pl" 0 10 || fail "leftover pair's first half $pl not deleted after restart"
	wait_rules $((pl + 1)) 0 10 || fail "leftover pair's second half $((pl + 1)) not deleted after restart"
	sleep 1
	[[ $(rule_count "$pp") -eq 2 && $(rule_count $((pp + 1))) -eq 2 ]] ||
		fail "persistent pair after restart: $(rule_count "$pp") and $(rule_count $((pp + 1))) rules, want 2 and 2"
	ctl ls root list
	grep -q "id=$id .*state=MAPPED.*ext=$EXT4:$pp " "$WORK/ls.out" || fail "pair not renewed: $(cat "$WORK/ls.out")"
	sleep 1.5
	grep -q "id=$id .* nonce2=$nonce2" <<<"$(state_records)" || fail "second nonce changed: $(state_records)"
	ok "after kill -9 the persistent pair $pp/$((pp + 1)) kept both nonces and its rules; the leftover pair $pl/$((pl + 1)) was deleted whole"
}

case_corrupt_state() {
	lab_up
	write_conf
	mkdir -m 700 "$STATE"
	# A persistent record the daemon should renew, between lines it must reject.
	cat >"$STATE/mappings.state" <<STATE
pcpmapd-state 1
mapping id=5 uid=65534 persistent=maybe
mapping id=6 uid=65534 persistent=yes kind=map ip_proto=6 internal_port=7980 family=4 nonce=0123456789abcdef01234567 lifetime=600
garbage
STATE
	start_daemon
	wait_rules 7980 2 5 || fail "the good record was not restored"
	grep -q "mappings.state: line 2: bad value for 'persistent'" "$WORK/daemon.log" || fail "line 2 not reported"
	grep -q "mappings.state: line 4: expected" "$WORK/daemon.log" || fail "line 4 not reported"
	ls "$STATE"/mappings.state.corrupt-* >/dev/null 2>&1 || fail "corrupt file not moved aside"
	sleep 0.3
	grep -q 'id=6 uid=65534 persistent=yes.*nonce=0123456789abcdef01234567' "$STATE/mappings.state" ||
		fail "new state file lacks the restored record"
	ctl ls root list
	grep -q 'id=6 .*state=MAPPED.*owner=65534.*nonce=0123456789abcdef01234567' "$WORK/ls.out" ||
		fail "restored mapping: $(cat "$WORK/ls.out")"
	ok "corrupt lines 2 and 4 reported, file moved aside, the good persistent record renewed with its nonce"
}

case_malformed() {
	lab_up
	write_conf
	start_daemon
	hold a nobody tcp 7700 --wait 10000
	local pa
	pa=$(ext_port "$WORK/a.out")
	check_raw() { # EXPECTED-ERRNO HEX...
		local want=$1
		shift
		ctl raw nobody raw "$@"
		grep -q "reply type=ERROR .*errno=$want" "$WORK/raw.out" || fail "raw $* answered: $(cat "$WORK/raw.out")"
	}
	check_raw EBADMSG 01
	check_raw EBADMSG 0101000000000001000000050003
	check_raw EPROTONOSUPPORT 090300000000000100000000
	check_raw EOPNOTSUPP 016300000000000100000000
	check_raw EOPNOTSUPP 018100000000000100000000
	check_raw EBADMSG 010300010000000100000000
	check_raw EBADMSG 0101000000000001000000060003000206
	check_raw EBADMSG 01020000000000010000001000010004000000010001000400000002
	check_raw EBADMSG 0101000000000001000000060012000200ff
	check_raw EINVAL 01010000000000010000000a00020001030003000106
	check_raw EINVAL 010100000000000100000000
	# The seq of a malformed request is echoed when the header is readable.
	ctl raw nobody raw 0101000000abcdef00000002ffff
	grep -q 'seq=11259375 ' "$WORK/raw.out" || fail "seq not echoed: $(cat "$WORK/raw.out")"
	# A message longer than 4096 bytes is a framing error: the connection is closed, nothing else.
	ctl big nobody raw "$(head -c 5000 /dev/zero | od -An -tx1 -v | tr -d ' \n')"
	grep -q 'reply none errno=ECONNRESET' "$WORK/big.out" || fail "oversized message: $(cat "$WORK/big.out")"
	# Random garbage from 100 connections.
	for i in $(seq 100); do
		ctl junk nobody raw "$(head -c $((i % 40 + 1)) /dev/urandom | od -An -tx1 -v | tr -d ' \n')"
		grep -q 'reply type=ERROR' "$WORK/junk.out" || fail "garbage #$i got: $(cat "$WORK/junk.out")"
	done
	kill -0 "$DPID" || fail "daemon died"
	ctl ls nobody list
	grep -q "id=1 .*state=MAPPED" "$WORK/ls.out" || fail "daemon lost the held mapping: $(cat "$WORK/ls.out")"
	[[ $(rule_count "$pa") -eq 2 ]] || fail "held mapping's rule gone"
	ok "12 malformed kinds answered with the right errno, oversized framing closed, 100 garbage messages"\
		"refused; the daemon kept serving"
}

case_probe_external() {
	lab_up
	write_conf
	start_daemon
	ctl p nobody probe 3000
	[[ $RC -eq 0 ]] || fail "probe failed: $(cat "$WORK/p.out")"
	[[ $(field "$WORK/p.out" chosen) == PCP && $(field "$WORK/p.out" external) == "$EXT4" ]] ||
		fail "probe: $(cat "$WORK/p.out")"
	grep -q '^server pcp .*version=2' "$WORK/p.out" || fail "no PCP version 2 in the probe"
	ctl e nobody external
	[[ $(field "$WORK/e.out" addr) == "$EXT4" ]] || fail "external: $(cat "$WORK/e.out")"
	ok "probe chose PCP, external address $EXT4 (probe and GET_EXTERNAL)"
}

case_events() {
	lab_up
	write_conf
	start_daemon
	"$LAB" cli setpriv --reuid=nobody --regid=nogroup --clear-groups "$PCPMAP" daemon -s "$SOCK" events 2 15000 \
		>"$WORK/ev.out" 2>&1 &
	local evpid=$!
	"$LAB" cli "$PCPMAP" daemon -s "$SOCK" events 4 15000 >"$WORK/evroot.out" 2>&1 &
	local evroot=$!
	for _ in $(seq 50); do
		grep -q subscribed "$WORK/ev.out" 2>/dev/null && grep -q subscribed "$WORK/evroot.out" 2>/dev/null && break
		sleep 0.1
	done
	hold r root tcp 7801 --wait 10000
	hold a nobody tcp 7800 --wait 10000
	unhold a
	wait "$evpid" || fail "nobody's subscriber did not get 2 events: $(cat "$WORK/ev.out")"
	unhold r
	wait "$evroot" || fail "root's subscriber did not get 4 events: $(cat "$WORK/evroot.out")"
	grep -q 'event=MAPPED .*int=192.168.77.2:7800 ' "$WORK/ev.out" || fail "no MAPPED event"
	grep -q 'event=DELETED .*int=192.168.77.2:7800 ' "$WORK/ev.out" || fail "no DELETED event"
	! grep -q ':7801 ' "$WORK/ev.out" || fail "nobody saw root's mapping's events"
	[[ $(grep -c '^event=' "$WORK/evroot.out") -eq 4 ]] || fail "root did not see every event"
	ok "subscribers get MAPPED and DELETED; nobody sees only its own mappings, root sees all"
}

case_idle_wakeups() {
	lab_up
	write_conf
	start_daemon
	# The engine asks for no wakeup before the first renewal (test_client, fake clock); this checks that the
	# daemon adds none of its own: any tick of 5 s or less fails (0 expected, 1 tolerated).
	local secs=${PCPMAPD_IDLE_SECONDS:-10}
	ctl idle root idle 10 "$secs" 8000
	[[ $RC -eq 0 ]] || fail "idle bench failed: $(cat "$WORK/idle.out")"
	local w
	w=$(field "$WORK/idle.out" wakeups)
	cat "$WORK/idle.out"
	[[ $w -le $((secs / 10)) ]] || fail "$w wakeups in $secs s idle with 10 mappings"
	ok "10 mappings held, $secs s idle: $w wakeups"
}

case_renew_timer() {
	lab_up --min-lifetime 8
	write_conf
	start_daemon
	hold a nobody tcp 7950 --lifetime 8 --wait 10000
	local pa
	pa=$(ext_port "$WORK/a.out")
	ctl s0 root stats
	# Renewals 4-5 s into each 8 s grant: two in 12 s. The slots themselves are test_timing's and test_client's
	# (fake clock); this checks that the daemon's timerfd delivers them.
	sleep 12
	ctl s1 root stats
	local renewals w
	renewals=$(grep -c 'mapping 1: MAPPED --RENEW' "$WORK/daemon.log" || true)
	w=$(($(field "$WORK/s1.out" wakeups) - $(field "$WORK/s0.out" wakeups) - 1))
	[[ $renewals -ge 2 ]] || fail "only $renewals renewals in 12 s of an 8 s lifetime"
	[[ $w -le $((renewals * 4 + 4)) ]] || fail "$w wakeups for $renewals renewals"
	ctl ls root list
	grep -q "ext=$EXT4:$pa .*owner=65534" "$WORK/ls.out" || fail "mapping changed: $(cat "$WORK/ls.out")"
	grep "ext=$EXT4:$pa " "$WORK/ls.out" | grep -Eq 'state=(MAPPED|REFRESHING)' || fail "not mapped"
	[[ $(rule_count "$pa") -eq 2 ]] || fail "rules changed"
	ok "$renewals renewals in 12 s at lifetime 8 s driven by the timerfd, $w wakeups, same port $pa"
}

# The tool's daemon commands: map --daemon hands a persistent mapping to pcpmapd, list shows it (JSON
# parsed), unmap --daemon deletes it.
case_cli_daemon() {
	lab_up
	write_conf
	start_daemon
	local PM=$PCPMAP_BUILD_DIR/cli/pcpmap
	RC=0
	"$LAB" cli "$PM" map tcp 7960 --daemon --socket "$SOCK" >"$WORK/map.out" 2>&1 || RC=$?
	[[ $RC -eq 0 ]] || fail "map --daemon exited $RC: $(cat "$WORK/map.out")"
	local nonce
	nonce=$(grep -o -- '--nonce [0-9a-f]*' "$WORK/map.out" | cut -d' ' -f2)
	[[ -n $nonce ]] || fail "no unmap hint: $(cat "$WORK/map.out")"
	# The tool has exited: the daemon keeps the mapping.
	"$LAB" reach tcp 7960 7960 || fail "not reachable after the tool exited"
	"$LAB" cli "$PM" list --json --socket "$SOCK" >"$WORK/list.out" 2>&1 || fail "list failed: $(cat "$WORK/list.out")"
	python3 - "$WORK/list.out" <<'PY' || fail "list does not show the mapping: $(cat "$WORK/list.out")"
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.startswith('{')]
m = [r for r in rows if r["internal"]["port"] == 7960]
assert m and m[0]["persistent"] and m[0]["state"] in ("MAPPED", "REFRESHING") and m[0]["protocol"] == "PCP", rows
assert m[0]["refresh_in"] > 0
PY
	"$LAB" cli "$PM" list --socket "$SOCK" >"$WORK/list-h.out" 2>&1
	grep -q 'refreshing in' "$WORK/list-h.out" || fail "human list lacks the refresh time: $(cat "$WORK/list-h.out")"
	RC=0
	"$LAB" cli "$PM" unmap tcp 7960 --nonce "$nonce" --daemon --socket "$SOCK" >"$WORK/unmap.out" 2>&1 || RC=$?
	[[ $RC -eq 0 ]] || fail "unmap --daemon exited $RC: $(cat "$WORK/unmap.out")"
	"$LAB" cli "$PM" list --json --socket "$SOCK" >"$WORK/list2.out" 2>&1
	! grep -q '"port":7960' "$WORK/list2.out" || fail "still listed after unmap"
	ok "map --daemon outlives the tool, list shows it (JSON and table), unmap --daemon removes it"
}

# A delete the gateway never answers is no delete: the requester is told it failed and why, subscribers see
# FAILED rather than DELETED, and the daemon keeps the mapping (its record and its renewals), so a second
# delete, once the gateway answers again, removes it.
case_delete_unanswered() {
	lab_up
	write_conf
	start_daemon
	ctl a root create tcp 7970 --persistent --wait 10000
	[[ $RC -eq 0 ]] || fail "create failed: $(cat "$WORK/a.out")"
	local id pa
	id=$(field "$WORK/a.out" id)
	pa=$(ext_port "$WORK/a.out")
	wait_rules "$pa" 2 5 || fail "no gateway rules for $pa"
	"$LAB" cli "$PCPMAP" daemon -s "$SOCK" events 1 60000 >"$WORK/ev.out" 2>&1 &
	local evpid=$!
	for _ in $(seq 50); do
		grep -q subscribed "$WORK/ev.out" 2>/dev/null && break
		sleep 0.1
	done
	"$LAB" gw-block >/dev/null
	ctl del root -t 90000 delete "$id"
	[[ $RC -ne 0 ]] || fail "delete reported done although the gateway never answered: $(cat "$WORK/del.out")"
	grep -q "^error op=delete errno=ETIMEDOUT message=.*mapping $id" "$WORK/del.out" ||
		fail "the refusal does not say why: $(cat "$WORK/del.out")"
	wait "$evpid" || fail "the subscriber got no event: $(cat "$WORK/ev.out")"
	grep -q "^event=FAILED id=$id state=DELETED .*error=ETIMEDOUT" "$WORK/ev.out" ||
		fail "the subscriber was not told the delete failed: $(cat "$WORK/ev.out")"
	"$LAB" gw-unblock >/dev/null
	local line=
	for _ in $(seq 100); do
		ctl ls root list
		line=$(grep "id=$id " "$WORK/ls.out" || true)
		grep -Eq 'state=(MAPPED|REFRESHING)' <<<"$line" && break
		sleep 0.1
	done
	grep -Eq "state=(MAPPED|REFRESHING) .*ext=$EXT4:$pa " <<<"$line" ||
		fail "the daemon no longer holds mapping $id after the failed delete: $(cat "$WORK/ls.out")"
	expect_gateway_daemon
	ctl del2 root delete "$id"
	[[ $RC -eq 0 ]] || fail "second delete failed: $(cat "$WORK/del2.out")"
	expect_gone "$pa" "mapping $id"
	ok "an unanswered delete of mapping $id failed with ETIMEDOUT (requester and subscriber told), the daemon" \
		"kept it on $pa; the delete after the gateway came back removed it"
}

fn=case_$CASE
declare -F "$fn" >/dev/null || { echo "unknown case $CASE" >&2; exit 2; }
"$fn"
# Every case with a gateway ends with the daemon's list and the gateway's rules in agreement.
if [[ $NOLAB_CASES != *" $CASE "* && -n $DPID ]] && kill -0 "$DPID" 2>/dev/null; then
	expect_gateway_daemon
fi
