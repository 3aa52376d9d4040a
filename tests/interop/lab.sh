#!/usr/bin/env bash
# pcpmap interop lab: a real gateway (miniupnpd 2.3.1 with nftables) in three network namespaces.
#
#   client ns  eth0 192.168.77.2/24 (+ .3), fd77:77::2/64
#        |
#   gateway ns lan0 192.168.77.1, fd77:77::1    wan0 203.0.113.1, fd03:113::1   (miniupnpd, nftables)
#        |
#   wan ns     eth0 203.0.113.2/24, fd03:113::2/64                               (STUN responder :3478)
#
# Everything runs inside namespaces this script creates; nothing is started in the host namespace.
# Facts behind the choices below: doc/LAB.md; what miniupnpd does that clients live with: doc/PROTOCOLS.md 4.1.
set -euo pipefail

PREFIX=${PCPMAP_LAB:-pmlab}
if [[ ! $PREFIX =~ ^[A-Za-z0-9][A-Za-z0-9_.-]{0,40}$ ]]; then
	echo "lab.sh: PCPMAP_LAB='$PREFIX' is not a usable name ([A-Za-z0-9_.-], at most 41 characters)" >&2
	exit 2
fi
NS_CLI=$PREFIX-cli
NS_GW=$PREFIX-gw
NS_WAN=$PREFIX-wan
STATE=/run/pcpmap-lab/$PREFIX

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)

CLI_IF=eth0
GW_LAN_IF=lan0
GW_WAN_IF=wan0
WAN_IF=eth0
# Fixed MAC addresses make the link-local addresses predictable (EUI-64 of 02:77:...).
CLI_MAC=02:77:00:00:00:02
GW_LAN_MAC=02:77:00:00:00:01
GW_WAN_MAC=02:77:00:00:01:01
WAN_MAC=02:77:00:00:01:02
CLI4=192.168.77.2
CLI4_2=192.168.77.3
CLI6=fd77:77::2
GW4=192.168.77.1
GW6=fd77:77::1
GW_LL6=fe80::77:ff:fe00:1
CLI_LL6=fe80::77:ff:fe00:2
EXT4=203.0.113.1
EXT6=fd03:113::1
WAN4=203.0.113.2
WAN6=fd03:113::2
HTTP_PORT=5000
STUN_PORT=3478

# Exit code for "the lab cannot run here" (not root, no namespaces, tool missing): callers print SKIP.
EX_UNAVAILABLE=77

if [[ -x /usr/bin/python3 ]]; then
	PY=/usr/bin/python3
else
	PY=python3
fi

usage() {
	cat <<EOF
usage: lab.sh COMMAND [ARGS]            (root; PCPMAP_LAB=NAME picks the lab, default pmlab)

lab lifecycle
  up [--upnp yes|no] [--natpmp yes|no] [--thirdparty yes|no] [--min-lifetime N]
                          create namespaces \$PCPMAP_LAB-{cli,gw,wan}, start the STUN responder and
                          miniupnpd (defaults: upnp yes, natpmp yes = PCP + NAT-PMP, thirdparty no,
                          min-lifetime 120, values above 120 act as 120); an existing lab of that
                          name is torn down first
  down                    stop everything the lab started, delete namespaces and state (idempotent)
  env                     print NAME=value lines describing the lab (eval-able)

gateway controls
  gw-stop                 stop miniupnpd: requests draw ICMP port unreachable (ECONNREFUSED)
  gw-start                start miniupnpd again with the same configuration
  gw-restart [--flush]    restart miniupnpd (epoch restarts at 0); --flush also empties its nft
                          chains and deletes the lease files (full state loss)
  gw-usr1                 SIGUSR1: NAT-PMP address notice + PCP ANNOUNCE, epoch reset, mappings kept
  gw-block | gw-unblock   drop udp 5350-5351, udp 1900 and tcp $HTTP_PORT on the gateway's input (timeouts)
  gw-drop-pcp | gw-undrop-pcp
                          silently drop PCP (version 2) requests; NAT-PMP on the same port keeps working
  netem LOSS% [both|out] | netem off
                          random loss of TCP/UDP packets on the client's LAN link, both directions
                          (default) or only what the client sends (out, as tc netem on its link)

checks
  rules                   print the gateway's miniupnpd nft chains
  reach tcp|udp EXT INT [-6]
                          send a random token from the wan ns to $EXT4:EXT (-6: [$CLI6]:EXT through
                          the pinhole); exit 0 only if a listener on port INT in the client ns got it (2 s)
  capture-start FILE      capture udp 5350-5351 on the gateway's LAN interface into FILE (pcapng)
  capture-stop            stop that capture and flush FILE
  capture-check FILE [DISPLAY_FILTER]
                          FILE holds at least one packet matching DISPLAY_FILTER (default: portcontrol),
                          no malformed packet and no expert info of warning severity or worse

run a command in a namespace
  cli CMD... | gw CMD... | wan CMD...

environment: PCPMAP_LAB (name prefix), PCPMAP_STUN (stun_responder path), PCPMAP_BUILD_DIR (build tree,
default build; stun_responder is looked up in \$PCPMAP_BUILD_DIR/tests/interop/)
exit status: 0 ok, 1 failure, 2 usage error, $EX_UNAVAILABLE lab unavailable on this machine
EOF
}

die() {
	echo "lab.sh: $*" >&2
	exit 1
}

unavailable() {
	echo "lab.sh: lab unavailable: $*" >&2
	exit "$EX_UNAVAILABLE"
}

usage_error() {
	echo "lab.sh: $*" >&2
	echo "run 'lab.sh help' for usage" >&2
	exit 2
}

require_root() {
	[[ $(id -u) -eq 0 ]] || unavailable "must run as root (network namespaces)"
}

require_tools() {
	local t
	for t in "$@"; do
		command -v "$t" >/dev/null 2>&1 || unavailable "'$t' not installed (see scripts/install-deps.sh)"
	done
}

lab_exists() {
	[[ -e /run/netns/$NS_CLI || -e /run/netns/$NS_GW || -e /run/netns/$NS_WAN || -d $STATE ]]
}

require_lab() {
	[[ -e /run/netns/$NS_GW && -d $STATE ]] || die "lab '$PREFIX' is not up (run: lab.sh up)"
}

nap() {
	sleep "$1"
}

find_stun() {
	local c
	if [[ -n ${PCPMAP_STUN:-} ]]; then
		[[ -x $PCPMAP_STUN ]] || unavailable "PCPMAP_STUN=$PCPMAP_STUN is not an executable"
		echo "$PCPMAP_STUN"
		return
	fi
	for c in "${PCPMAP_BUILD_DIR:-build}/tests/interop/stun_responder" \
		"$REPO/${PCPMAP_BUILD_DIR:-build}/tests/interop/stun_responder"; do
		if [[ -x $c ]]; then
			echo "$c"
			return
		fi
	done
	unavailable "stun_responder not built (set PCPMAP_STUN or PCPMAP_BUILD_DIR)"
}

read_pid() {
	local f=$1 pid
	[[ -r $f ]] || return 1
	read -r pid <"$f" || return 1
	[[ $pid =~ ^[0-9]+$ ]] || return 1
	echo "$pid"
}

# True if pid is alive and lives in network namespace ns, which proves it is ours and not a recycled pid.
pid_in_ns() {
	local pid=$1 ns=$2 name
	[[ -d /proc/$pid ]] || return 1
	name=$(ip netns identify "$pid" 2>/dev/null) || return 1
	[[ $name == "$ns" ]]
}

# Sends sig to the pids given and waits (bounded, max_ms) until they are gone; SIGKILL after that.
kill_wait() {
	local sig=$1 max_ms=$2 pid i alive st
	shift 2
	[[ $# -gt 0 ]] || return 0
	for pid in "$@"; do
		kill "-$sig" "$pid" 2>/dev/null || true
	done
	for ((i = 0; i < max_ms / 10; i++)); do
		alive=0
		for pid in "$@"; do
			# a zombie (our own child not yet reaped) counts as gone
			if { read -r st <"/proc/$pid/stat"; } 2>/dev/null && [[ $st != *") Z "* ]]; then
				alive=1
				break
			fi
		done
		[[ $alive -eq 1 ]] || return 0
		nap 0.01
	done
	for pid in "$@"; do
		kill -KILL "$pid" 2>/dev/null || true
	done
}

# Stops the process recorded in pidfile (if it still runs in ns) and removes the file.
stop_pidfile() {
	local f=$1 ns=$2 sig=$3 max_ms=$4 pid
	if pid=$(read_pid "$f") && pid_in_ns "$pid" "$ns"; then
		kill_wait "$sig" "$max_ms" "$pid"
	fi
	rm -f "$f"
}

# ---------------------------------------------------------------------------------------------------------
# bring-up

write_conf() {
	local upnp=$1 natpmp=$2 thirdparty=$3 minlife=$4 uuid
	uuid=$(</proc/sys/kernel/random/uuid)
	cat >"$STATE/lab.conf" <<EOF
LAB_UPNP=$upnp
LAB_NATPMP=$natpmp
LAB_THIRDPARTY=$thirdparty
LAB_MIN_LIFETIME=$minlife
LAB_GW_QUIET=${PCPMAP_LAB_GW_QUIET:-0}
EOF
	# miniupnpd 2.3.1 configuration keys. enable_natpmp turns on PCP and NAT-PMP together.
	cat >"$STATE/miniupnpd.conf" <<EOF
ext_ifname=$GW_WAN_IF
listening_ip=$GW_LAN_IF
http_port=$HTTP_PORT
uuid=$uuid
friendly_name=pcpmap-lab-$PREFIX
secure_mode=yes
system_uptime=no
enable_natpmp=$natpmp
enable_upnp=$upnp
min_lifetime=$minlife
max_lifetime=86400
pcp_allow_thirdparty=$thirdparty
lease_file=$STATE/leases
lease_file6=$STATE/leases6
# 203.0.113.1 is a documentation address: miniupnpd only accepts it once STUN confirms it
ext_perform_stun=yes
ext_stun_host=$WAN4
ext_stun_port=$STUN_PORT
allow 1024-65535 192.168.77.0/24 1024-65535
deny 0-65535 0.0.0.0/0 0-65535
EOF
}

# The gateway's namespace gets hash tables of a router's size. A namespace otherwise shares the host's
# (262,144 TCP buckets on a 24 GiB machine), and miniupnpd reads /proc/net/tcp or /proc/net/udp on every
# request to see whether the port is in use on the gateway itself: a walk of every bucket, 2.5 ms per
# read() on such a host, two reads per request. A router with 128-256 MB has about a thousand buckets.
# The size comes from the creating namespace's *_child_hash_entries (Linux 6.1+ for TCP, 6.2+ for UDP),
# so the namespace is made from a throwaway one; older kernels get a plain namespace.
add_gateway_netns() {
	local name=$1 pid i
	if [[ ! -e /proc/sys/net/ipv4/tcp_child_ehash_entries ]]; then
		ip netns add "$name"
		return
	fi
	# shellcheck disable=SC2016 # expanded by the inner shell
	unshare -n sh -c 'echo 1024 >/proc/sys/net/ipv4/tcp_child_ehash_entries || exit 1
		echo 256 >/proc/sys/net/ipv4/udp_child_hash_entries 2>/dev/null
		exec unshare -n sleep 30' </dev/null >/dev/null 2>&1 &
	pid=$!
	for ((i = 0; i < 500; i++)); do
		[[ $(cat "/proc/$pid/comm" 2>/dev/null) == sleep ]] && break
		kill -0 "$pid" 2>/dev/null || break
		nap 0.01
	done
	if [[ $(cat "/proc/$pid/comm" 2>/dev/null) == sleep ]] && ip netns attach "$name" "$pid"; then
		kill "$pid" 2>/dev/null
		wait "$pid" 2>/dev/null || true
		return
	fi
	kill "$pid" 2>/dev/null
	wait "$pid" 2>/dev/null || true
	ip netns add "$name"
}

load_nft_skeleton() {
	# The chains miniupnpd 2.3.1 (nftables backend) expects; it adds rules to the three *miniupnpd chains.
	ip netns exec "$NS_GW" nft -f - <<EOF
table inet filter {
	chain miniupnpd {
	}
	chain prerouting_miniupnpd {
	}
	chain postrouting_miniupnpd {
	}
	chain forward {
		type filter hook forward priority filter; policy drop;
		ct state established,related accept
		iifname "$GW_LAN_IF" oifname "$GW_WAN_IF" accept
		meta l4proto ipv6-icmp accept
		jump miniupnpd
	}
	chain prerouting {
		type nat hook prerouting priority dstnat; policy accept;
		jump prerouting_miniupnpd
	}
	chain postrouting {
		type nat hook postrouting priority srcnat; policy accept;
		jump postrouting_miniupnpd
		meta nfproto ipv4 oifname "$GW_WAN_IF" masquerade
	}
}
EOF
}

# Reads /proc/PID/net/FILE (the netns of PID) and succeeds if a socket is bound to local port with state.
proc_listens() {
	local pid=$1 file=$2 port=$3 state=$4 hex laddr st
	printf -v hex '%04X' "$port"
	# fields: sl local_address rem_address st ...
	while read -r _ laddr _ st _; do
		[[ $laddr == *":$hex" && $st == "$state" ]] && return 0
	done 2>/dev/null <"/proc/$pid/net/$file" || return 1
	return 1
}

wait_linklocal() {
	local i out
	for ((i = 0; i < 100; i++)); do
		out=$(ip -n "$NS_GW" -6 -o addr show scope link 2>/dev/null || true)
		if [[ $out == *"$GW_LAN_IF"*"$GW_WAN_IF"* || $out == *"$GW_WAN_IF"*"$GW_LAN_IF"* ]] &&
			[[ $out != *tentative* ]]; then
			return 0
		fi
		nap 0.01
	done
	die "link-local IPv6 addresses of the gateway did not come up within 1 s"
}

start_stun() {
	local stun=$1 pid i
	ip netns exec "$NS_WAN" "$stun" "$STUN_PORT" </dev/null >>"$STATE/stun.log" 2>&1 &
	pid=$!
	echo "$pid" >"$STATE/stun.pid"
	for ((i = 0; i < 100; i++)); do
		proc_listens "$pid" udp6 "$STUN_PORT" 07 && return 0
		[[ -d /proc/$pid ]] || die "stun responder exited: $(tail -n 5 "$STATE/stun.log")"
		nap 0.01
	done
	die "stun responder not listening after 1 s"
}

miniupnpd_running() {
	local pid
	pid=$(read_pid "$STATE/miniupnpd.pid") && pid_in_ns "$pid" "$NS_GW"
}

start_miniupnpd() {
	local pid i ok LAB_UPNP LAB_NATPMP LAB_THIRDPARTY LAB_MIN_LIFETIME LAB_GW_QUIET=0
	local -a debug=(-d)
	# shellcheck source=/dev/null
	source "$STATE/lab.conf"
	rm -f "$STATE/miniupnpd.pid" "$STATE/miniupnpd.own.pid"
	echo "=== lab.sh: miniupnpd start $(date '+%F %T.%N')" >>"$STATE/miniupnpd.log"
	# PCPMAP_LAB_GW_QUIET=1 at `up` (the benchmarks): miniupnpd without -d, as routers run it, logging
	# notices only. With -d it also logs at debug level, and its nftables backend logs two lines per rule
	# each time it reads its rules back from the kernel, which it does for every request: 3.5 million
	# lines for 1,000 mappings, which made each request cost more than 100 ms at 1,000 rules. The tests
	# keep -d: they read that log. Without -d miniupnpd forks; its own pid file names it.
	[[ $LAB_GW_QUIET == 1 ]] && debug=()
	# Private mount namespace with /dev/null over /dev/console: miniupnpd opens syslog with LOG_CONS and
	# there is no /dev/log, so every log line would otherwise go to the machine's console.
	# ip netns exec, unshare and sh all exec, so $! is miniupnpd's own pid (with -d).
	ip netns exec "$NS_GW" unshare -m --propagation private sh -c \
		'if [ -e /dev/console ]; then mount --bind /dev/null /dev/console || exit 1; fi; exec "$@"' sh \
		miniupnpd "${debug[@]}" -f "$STATE/miniupnpd.conf" -P "$STATE/miniupnpd.own.pid" \
		</dev/null >>"$STATE/miniupnpd.log" 2>&1 &
	pid=$!
	if [[ ${#debug[@]} -eq 0 ]]; then
		wait "$pid" || die "miniupnpd failed to start; last log lines:
$(tail -n 15 "$STATE/miniupnpd.log")"
		for ((i = 0; i < 100; i++)); do
			pid=$(read_pid "$STATE/miniupnpd.own.pid") && pid_in_ns "$pid" "$NS_GW" && break
			pid=
			nap 0.05
		done
		[[ -n $pid ]] || die "miniupnpd wrote no pid file in 5 s"
	fi
	echo "$pid" >"$STATE/miniupnpd.pid"
	# Ready = the PCP/NAT-PMP socket (udp 5351) and, with UPnP, the HTTP socket listen. 5 s max.
	for ((i = 0; i < 100; i++)); do
		ok=1
		if [[ $LAB_NATPMP == yes ]]; then
			proc_listens "$pid" udp 5351 07 && proc_listens "$pid" udp6 5351 07 || ok=0
		fi
		if [[ $ok -eq 1 && $LAB_UPNP == yes ]]; then
			proc_listens "$pid" tcp "$HTTP_PORT" 0A || proc_listens "$pid" tcp6 "$HTTP_PORT" 0A || ok=0
		fi
		[[ $ok -eq 1 ]] && return 0
		if [[ ! -d /proc/$pid ]]; then
			rm -f "$STATE/miniupnpd.pid"
			die "miniupnpd exited during start-up; last log lines:
$(tail -n 15 "$STATE/miniupnpd.log")"
		fi
		nap 0.05
	done
	die "miniupnpd not listening after 5 s; last log lines:
$(tail -n 15 "$STATE/miniupnpd.log")"
}

stop_miniupnpd() {
	stop_pidfile "$STATE/miniupnpd.pid" "$NS_GW" TERM 2000
	rm -f "$STATE/miniupnpd.own.pid"
}

yesno() {
	[[ $2 == yes || $2 == no ]] || usage_error "$1 wants yes or no, not '$2'"
	echo "$2"
}

cmd_up() {
	local upnp=yes natpmp=yes thirdparty=no minlife=120 stun
	while [[ $# -gt 0 ]]; do
		case $1 in
		--upnp) upnp=$(yesno "$1" "${2-}") ;;
		--natpmp) natpmp=$(yesno "$1" "${2-}") ;;
		--thirdparty) thirdparty=$(yesno "$1" "${2-}") ;;
		--min-lifetime)
			[[ ${2-} =~ ^[0-9]+$ ]] || usage_error "--min-lifetime wants a number of seconds"
			minlife=$2
			if [[ $minlife -gt 120 ]]; then
				echo "lab.sh: note: miniupnpd 2.3.1 treats min_lifetime above 120 as 120" >&2
			fi
			;;
		*) usage_error "up: unknown option '$1'" ;;
		esac
		shift 2
	done
	if [[ $upnp == no && $natpmp == no ]]; then
		usage_error "miniupnpd exits with both --upnp no and --natpmp no; use 'up' then 'gw-stop' for a gateway without a server"
	fi
	require_root
	require_tools ip nft miniupnpd unshare
	stun=$(find_stun)
	[[ -d /run/netns || -w /run ]] || unavailable "/run/netns not available"

	if lab_exists; then
		cmd_down
	fi
	mkdir -p "$STATE"
	# From here on a failure (die, unavailable or a failing command under set -e) leaves no half-built lab.
	trap 'up_failed' EXIT

	if ! ip netns add "$NS_CLI" 2>"$STATE/netns.err"; then
		unavailable "cannot create network namespaces ($(cat "$STATE/netns.err" 2>/dev/null || true))"
	fi
	add_gateway_netns "$NS_GW"
	ip netns add "$NS_WAN"

	# No DAD (addresses usable at once) and forwarding on the gateway; set before the links exist so
	# that new interfaces inherit the defaults.
	local ns
	for ns in "$NS_CLI" "$NS_GW" "$NS_WAN"; do
		# shellcheck disable=SC2016 # expanded by the inner shell
		ip netns exec "$ns" sh -c 'for k in all default; do
			echo 0 >/proc/sys/net/ipv6/conf/$k/accept_dad; echo 0 >/proc/sys/net/ipv6/conf/$k/accept_ra
		done'
	done
	ip netns exec "$NS_GW" sh -c 'echo 1 >/proc/sys/net/ipv4/ip_forward;
		echo 1 >/proc/sys/net/ipv6/conf/all/forwarding'
	# No ICMP rate limit on the gateway: back-to-back runs would otherwise see "port unreachable" only
	# once a second, and timings of a stopped gateway would measure the kernel's limiter, not the client.
	ip netns exec "$NS_GW" sh -c 'echo 0 >/proc/sys/net/ipv4/icmp_ratelimit;
		echo 0 >/proc/sys/net/ipv6/icmp/ratelimit; echo 100000 >/proc/sys/net/ipv4/icmp_msgs_per_sec'

	# veth pairs are created inside the gateway namespace with the peer directly in the other one.
	ip -n "$NS_GW" link add "$GW_LAN_IF" address "$GW_LAN_MAC" type veth \
		peer name "$CLI_IF" address "$CLI_MAC" netns "$NS_CLI"
	ip -n "$NS_GW" link add "$GW_WAN_IF" address "$GW_WAN_MAC" type veth \
		peer name "$WAN_IF" address "$WAN_MAC" netns "$NS_WAN"

	ip -n "$NS_GW" -batch - <<EOF
link set lo up
link set $GW_LAN_IF up
link set $GW_WAN_IF up
addr add $GW4/24 dev $GW_LAN_IF
addr add $GW6/64 dev $GW_LAN_IF nodad
addr add $EXT4/24 dev $GW_WAN_IF
addr add $EXT6/64 dev $GW_WAN_IF nodad
route replace multicast ff02::1/128 dev $GW_LAN_IF table local metric 1
EOF
	ip -n "$NS_CLI" -batch - <<EOF
link set lo up
link set $CLI_IF up
addr add $CLI4/24 dev $CLI_IF
addr add $CLI4_2/24 dev $CLI_IF
addr add $CLI6/64 dev $CLI_IF nodad
route add default via $GW4
route add default via $GW6
EOF
	ip -n "$NS_WAN" -batch - <<EOF
link set lo up
link set $WAN_IF up
addr add $WAN4/24 dev $WAN_IF
addr add $WAN6/64 dev $WAN_IF nodad
route add fd77:77::/64 via $EXT6
EOF

	load_nft_skeleton
	write_conf "$upnp" "$natpmp" "$thirdparty" "$minlife"
	start_stun "$stun"
	# miniupnpd's first SSDP burst fails with ENETUNREACH without link-local addresses.
	wait_linklocal
	start_miniupnpd
	trap - EXIT
}

up_failed() {
	local rc=$?
	trap - EXIT
	if [[ $rc -ne 0 ]]; then
		echo "lab.sh: up failed, tearing the lab down" >&2
		cmd_down >/dev/null 2>&1 || true
	fi
	exit "$rc"
}

# ---------------------------------------------------------------------------------------------------------
# tear-down

cmd_down() {
	local ns pids=() p
	require_root
	# Stop what we started by pid file first (capture gets SIGTERM so its file is complete).
	if [[ -d $STATE ]]; then
		stop_pidfile "$STATE/capture.pid" "$NS_GW" TERM 2000
		stop_pidfile "$STATE/miniupnpd.pid" "$NS_GW" TERM 500
		stop_pidfile "$STATE/stun.pid" "$NS_WAN" TERM 500
	fi
	# Anything else still inside our namespaces (listeners, clients started by tests) goes too: a
	# namespace with processes in it would otherwise outlive its name.
	for ns in "$NS_CLI" "$NS_GW" "$NS_WAN"; do
		if [[ -e /run/netns/$ns ]]; then
			while read -r p; do
				[[ $p =~ ^[0-9]+$ ]] && pids+=("$p")
			done < <(ip netns pids "$ns" 2>/dev/null || true)
		fi
	done
	kill_wait TERM 500 "${pids[@]}"
	for ns in "$NS_CLI" "$NS_GW" "$NS_WAN"; do
		if [[ -e /run/netns/$ns ]]; then
			ip netns del "$ns" 2>/dev/null || true
		fi
	done
	# The parent directory stays: removing it when it looks empty races with another lab's `mkdir -p`.
	rm -rf "$STATE"
}

# ---------------------------------------------------------------------------------------------------------
# gateway controls

cmd_gw_stop() {
	require_root
	require_lab
	stop_miniupnpd
}

cmd_gw_start() {
	require_root
	require_lab
	if miniupnpd_running; then
		echo "lab.sh: miniupnpd already running" >&2
		return 0
	fi
	start_miniupnpd
}

flush_gateway_state() {
	ip netns exec "$NS_GW" nft -f - <<EOF
flush chain inet filter miniupnpd
flush chain inet filter prerouting_miniupnpd
flush chain inet filter postrouting_miniupnpd
EOF
	rm -f "$STATE/leases" "$STATE/leases6"
}

cmd_gw_restart() {
	local flush=0
	case ${1-} in
	"") ;;
	--flush) flush=1 ;;
	*) usage_error "gw-restart: unknown option '$1'" ;;
	esac
	require_root
	require_lab
	stop_miniupnpd
	if [[ $flush -eq 1 ]]; then
		flush_gateway_state
		# Checked here, between the flush and the start: once miniupnpd is back, a client that heard its
		# announcement may have restored the rules before anyone could look.
		! cmd_rules | grep -q 'dport' || die "gw-restart --flush: rules are left after the flush"
	fi
	start_miniupnpd
}

cmd_gw_usr1() {
	local pid
	require_root
	require_lab
	miniupnpd_running || die "miniupnpd is not running"
	pid=$(read_pid "$STATE/miniupnpd.pid")
	kill -USR1 "$pid"
}

cmd_gw_block() {
	require_root
	require_lab
	# A table of our own, so miniupnpd never touches it. Input path only: requests vanish (timeouts).
	ip netns exec "$NS_GW" nft -f - <<EOF
table inet pcpmaplab_block
delete table inet pcpmaplab_block
table inet pcpmaplab_block {
	chain input {
		type filter hook input priority filter - 10; policy accept;
		udp dport 5350-5351 drop
		udp dport 1900 drop
		tcp dport $HTTP_PORT drop
	}
}
EOF
}

cmd_gw_unblock() {
	require_root
	require_lab
	ip netns exec "$NS_GW" nft delete table inet pcpmaplab_block 2>/dev/null || true
}

cmd_gw_drop_pcp() {
	require_root
	require_lab
	# PCP (version byte 2) silently dropped while NAT-PMP (version 0) on the same port still works: a
	# gateway that never answers PCP, the case where serial fallbacks lose seconds.
	ip netns exec "$NS_GW" nft -f - <<EOF
table inet pcpmaplab_droppcp
delete table inet pcpmaplab_droppcp
table inet pcpmaplab_droppcp {
	chain input {
		type filter hook input priority filter - 10; policy accept;
		udp dport 5351 @th,64,8 0x02 drop
	}
}
EOF
}

cmd_gw_undrop_pcp() {
	require_root
	require_lab
	ip netns exec "$NS_GW" nft delete table inet pcpmaplab_droppcp 2>/dev/null || true
}

cmd_netem() {
	local arg=${1-} dir=${2:-both} ipart fpart mille
	require_root
	require_lab
	# The kernel may lack sch_netem, so loss is emulated with nftables: an ingress hook on each end of the
	# client's LAN link drops the given share of TCP/UDP packets (ARP/ND untouched), independently per
	# direction. "out" drops only what the client sends (what `tc netem` on the client's link does).
	if [[ $arg == off || $arg == 0 ]]; then
		ip netns exec "$NS_CLI" nft delete table netdev pcpmaplab_loss 2>/dev/null || true
		ip netns exec "$NS_GW" nft delete table netdev pcpmaplab_loss 2>/dev/null || true
		return 0
	fi
	[[ $arg =~ ^([0-9]{1,3})(\.([0-9]{1,2}))?%?$ ]] || usage_error "netem wants a loss percentage (e.g. 10 or 2.5) or off"
	ipart=${BASH_REMATCH[1]}
	fpart=${BASH_REMATCH[3]}
	fpart=${fpart}00
	mille=$((10#$ipart * 100 + 10#${fpart:0:2}))
	[[ $mille -le 10000 ]] || usage_error "netem: loss above 100%"
	local ns dev rule="numgen random mod 10000 < $mille drop"
	[[ $mille -lt 10000 ]] || rule="drop"
	[[ $dir == both || $dir == out ]] || usage_error "netem: direction is 'both' or 'out'"
	for ns in "$NS_CLI" "$NS_GW"; do
		if [[ $ns == "$NS_CLI" ]]; then dev=$CLI_IF; else dev=$GW_LAN_IF; fi
		[[ $dir == out && $ns == "$NS_CLI" ]] && continue
		ip netns exec "$ns" nft -f - <<EOF
table netdev pcpmaplab_loss
delete table netdev pcpmaplab_loss
table netdev pcpmaplab_loss {
	chain loss {
		type filter hook ingress device "$dev" priority filter; policy accept;
		meta l4proto { tcp, udp } $rule
	}
}
EOF
	done
}

# ---------------------------------------------------------------------------------------------------------
# checks

cmd_rules() {
	local c out=""
	require_root
	require_lab
	for c in miniupnpd prerouting_miniupnpd postrouting_miniupnpd; do
		out+=$(ip netns exec "$NS_GW" nft list chain inet filter "$c")$'\n'
	done
	print_tolerant "$out"
}

# Prints text without failing when the reader goes away early ("lab.sh rules | grep -q" under pipefail).
print_tolerant() {
	trap '' PIPE
	printf '%s' "$1" 2>/dev/null || true
}

# Listener (client ns): prints "ready" once bound, then "ok" and exits 0 when the token arrives.
REACH_LISTENER='
import socket, sys, time, select
proto, port, fam, token, timeout = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4].encode(), float(sys.argv[5])
af = socket.AF_INET6 if fam == "6" else socket.AF_INET
deadline = time.monotonic() + timeout
s = socket.socket(af, socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("::" if fam == "6" else "0.0.0.0", port))
if proto == "tcp":
    s.listen(8)
print("ready", flush=True)
while True:
    left = deadline - time.monotonic()
    if left <= 0:
        print("timeout", flush=True)
        sys.exit(1)
    r, _, _ = select.select([s], [], [], left)
    if not r:
        continue
    if proto == "tcp":
        c, peer = s.accept()
        data = b""
        while len(data) < len(token):
            left = deadline - time.monotonic()
            if left <= 0:
                break
            c.settimeout(left)
            try:
                chunk = c.recv(len(token) - len(data))
            except OSError:
                break
            if not chunk:
                break
            data += chunk
        c.close()
    else:
        data, peer = s.recvfrom(2048)
    if data == token:
        print("ok from %s" % (peer[0],), flush=True)
        sys.exit(0)
    print("unexpected %r from %s" % (data, peer[0]), flush=True)
'

# Sender (wan ns): one TCP connection, or three UDP datagrams 20 ms apart.
REACH_SENDER='
import socket, sys, time
proto, addr, port, token, timeout = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4].encode(), float(sys.argv[5])
af = socket.AF_INET6 if ":" in addr else socket.AF_INET
try:
    if proto == "tcp":
        s = socket.socket(af, socket.SOCK_STREAM)
        s.settimeout(timeout)
        s.connect((addr, port))
        s.sendall(token)
        s.close()
    else:
        s = socket.socket(af, socket.SOCK_DGRAM)
        for i in range(3):
            s.sendto(token, (addr, port))
            time.sleep(0.02)
except OSError as e:
    print("send to %s port %d: %s" % (addr, port, e), file=sys.stderr)
    sys.exit(1)
'

cmd_reach() {
	local proto=${1-} ext=${2-} int=${3-} fam=4 dst token line result=1
	[[ $proto == tcp || $proto == udp ]] || usage_error "reach tcp|udp EXTERNAL_PORT INTERNAL_PORT [-6]"
	[[ $ext =~ ^[0-9]+$ && $int =~ ^[0-9]+$ && $ext -ge 1 && $ext -le 65535 && $int -ge 1 && $int -le 65535 ]] ||
		usage_error "reach: ports must be 1-65535"
	case ${4-} in
	"") ;;
	-6) fam=6 ;;
	*) usage_error "reach: unknown option '$4'" ;;
	esac
	require_root
	require_lab
	if [[ $fam == 6 ]]; then dst=$CLI6; else dst=$EXT4; fi
	printf -v token 'pcpmap-lab-%08x%08x' "${SRANDOM:-$RANDOM}" "${SRANDOM:-$RANDOM}"

	coproc LISTENER { ip netns exec "$NS_CLI" "$PY" -S -c "$REACH_LISTENER" "$proto" "$int" "$fam" "$token" 2 2>&1; }
	local lpid=$LISTENER_PID lfd
	# bash closes a coprocess's descriptors as soon as it is reaped, which may happen before we read
	# its last line: read from a duplicate.
	exec {lfd}<&"${LISTENER[0]}"
	if ! read -r -t 2 -u "$lfd" line || [[ $line != ready ]]; then
		echo "lab.sh: reach: listener on port $int did not start: ${line:-}" >&2
		kill "$lpid" 2>/dev/null || true
		wait "$lpid" 2>/dev/null || true
		return 1
	fi
	line=
	if ! ip netns exec "$NS_WAN" "$PY" -S -c "$REACH_SENDER" "$proto" "$dst" "$ext" "$token" 2; then
		# refused or unreachable: no need to wait for the listener
		line="connection failed"
	elif read -r -t 3 -u "$lfd" line && [[ $line == ok* ]]; then
		result=0
		echo "reach $proto ${dst}:$ext -> client port $int: $line"
	fi
	if [[ $result -ne 0 ]]; then
		echo "lab.sh: reach $proto ${dst}:$ext -> client port $int: FAILED (${line:-no answer})" >&2
	fi
	kill "$lpid" 2>/dev/null || true
	wait "$lpid" 2>/dev/null || true
	exec {lfd}<&-
	return "$result"
}

cmd_capture_start() {
	local file=${1-} pid i
	[[ -n $file ]] || usage_error "capture-start FILE"
	require_root
	require_lab
	require_tools dumpcap
	[[ $file == /* ]] || file=$PWD/$file
	if pid=$(read_pid "$STATE/capture.pid") && pid_in_ns "$pid" "$NS_GW"; then
		die "a capture is already running (lab.sh capture-stop first)"
	fi
	rm -f "$file"
	: >"$STATE/capture.log"
	ip netns exec "$NS_GW" dumpcap -q -i "$GW_LAN_IF" -f 'udp portrange 5350-5351' -w "$file" \
		</dev/null >>"$STATE/capture.log" 2>&1 &
	pid=$!
	echo "$pid" >"$STATE/capture.pid"
	echo "$file" >"$STATE/capture.file"
	# Bounded wait until dumpcap has opened the interface, set the filter and opened the file: only then
	# does it print "File: ..." ("Capturing on" comes earlier and is not proof).
	for ((i = 0; i < 300; i++)); do
		if [[ $(<"$STATE/capture.log") == *"File: "* ]]; then
			return 0
		fi
		if [[ ! -d /proc/$pid ]]; then
			rm -f "$STATE/capture.pid"
			die "capture failed: $(<"$STATE/capture.log")"
		fi
		nap 0.01
	done
	die "capture did not start within 3 s: $(<"$STATE/capture.log")"
}

cmd_capture_stop() {
	require_root
	[[ -d $STATE ]] || return 0
	if [[ -e $STATE/capture.pid ]]; then
		# libpcap hands packets to dumpcap in blocks retired every ~250 ms and dumpcap drops the pending
		# block when it is told to stop: give the last packets time to arrive.
		nap 0.5
	fi
	stop_pidfile "$STATE/capture.pid" "$NS_GW" TERM 3000
	rm -f "$STATE/capture.file"
}

# tshark only reads a file here; it still runs in a fresh, empty network namespace, never in the host's.
tshark_read() {
	unshare -n tshark "$@"
}

cmd_capture_check() {
	local file=${1-} want=${2:-portcontrol} n bad err
	[[ -n $file ]] || usage_error "capture-check FILE [DISPLAY_FILTER]"
	require_root
	require_tools tshark unshare
	[[ -r $file ]] || die "capture-check: cannot read '$file'"
	err=$(mktemp)
	if ! n=$(tshark_read -r "$file" -Y "$want" -T fields -e frame.number 2>"$err" | wc -l); then
		n=0
	fi
	if ! bad=$(tshark_read -r "$file" -Y '_ws.malformed || _ws.expert.severity >= warning' \
		-T fields -e frame.number -e _ws.col.Info -e _ws.expert.message 2>>"$err"); then
		cat "$err" >&2
		rm -f "$err"
		die "capture-check: tshark failed on '$file'"
	fi
	rm -f "$err"
	if [[ $n -lt 1 ]]; then
		echo "lab.sh: capture-check: no packet matching '$want' in $file" >&2
		return 1
	fi
	if [[ -n $bad ]]; then
		echo "lab.sh: capture-check: malformed packets or expert warnings in $file:" >&2
		echo "$bad" >&2
		return 1
	fi
	echo "capture-check: $n packet(s) matching '$want', no malformed packet, no expert warning"
}

cmd_env() {
	cat <<EOF
PCPMAP_LAB=$PREFIX
PCPMAP_LAB_STATE=$STATE
PCPMAP_LAB_CLI_NS=$NS_CLI
PCPMAP_LAB_GW_NS=$NS_GW
PCPMAP_LAB_WAN_NS=$NS_WAN
PCPMAP_LAB_CLI_IF=$CLI_IF
PCPMAP_LAB_GW_LAN_IF=$GW_LAN_IF
PCPMAP_LAB_GW_WAN_IF=$GW_WAN_IF
PCPMAP_LAB_WAN_IF=$WAN_IF
PCPMAP_LAB_CLI4=$CLI4
PCPMAP_LAB_CLI4_2=$CLI4_2
PCPMAP_LAB_CLI6=$CLI6
PCPMAP_LAB_CLI_LL6=$CLI_LL6
PCPMAP_LAB_GW4=$GW4
PCPMAP_LAB_GW6=$GW6
PCPMAP_LAB_GW_LL6=$GW_LL6
PCPMAP_LAB_EXT4=$EXT4
PCPMAP_LAB_EXT6=$EXT6
PCPMAP_LAB_WAN4=$WAN4
PCPMAP_LAB_WAN6=$WAN6
PCPMAP_LAB_PCP_PORT=5351
PCPMAP_LAB_HTTP_PORT=$HTTP_PORT
PCPMAP_LAB_ROOTDESC=http://$GW4:$HTTP_PORT/rootDesc.xml
PCPMAP_LAB_MINIUPNPD_LOG=$STATE/miniupnpd.log
EOF
	if [[ -r $STATE/lab.conf ]]; then
		local LAB_UPNP LAB_NATPMP LAB_THIRDPARTY LAB_MIN_LIFETIME
		# shellcheck source=/dev/null
		source "$STATE/lab.conf"
		cat <<EOF
PCPMAP_LAB_UPNP=$LAB_UPNP
PCPMAP_LAB_NATPMP=$LAB_NATPMP
PCPMAP_LAB_THIRDPARTY=$LAB_THIRDPARTY
PCPMAP_LAB_MIN_LIFETIME=$LAB_MIN_LIFETIME
EOF
	fi
}

cmd_exec() {
	local ns=$1
	shift
	[[ $# -gt 0 ]] || usage_error "missing command"
	require_root
	[[ -e /run/netns/$ns ]] || die "namespace $ns does not exist (run: lab.sh up)"
	exec ip netns exec "$ns" "$@"
}

main() {
	local cmd=${1-}
	[[ $# -gt 0 ]] && shift
	case $cmd in
	up) cmd_up "$@" ;;
	down) cmd_down ;;
	gw-stop) cmd_gw_stop ;;
	gw-start) cmd_gw_start ;;
	gw-restart) cmd_gw_restart "$@" ;;
	gw-usr1) cmd_gw_usr1 ;;
	gw-block) cmd_gw_block ;;
	gw-unblock) cmd_gw_unblock ;;
	gw-drop-pcp) cmd_gw_drop_pcp ;;
	gw-undrop-pcp) cmd_gw_undrop_pcp ;;
	netem) cmd_netem "$@" ;;
	rules) cmd_rules ;;
	reach) cmd_reach "$@" ;;
	capture-start) cmd_capture_start "$@" ;;
	capture-stop) cmd_capture_stop ;;
	capture-check) cmd_capture_check "$@" ;;
	env) cmd_env ;;
	cli) cmd_exec "$NS_CLI" "$@" ;;
	gw) cmd_exec "$NS_GW" "$@" ;;
	wan) cmd_exec "$NS_WAN" "$@" ;;
	help | -h | --help) usage ;;
	"")
		usage >&2
		exit 2
		;;
	*) usage_error "unknown command '$cmd'" ;;
	esac
}

main "$@"
