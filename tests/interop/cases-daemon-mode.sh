#!/usr/bin/env bash
# Interop cases for the library through the daemon: tests/interop/daemon_mode_app (the public API, mode AUTO
# or DAEMON) maps through a pcpmapd that runs in the lab's client namespace with a temporary socket and state
# directory (as cases-daemon.sh starts it), or falls back to its own engine when no daemon runs.
# Usage: cases-daemon-mode.sh CASE   (root). Each case builds its own lab (PCPMAP_LAB=pmdm-...), proves the
# result on the gateway (nft rules) and from the wan namespace, and always tears the lab down.
# Exit 0 pass, 1 fail, 77 skip.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
CASE_PREFIX=pmdm
CASE_SCRIPT=cases-daemon-mode.sh
# shellcheck source=tests/interop/common.sh
source "$HERE/common.sh"
PCPMAPD=${PCPMAPD_BIN:-$PCPMAP_BUILD_DIR/daemon/pcpmapd}
APP=${PCPMAP_DMODE_APP:-$PCPMAP_BUILD_DIR/tests/interop/daemon_mode_app}
SOCK=$WORK/run/pcpmapd.sock
STATE=$WORK/state
CONF=$WORK/pcpmapd.conf
DPID=
declare -A APP_PID=()

# Run by the scaffold's EXIT trap, before its sanitizer check of the logs and the lab's tear-down.
case_cleanup() {
	local n
	for n in "${!APP_PID[@]}"; do
		{
			kill -9 "${APP_PID[$n]}"
			wait "${APP_PID[$n]}"
		} 2>/dev/null || true
	done
	if [[ -n $DPID ]]; then
		kill -TERM "$DPID" 2>/dev/null && wait "$DPID" 2>/dev/null
	fi
	return 0
}

case_lab_ready() {
	[[ -x $PCPMAPD && -x $PCPMAP && -x $APP ]] || fail "build $PCPMAPD, $PCPMAP and $APP first"
	rm -f "$WORK/lab.out"
}

start_daemon() {
	printf '# pcpmapd configuration of the daemon-mode cases\nlog_level = debug\n' >"$CONF"
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

stop_daemon() {
	{
		kill -TERM "$DPID"
		wait "$DPID"
	} 2>/dev/null || true
	DPID=
}

# Runs the application in the client namespace until it exits; output in $WORK/NAME.out, exit code in $RC.
app() { # NAME ARGS...
	local name=$1
	shift
	RC=0
	"$LAB" cli "$APP" "$@" >"$WORK/$name.out" 2>"$WORK/$name.log" || RC=$?
}

# Starts the application holding its mappings; returns once they are mapped.
app_hold() { # NAME ARGS...
	local name=$1
	shift
	"$LAB" cli "$APP" -H "$@" >"$WORK/$name.out" 2>"$WORK/$name.log" &
	APP_PID[$name]=$!
	for _ in $(seq 150); do
		grep -q '^mapped' "$WORK/$name.out" && return 0
		kill -0 "${APP_PID[$name]}" 2>/dev/null || fail "$name exited: $(cat "$WORK/$name.out")"
		sleep 0.1
	done
	fail "$name did not get its mappings: $(cat "$WORK/$name.out")"
}

app_stop() { # NAME: SIGTERM, then its exit code must be 0
	local rc=0
	kill -TERM "${APP_PID[$1]}" 2>/dev/null || true
	wait "${APP_PID[$1]}" || rc=$?
	unset "APP_PID[$1]"
	[[ $rc -eq 0 ]] || fail "$1 exited $rc: $(cat "$WORK/$1.out")"
	grep -q '^done' "$WORK/$1.out" || fail "$1 did not finish: $(cat "$WORK/$1.out")"
}

# External port of the mapping of internal PORT, from the last MAPPED/CHANGED line of FILE.
ext_port() { # FILE PORT
	local e
	e=$(grep -E "^event=(MAPPED|CHANGED) port=$2 " "$1" | tail -n1 | grep -o ' ext=[^ ]*' | cut -d= -f2)
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

daemon_list() { # NAME: the daemon's mappings into $WORK/NAME.out
	"$LAB" cli "$PCPMAP" daemon -s "$SOCK" list >"$WORK/$1.out" 2>&1 || fail "list failed: $(cat "$WORK/$1.out")"
}

# Whether an application in the client namespace holds UDP sockets (the engine's towards the gateway).
app_has_udp() {
	"$LAB" cli ss -uanp 2>/dev/null | grep -q '"daemon_mode_app"'
}

case_auto_uses_daemon() {
	lab_up
	start_daemon
	app_hold a -m auto -s "$SOCK" tcp 7100
	grep -q '^mode=daemon' "$WORK/a.out" || fail "AUTO did not use the running daemon: $(cat "$WORK/a.out")"
	local pa
	pa=$(ext_port "$WORK/a.out" 7100)
	[[ -n $pa ]] || fail "no external port: $(cat "$WORK/a.out")"
	grep -q "^event=MAPPED port=7100 ext=$EXT4:$pa proto=PCP state=MAPPED" "$WORK/a.out" ||
		fail "MAPPED callback lacks the daemon's info: $(cat "$WORK/a.out")"
	daemon_list ls
	grep -q "int=192.168.77.2:7100 ext=$EXT4:$pa .*persistent=no" "$WORK/ls.out" ||
		fail "the daemon does not list the application's mapping: $(cat "$WORK/ls.out")"
	[[ $(rule_count "$pa") -eq 2 ]] || fail "no gateway rules for $pa"
	! app_has_udp || fail "the application opened UDP sockets in daemon mode: $("$LAB" cli ss -uanp)"
	"$LAB" reach tcp "$pa" 7100 || fail "TCP to $EXT4:$pa did not reach the client"
	app_stop a
	wait_rules "$pa" 0 5 || fail "rule of $pa still there after the application freed its mapping"
	daemon_list ls2
	grep -q '^count=0' "$WORK/ls2.out" || fail "the daemon still lists mappings: $(cat "$WORK/ls2.out")"
	ok "AUTO used pcpmapd: tcp 7100 -> $pa in the daemon's list, on the gateway, reachable; gone after free"
}

case_auto_falls_back() {
	lab_up
	# No daemon: the socket path does not exist.
	app_hold a -m auto -s "$SOCK" tcp 7200
	grep -q '^mode=engine' "$WORK/a.out" || fail "AUTO without a daemon did not fall back: $(cat "$WORK/a.out")"
	grep -q "pcpmapd at $SOCK: .*using the in-process engine" "$WORK/a.log" ||
		fail "the fallback is not logged: $(cat "$WORK/a.log")"
	local pa
	pa=$(ext_port "$WORK/a.out" 7200)
	[[ $(rule_count "$pa") -eq 2 ]] || fail "no gateway rules for $pa"
	app_has_udp || fail "the engine's sockets are not visible (the daemon-mode socket check would prove nothing)"
	"$LAB" reach tcp "$pa" 7200 || fail "TCP to $EXT4:$pa did not reach the client"
	app_stop a
	wait_rules "$pa" 0 5 || fail "rule of $pa still there after the engine freed its mapping"
	ok "AUTO without pcpmapd mapped tcp 7200 -> $pa with its own engine, reachable, deleted at exit"
}

case_daemon_required() {
	lab_up
	app a -m daemon -s "$SOCK" tcp 7300
	[[ $RC -eq 3 ]] || fail "DAEMON without a daemon exited $RC, want 3: $(cat "$WORK/a.out")"
	grep -q "^error op=client_new errno=2 message=No such file or directory" "$WORK/a.out" ||
		fail "error does not say why: $(cat "$WORK/a.out")"
	grep -q "pcpmapd at $SOCK: No such file or directory" "$WORK/a.log" ||
		fail "the log does not name the socket: $(cat "$WORK/a.log")"
	# A socket file nobody listens on (a daemon that died): connection refused.
	"$LAB" cli python3 -c 'import socket,sys; s=socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET); s.bind(sys.argv[1])' \
		"$WORK/stale.sock"
	app b -m daemon -s "$WORK/stale.sock" tcp 7300
	[[ $RC -eq 3 ]] && grep -q "errno=111 " "$WORK/b.out" || fail "stale socket: $(cat "$WORK/b.out")"
	[[ -z $("$LAB" rules | grep -E 'dport [0-9]+ ' || true) ]] || fail "something was mapped: $("$LAB" rules)"
	ok "DAEMON without pcpmapd fails with ENOENT (no socket) and ECONNREFUSED (stale socket); nothing mapped"
}

case_two_apps_share() {
	lab_up
	start_daemon
	app_hold a -m auto -s "$SOCK" tcp 7400
	app_hold b -m daemon -s "$SOCK" udp 7401
	grep -q '^mode=daemon' "$WORK/a.out" && grep -q '^mode=daemon' "$WORK/b.out" ||
		fail "not both through the daemon"
	local pa pb
	pa=$(ext_port "$WORK/a.out" 7400)
	pb=$(ext_port "$WORK/b.out" 7401)
	daemon_list ls
	grep -q '^count=2' "$WORK/ls.out" || fail "the daemon does not hold both: $(cat "$WORK/ls.out")"
	grep -q "ip_proto=6 int=192.168.77.2:7400 ext=$EXT4:$pa " "$WORK/ls.out" || fail "a's mapping not listed"
	grep -q "ip_proto=17 int=192.168.77.2:7401 ext=$EXT4:$pb " "$WORK/ls.out" || fail "b's mapping not listed"
	# One client state: the daemon chose the gateway's protocol once and opened each server once.
	local chose opened
	chose=$(grep -c 'engine: gateway .*: using PCP' "$WORK/daemon.log" || true)
	opened=$(grep -c 'engine: server .*: opened (PCP)' "$WORK/daemon.log" || true)
	[[ $chose -eq 1 && $opened -eq 1 ]] ||
		fail "gateway probed $chose times, PCP server opened $opened times (want 1 and 1)"
	# Neither application has a socket towards the gateway.
	! app_has_udp || fail "an application opened UDP sockets in daemon mode: $("$LAB" cli ss -uanp)"
	# Each application hears only of its own mapping.
	! grep -q 'port=7401' "$WORK/a.out" || fail "a got b's events"
	! grep -q 'port=7400' "$WORK/b.out" || fail "b got a's events"
	"$LAB" reach tcp "$pa" 7400 || fail "a's mapping not reachable"
	"$LAB" reach udp "$pb" 7401 || fail "b's mapping not reachable"
	app_stop a
	wait_rules "$pa" 0 5 || fail "a's rule still there after it exited"
	[[ $(rule_count "$pb") -eq 2 ]] || fail "b's mapping went with a"
	app_stop b
	ok "two applications share the daemon's one client state (one PCP server, gateway chosen once);"\
		"tcp 7400 -> $pa and udp 7401 -> $pb reachable, each deleted with its application"
}

case_daemon_restart() {
	lab_up
	start_daemon
	app_hold a -m auto -s "$SOCK" tcp 7500
	local pa
	pa=$(ext_port "$WORK/a.out" 7500)
	stop_daemon
	for _ in $(seq 50); do
		grep -q '^event=LOST port=7500 ' "$WORK/a.out" && break
		sleep 0.1
	done
	grep -q '^event=LOST port=7500 .*state=NOT_SENT' "$WORK/a.out" ||
		fail "no LOST when the daemon went: $(cat "$WORK/a.out")"
	start_daemon
	for _ in $(seq 200); do
		[[ $(grep -cE '^event=(MAPPED|CHANGED) port=7500 ' "$WORK/a.out") -ge 2 ]] && break
		sleep 0.1
	done
	[[ $(grep -cE '^event=(MAPPED|CHANGED) port=7500 ' "$WORK/a.out") -ge 2 ]] ||
		fail "not mapped again through the restarted daemon: $(cat "$WORK/a.out")"
	local pa2
	pa2=$(ext_port "$WORK/a.out" 7500)
	daemon_list ls
	grep "int=192.168.77.2:7500 ext=$EXT4:$pa2 " "$WORK/ls.out" | grep -q "state=MAPPED" ||
		fail "the restarted daemon does not hold it: $(cat "$WORK/ls.out")"
	wait_rules "$pa2" 2 5 || fail "no gateway rules for $pa2 after the restart"
	"$LAB" reach tcp "$pa2" 7500 || fail "not reachable after the daemon's restart"
	grep -q 'pcpmapd at .* answers again' "$WORK/a.log" || fail "reconnection not logged"
	app_stop a
	wait_rules "$pa2" 0 5 || fail "rule still there after the application exited"
	ok "daemon restart: LOST, reconnected, re-created (port $pa -> $pa2), reachable, deleted at exit"
}

case_persistent() {
	lab_up
	start_daemon
	# A persistent mapping outlives its program (abandoned at exit); a plain one abandoned goes with the
	# connection.
	app a -m daemon -s "$SOCK" -p -k tcp 7600
	[[ $RC -eq 0 ]] || fail "persistent mapping failed: $(cat "$WORK/a.out")"
	app b -m daemon -s "$SOCK" -k tcp 7601
	[[ $RC -eq 0 ]] || fail "plain mapping failed: $(cat "$WORK/b.out")"
	local pa pb
	pa=$(ext_port "$WORK/a.out" 7600)
	pb=$(ext_port "$WORK/b.out" 7601)
	wait_rules "$pb" 0 5 || fail "the plain mapping outlived its program"
	sleep 0.3
	[[ $(rule_count "$pa") -eq 2 ]] || fail "the persistent mapping went with its program"
	daemon_list ls
	local line id
	line=$(grep "int=192.168.77.2:7600 " "$WORK/ls.out") || fail "not listed: $(cat "$WORK/ls.out")"
	grep -q 'persistent=yes' <<<"$line" || fail "not persistent: $line"
	id=$(grep -o 'id=[0-9]*' <<<"$line" | head -n1 | cut -d= -f2)
	"$LAB" reach tcp "$pa" 7600 || fail "the persistent mapping is not reachable"
	"$LAB" cli "$PCPMAP" daemon -s "$SOCK" delete "$id" >>"$WORK/ctl-delete.out" 2>&1 || fail "could not delete it"
	wait_rules "$pa" 0 5 || fail "rule still there after the delete"
	ok "persistent tcp 7600 -> $pa outlived its program (id $id), the plain one did not"
}

fn=case_$CASE
declare -F "$fn" >/dev/null || {
	echo "unknown case $CASE" >&2
	exit 2
}
"$fn"
# Every case ends with the client's view and the gateway's rules in agreement: the daemon's list while it
# runs; nothing once the applications and the engine they fell back to are gone.
if [[ -n $DPID ]]; then
	expect_gateway_daemon
else
	expect_gateway
fi
