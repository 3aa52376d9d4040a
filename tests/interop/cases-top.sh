#!/usr/bin/env bash
# Interop cases of `pcpmap top`: the full-screen view driven through tmux (send-keys, capture-pane) in the
# client namespace of the lab, against the real miniupnpd. Usage: cases-top.sh CASE (root).
# Exit 0 pass, 1 fail, 77 skip (no tmux, or no namespaces here).
set -euo pipefail

CASE_PREFIX=pmtop
CASE_SCRIPT=cases-top.sh
# shellcheck source=tests/interop/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

if ! command -v tmux >/dev/null; then
	echo "SKIP [$CASE]: tmux is not installed (apt-get install tmux)"
	exit 77
fi

TMUX_SOCK=$WORK/tmux.sock
tm() { tmux -S "$TMUX_SOCK" "$@"; }
# Ends the tmux server (and the view in it) from common.sh's cleanup, before its sanitizer check.
case_cleanup() {
	tm kill-server >/dev/null 2>&1 || true
}

# The view in a detached tmux session of 200x50, in the client namespace.
top_start() {
	tm new-session -d -x 200 -y 50 \
		"$LAB cli $PCPMAP top $* 2>$WORK/top.err; echo \"exit \$?\" >$WORK/top.rc; sleep 30"
}
screen() { tm capture-pane -p -t 0; }
keys() { tm send-keys -t 0 "$@"; }
# Waits up to $2 seconds for the screen to match the extended regex $1.
wait_screen() {
	for _ in $(seq $(($2 * 10))); do
		screen | grep -Eq -- "$1" && return 0
		sleep 0.1
	done
	return 1
}
wait_rule() { # PORT SECONDS
	for _ in $(seq $(($2 * 10))); do
		rules_have "$1" && return 0
		sleep 0.1
	done
	return 1
}
wait_no_rule() { # PORT SECONDS
	for _ in $(seq $(($2 * 10))); do
		rules_have "$1" || return 0
		sleep 0.1
	done
	return 1
}
dump() { # why: shows the screen with the failure
	screen >"$WORK/screen.out" 2>&1 || true
	fail "$*"$'\n'"$(cat "$WORK/screen.out")"
}
# The seconds of the countdown "in N s" on the mapping row that matches $1.
countdown() {
	screen | grep -E -- "$1" | grep -oE 'in [0-9]+ s' | head -n1 | grep -oE '[0-9]+'
}
# Opens a MAP form, types the port, sends.
map_port() {
	keys m
	wait_screen 'MAP request' 3 || dump "no MAP form"
	keys "$1" Enter
}

# Not a terminal: a clear message naming 'list --watch', exit 2, no lab needed. TERM=dumb likewise.
case_not_a_terminal() {
	local rc=0
	"$PCPMAP" top </dev/null >"$WORK/nt.out" 2>&1 || rc=$?
	[[ $rc -eq 2 ]] || fail "exit $rc without a terminal, want 2"
	grep -q "not a terminal" "$WORK/nt.out" && grep -q "list --watch" "$WORK/nt.out" ||
		fail "message: $(cat "$WORK/nt.out")"
	tm new-session -d -x 100 -y 20 "TERM=dumb $PCPMAP top 2>$WORK/dumb.out; echo \$? >$WORK/dumb.rc"
	for _ in $(seq 30); do
		[[ -s $WORK/dumb.rc ]] && break
		sleep 0.1
	done
	[[ $(cat "$WORK/dumb.rc" 2>/dev/null) == 2 ]] || fail "TERM=dumb: exit $(cat "$WORK/dumb.rc" 2>/dev/null)"
	grep -q "TERM=dumb" "$WORK/dumb.out" && grep -q "list --watch" "$WORK/dumb.out" ||
		fail "TERM=dumb message: $(cat "$WORK/dumb.out")"
	ok "no terminal and TERM=dumb: exit 2, 'list --watch' named"
}

# Resizing (SIGWINCH, KEY_RESIZE): a terminal too small says so, a narrow one cuts lines with '>', and the
# view comes back whole when the terminal grows. No lab: the gateway is never asked (no mapping is made).
case_resize() {
	tm new-session -d -x 120 -y 30 "$PCPMAP top -g 127.0.0.1 2>$WORK/top.err; echo \"exit \$?\" >$WORK/top.rc; sleep 30"
	wait_screen '^ pcpmap top  own client' 3 || dump "no view"
	tm resize-window -t 0 -x 30 -y 10
	wait_screen '^too small: 30x10, needs 40x14' 3 || dump "no 'too small' at 30x10"
	tm resize-window -t 0 -x 60 -y 16
	wait_screen '^  STATE +VIA +KIND .*>$' 3 || dump "at 60 columns the mapping header is not cut with '>'"
	screen | awk 'length($0) > 60 { bad = 1 } END { exit bad }' || dump "a line wider than 60 columns"
	tm resize-window -t 0 -x 150 -y 30
	wait_screen 'OPTIONS / LAST ERROR$' 3 || dump "the view did not grow back"
	keys q
	for _ in $(seq 30); do
		[[ -s $WORK/top.rc ]] && break
		sleep 0.1
	done
	[[ $(cat "$WORK/top.rc" 2>/dev/null) == "exit 0" ]] || fail "top: $(cat "$WORK/top.rc" "$WORK/top.err" 2>&1)"
	ok "30x10 says too small, 60x16 cuts lines, 150x30 whole again; q exits 0"
}

# A TCP connection to the outside is listed; 'p' then Enter makes its PEER mapping on the gateway; the
# countdown moves; a MAP made with 'm' is deleted with 'd'; 'q' deletes what is left.
case_peer_map_delete() {
	lab_up
	"$LAB" wan python3 -c '
import socket, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("203.0.113.2", 8081)); s.listen(1); s.settimeout(10)
c, a = s.accept(); time.sleep(60)' &
	BG_PID=$!
	sleep 0.3
	"$LAB" cli python3 -c '
import socket, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("192.168.77.2", 40100)); s.connect(("203.0.113.2", 8081)); time.sleep(60)' &
	local conn_pid=$!
	sleep 0.5
	top_start -g $GW4
	wait_screen '192\.168\.77\.2:40100 +203\.0\.113\.2:8081 +established' 5 || dump "the connection is not listed"
	# Select it through the filter, then its PEER form, prefilled.
	keys / 8081 Enter
	wait_screen 'filter: 8081' 3 || dump "the filter was not applied"
	keys p
	wait_screen 'PEER request' 3 || dump "no PEER form"
	screen | grep -Eq 'remote peer address +\[203\.0\.113\.2\]' || dump "the form is not prefilled"
	keys Enter
	wait_screen 'MAPPED +PCP +tcp peer' 5 || dump "no PEER mapping in the view"
	local post
	post=$("$LAB" gw nft list chain inet filter postrouting_miniupnpd)
	grep -qw 40100 <<<"$post" || dump "no PEER rule for port 40100 on the gateway"
	wait_screen '^  peer +tcp 192\.168\.77\.2:40100' 3 || dump "the connection is not shown as covered"
	# The countdown moves every second, by one: sampled every 0.3 s for 3 s, it never skips a value.
	local c1 c2 prev cur
	c1=$(countdown 'tcp peer')
	prev=$c1
	for _ in $(seq 10); do
		sleep 0.3
		cur=$(countdown 'tcp peer')
		[[ -n $cur ]] || dump "no countdown"
		((prev - cur == 0 || prev - cur == 1)) || dump "countdown went from $prev to $cur in 0.3 s"
		prev=$cur
	done
	c2=$prev
	((c1 - c2 >= 2 && c1 - c2 <= 4)) || dump "countdown went from $c1 to $c2 in about 3 s"
	# A MAP through the form, then 'd' on it (the new row is selected in the mappings pane).
	keys Escape / BSpace BSpace BSpace BSpace Enter
	map_port 7300
	wait_rule 7300 5 || dump "no rule for the MAP of 7300"
	wait_screen 'MAPPED +PCP +tcp map +192\.168\.77\.2:7300' 3 || dump "MAP 7300 not shown"
	keys d
	wait_no_rule 7300 5 || dump "'d' left the rule of 7300 on the gateway"
	wait_screen 'deleting tcp 7300' 2 || dump "no delete in the event log"
	screen | grep -Eq 'tcp map +192\.168\.77\.2:7300' && dump "7300 still listed after 'd'"
	# Quit: a MAP made in the view leaves the gateway with it.
	map_port 7301
	wait_rule 7301 5 || dump "no rule for 7301"
	screen >"$WORK/screen-final.out"
	keys q
	for _ in $(seq 50); do
		[[ -s $WORK/top.rc ]] && break
		sleep 0.1
	done
	[[ $(cat "$WORK/top.rc" 2>/dev/null) == "exit 0" ]] || fail "top: $(cat "$WORK/top.rc" "$WORK/top.err" 2>&1)"
	rules_have 7301 && fail "the MAP made in the view survived 'q'"
	screen | grep -q 'made in the view deleted on the gateway' || dump "no summary after 'q'"
	kill "$conn_pid" 2>/dev/null || true
	wait "$conn_pid" 2>/dev/null || true
	ok "connection listed, PEER made with 'p' (rule on the gateway), countdown $c1 -> $c2 s, 'd' and 'q' deleted"
}

# A gateway restart that flushes every rule: the view's mapping comes back on the gateway and the view says
# that the gateway restarted and the mapping was renewed.
case_restart_restores() {
	lab_up
	top_start -g $GW4
	wait_screen 'Connections' 5 || dump "no view"
	map_port 7302
	wait_rule 7302 5 || dump "no rule for 7302"
	wait_screen 'MAPPED +[A-Za-z-]+ +tcp map +192\.168\.77\.2:7302' 3 || dump "MAP 7302 not shown"
	sleep 4 # let the epoch grow, or a restart cannot be told from none (RFC 6887 8.5)
	# gw-restart --flush fails unless the flush left no rule (checked before miniupnpd is back).
	"$LAB" gw-restart --flush || fail "the restart did not flush the gateway's rules"
	wait_rule 7302 10 || dump "the mapping did not come back on the gateway within 10 s"
	wait_screen 'gateway 192\.168\.77\.1:5351 (restarted|announced itself).*tcp 7302 (renewed|re-verified)' 5 || dump "the view does not say so"
	wait_screen 'MAPPED +[A-Za-z-]+ +tcp map +192\.168\.77\.2:7302' 3 || dump "7302 not MAPPED after the restart"
	screen >"$WORK/screen-restart.out"
	keys q
	wait_no_rule 7302 5 || fail "rule left behind after 'q'"
	ok "gateway restarted with its rules flushed; the mapping came back and the view reported it"
}

# With --daemon: a persistent mapping another command left with pcpmapd is listed with its owner; 'd'
# deletes it through the daemon; a MAP made in the view goes through the daemon and leaves with 'q'.
case_daemon_others() {
	local pcpmapd=$PCPMAP_BUILD_DIR/daemon/pcpmapd sock=$WORK/pcpmapd.sock
	[[ -x $pcpmapd ]] || fail "build $pcpmapd first"
	lab_up
	printf 'log_level = info\n' >"$WORK/pcpmapd.conf"
	"$LAB" cli "$pcpmapd" -c "$WORK/pcpmapd.conf" -s "$sock" -S "$WORK/state" >"$WORK/daemon.out" 2>&1 &
	BG_PID=$!
	for _ in $(seq 50); do
		[[ -S $sock ]] && break
		sleep 0.1
	done
	pm map map udp 7400 --daemon --socket "$sock"
	[[ $RC -eq 0 ]] || fail "map --daemon exited $RC"
	top_start --daemon --socket "$sock"
	wait_screen '^  0 +MAPPED +[A-Za-z-]+ +udp map +192\.168\.77\.2:7400 .*persistent' 5 ||
		dump "the daemon's persistent mapping is not listed with its owner"
	map_port 7401
	wait_rule 7401 5 || dump "no rule for 7401 made through the daemon"
	wait_screen 'MAPPED +[A-Za-z-]+ +tcp map +192\.168\.77\.2:7401' 3 || dump "7401 not shown"
	keys k d # the row above the new one: 7400
	wait_no_rule 7400 5 || dump "'d' did not delete the daemon's mapping of 7400"
	wait_screen 'asked pcpmapd to delete #[0-9]+ \(udp 7400\)' 3 || dump "no delete in the event log"
	keys q
	wait_no_rule 7401 5 || fail "the mapping made in the view survived 'q'"
	wait_screen 'made in the view deleted by pcpmapd' 3 || dump "no summary after 'q'"
	ok "pcpmapd's persistent mapping listed (owner 0) and deleted with 'd'; the view's own left on 'q'"
}

fn=case_$CASE
declare -F "$fn" >/dev/null || { echo "unknown case $CASE" >&2; exit 2; }
"$fn"
