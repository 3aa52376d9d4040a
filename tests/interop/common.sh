# Scaffolding shared by every interop case script (cases.sh, cases-natpmp.sh, cases-upnp.sh, cases-compat.sh,
# cases-daemon.sh, cases-daemon-mode.sh). The sourcing script sets CASE_PREFIX (lab name prefix) and
# CASE_SCRIPT (its name, for usage), passes its arguments, and may define these hooks:
#   case_cleanup    stops what the case started (daemons, background clients) when the script exits
#   case_lab_ready  runs after each successful lab_up (e.g. checks that the programs it needs are built)
# Provides: LAB, LAB_STATE, PCPMAP, CASE, WORK (with XDG_RUNTIME_DIR=$WORK/xdg: a gateway cache per case), GW4,
# EXT4, the EXIT trap (which also fails a passing case whose programs reported a sanitizer error in $WORK),
# fail, ok, keep, lab_up, pm, json_field, rules_have, and the gateway cross-checks client_mappings, gw_mappings, expect_gateway, expect_gone, and for the daemon's cases
# daemon_mappings and expect_gateway_daemon.
# The rules tests/interop/scaffold-check.sh holds every case script to: it sources this file, sets no trap of
# its own (case_cleanup instead), and every output of a program of ours lands in $WORK/*.out, *.err or *.log
# (never /dev/null; output captured in a variable is handed to keep), where the sanitizer check reads it.
# Every case builds its own lab named after it, so cases of different names run in parallel.
# shellcheck shell=bash

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
LAB=$HERE/lab.sh
: "${PCPMAP_BUILD_DIR:?PCPMAP_BUILD_DIR must name the build tree}"
export PCPMAP_BUILD_DIR
PCPMAP=${PCPMAP_BIN:-$PCPMAP_BUILD_DIR/cli/pcpmap}
CASE=${1:?usage: $CASE_SCRIPT CASE}
# The lab's name: PREFIX-CASE; a long one keeps 23 characters and a checksum of the whole, so two cases never
# share a lab. PCPMAP_LAB_TAG (optional, at most 10 characters) keeps labs of two build trees apart.
lab_name() {
	local n=$CASE_PREFIX-${CASE//_/-} sum
	if ((${#n} > 30)); then
		sum=$(printf '%s' "$n" | cksum)
		printf -v sum '%06x' $((${sum%% *} % 16777216))
		n=${n:0:23}-$sum
	fi
	echo "${PCPMAP_LAB_TAG:-}$n"
}
PCPMAP_LAB=$(lab_name)
export PCPMAP_LAB
LAB_STATE=/run/pcpmap-lab/$PCPMAP_LAB
WORK=$(mktemp -d "/tmp/pcpmap-interop-$CASE_PREFIX.XXXXXX")
# The gateway cache (warm starts) of the programs a case runs stays in the case: every lab's gateway has the
# same addresses, so a shared /run/pcpmap would carry one case's gateway into another's.
mkdir -m 0700 "$WORK/xdg"
export XDG_RUNTIME_DIR=$WORK/xdg
GW4=192.168.77.1
EXT4=203.0.113.1

# True when a program the case ran reported a sanitizer error (AddressSanitizer, LeakSanitizer,
# UndefinedBehaviorSanitizer) in its output: a sanitizer build must not pass with one.
sanitizer_report() {
	local f
	for f in "$WORK"/*.out "$WORK"/*.err "$WORK"/*.log; do
		if [[ -f $f ]] && grep -q 'Sanitizer\|runtime error:' "$f"; then
			echo "$f"
			return 0
		fi
	done
	return 1
}

cleanup() {
	local rc=$? f
	if declare -F case_cleanup >/dev/null; then
		case_cleanup || true
	fi
	if [[ -n ${BG_PID:-} ]]; then
		kill "$BG_PID" 2>/dev/null || true
		wait "$BG_PID" 2>/dev/null || true
	fi
	"$LAB" capture-stop >/dev/null 2>&1 || true
	if [[ $rc -eq 0 ]] && f=$(sanitizer_report); then
		echo "FAIL [$CASE]: sanitizer report in $(basename "$f"):"
		grep -m5 -A3 'Sanitizer\|runtime error:' "$f" || true
		rc=1
	fi
	if [[ $rc -ne 0 && $rc -ne 77 ]]; then
		echo "--- case $CASE failed (rc $rc); output of the programs it ran:"
		tail -n 40 "$WORK"/*.out "$WORK"/*.err "$WORK"/*.log 2>/dev/null || true
		echo "--- miniupnpd log:"
		tail -n 25 "$LAB_STATE/miniupnpd.log" 2>/dev/null || true
	fi
	# After the report: the lab's state directory holds the gateway's log.
	"$LAB" down >/dev/null 2>&1 || true
	rm -rf "$WORK"
	exit $rc
}
trap cleanup EXIT

fail() {
	echo "FAIL [$CASE]: $*" >&2
	exit 1
}
# Keeps output a case captured in a variable where the sanitizer check reads it: keep NAME "$out".
keep() {
	printf '%s\n' "$2" >>"$WORK/$1.out"
}
ok() {
	echo "ok [$CASE]: $*"
}

# Counts packets the gateway receives: count_start NAME RULE (an nft match, e.g. "udp dport 1900"), then
# count_read NAME prints how many matched since.
count_start() {
	"$LAB" gw nft -f - <<EOF
table inet pcpmaptest_$1
delete table inet pcpmaptest_$1
table inet pcpmaptest_$1 {
	chain input {
		type filter hook input priority filter - 20; policy accept;
		$2 counter
	}
}
EOF
}

count_read() {
	"$LAB" gw nft list table inet "pcpmaptest_$1" | grep -o 'packets [0-9]*' | awk '{print $2}'
}

# LAB_UP_ARGS (optional, set by the sourcing script) go to every `lab.sh up`, before the case's own.
lab_up() {
	local rc=0
	"$LAB" up ${LAB_UP_ARGS[@]+"${LAB_UP_ARGS[@]}"} "$@" >"$WORK/lab.out" 2>&1 || rc=$?
	if [[ $rc -eq 77 ]]; then
		echo "SKIP [$CASE]: $(tail -n1 "$WORK/lab.out")"
		exit 77
	fi
	[[ $rc -eq 0 ]] || { cat "$WORK/lab.out"; fail "lab did not come up"; }
	if declare -F case_lab_ready >/dev/null; then
		case_lab_ready
	fi
}

# Runs pcpmap in the client namespace; output in $WORK/NAME.out, exit code in $RC.
pm() {
	local name=$1
	shift
	RC=0
	"$LAB" cli "$PCPMAP" "$@" >"$WORK/$name.out" 2>"$WORK/$name.err" || RC=$?
	cat "$WORK/$name.err" >>"$WORK/$name.out"
}

json_field() { # FILE KEY (a dotted path, e.g. external.port) from the first JSON line with "event":"mapped"
	python3 - "$1" "$2" <<'PY'
import json, sys
for line in open(sys.argv[1]):
    line = line.strip()
    if not line.startswith('{'):
        continue
    d = json.loads(line)
    if d.get('event') not in ('mapped', 'changed'):
        continue
    for k in sys.argv[2].split('.'):
        d = d[k]
    print(d)
    break
PY
}

rules_have() { # PORT: the gateway holds a rule naming this port
	local r
	r=$("$LAB" rules)
	grep -qw -- "$1" <<<"$r"
}

has() { # FILE LITERAL: fails the case unless FILE holds LITERAL
	grep -qF -- "$2" "$1" || fail "$(basename "$1") lacks '$2': $(tail -n 5 "$1" 2>/dev/null)"
}

wait_line() { # FILE LITERAL SECONDS: waits (bounded) until FILE holds LITERAL
	local i
	for ((i = 0; i < $3 * 10; i++)); do
		grep -qF -- "$2" "$1" 2>/dev/null && return 0
		sleep 0.1
	done
	fail "$(basename "$1") never printed '$2'"
}

wait_rule_gone() { # PORT: waits up to 3 s for the gateway to drop its rule for destination port PORT
	local i
	for ((i = 0; i < 30; i++)); do
		rules_have "dport $1" || return 0
		sleep 0.1
	done
	fail "the gateway still has a rule for port $1"
}

gw_log_has() { # LITERAL: miniupnpd logged it since the lab came up
	grep -qF -- "$1" "$LAB_STATE/miniupnpd.log" || fail "miniupnpd did not log '$1'"
}

# ---- The client's view against the gateway's rules ----
# A mapping is named "PROTO EXTPORT INTADDR:INTPORT" (e.g. "tcp 17006 192.168.77.2:7006"), one per line.

# The IPv4 port mappings the client reported in FILEs: in each, the last "mapped" or "changed" line (JSON
# or human output: what the client holds now), both halves of a port pair.
client_mappings() { # FILE...
	python3 - "$@" <<'PY'
import json, re, sys
human = re.compile(r'^(?:mapped|changed) (tcp|udp) ([0-9.]+):(\d+) -> [0-9.]+:(\d+)(?: \(\+(\d+),)?')
for path in sys.argv[1:]:
    last = None
    for line in open(path):
        line = line.strip()
        if line.startswith('{'):
            d = json.loads(line)
            if d.get('event') not in ('mapped', 'changed') or d.get('kind') != 'map':
                continue
            if ':' in d['internal']['address']:
                continue
            last = (d['transport'], d['internal']['address'], d['internal']['port'],
                    d['external']['port'], d['external'].get('port2'))
        else:
            m = human.match(line)
            if m:
                last = (m.group(1), m.group(2), int(m.group(3)), int(m.group(4)),
                        int(m.group(5)) if m.group(5) else None)
    if last:
        t, ia, ip, ep, ep2 = last
        print(f"{t} {ep} {ia}:{ip}")
        if ep2:
            print(f"{t} {ep2} {ia}:{ip + 1}")
PY
}

# The IPv4 port mappings the gateway holds: its DNAT rules (miniupnpd's nftables chains).
gw_mappings() {
	"$LAB" rules | python3 -c '
import re, sys
names = {"0x6": "tcp", "0x06": "tcp", "0x11": "udp", "6": "tcp", "17": "udp", "tcp": "tcp", "udp": "udp"}
for line in sys.stdin:
    m = re.search(r"dnat ip to ([0-9.]+):(\d+)", line)
    d = re.search(r"\bdport (\d+)", line)
    if not m or not d:
        continue
    p = re.search(r"@nh,72,8 (0x[0-9a-f]+)|\b(tcp|udp) dport|meta l4proto (\w+)", line)
    proto = names.get(next((g for g in p.groups() if g), "")) if p else "?"
    print(f"{proto} {d.group(1)} {m.group(1)}:{m.group(2)}")
'
}

# Fails unless the gateway's port mappings are exactly those named (one per argument, or none): the client
# and the gateway agree, nothing is missing, nothing is left over or doubled.
expect_gateway() { # "PROTO EXT INTADDR:INTPORT"...
	local want have
	want=$(printf '%s\n' "$@" | sed '/^$/d' | sort)
	have=$(gw_mappings | sort)
	[[ $want == "$have" ]] ||
		fail "the gateway's mappings differ from the client's: client [${want//$'\n'/, }], gateway [${have//$'\n'/, }]"
}

# expect_gateway with the mappings reported in FILEs (plus any extra ones named with -m "SPEC").
expect_gateway_from() { # [-m SPEC]... FILE...
	local extra=() specs
	while [[ ${1-} == -m ]]; do
		extra+=("$2")
		shift 2
	done
	specs=$(client_mappings "$@")
	[[ -n $specs || $# -eq 0 ]] || fail "no mapping reported in $*"
	local list=()
	[[ -z $specs ]] || mapfile -t list <<<"$specs"
	expect_gateway "${list[@]}" "${extra[@]}"
}

# After a delete: no rule of any chain names the external port (DNAT, filter, pinhole or PEER SNAT).
expect_gone() { # PORT [WHAT]
	local r
	r=$("$LAB" rules | grep -w -- "dport $1" || true)
	[[ -z $r ]] || fail "${2:-the mapping} on port $1 was reported deleted but the gateway still holds: $r"
}

# The IPv4 port mappings in a pcpmapd list (`pcpmap daemon list` output in FILE): MAP mappings the gateway
# granted (MAPPED or REFRESHING), both halves of a port pair.
daemon_mappings() { # FILE
	python3 - "$1" <<'PY'
import sys
names = {"6": "tcp", "17": "udp"}
for line in open(sys.argv[1]):
    if not line.startswith("mapping "):
        continue
    f = dict(kv.split("=", 1) for kv in line.split()[1:] if "=" in kv)
    if f.get("kind") != "map" or f.get("state") not in ("MAPPED", "REFRESHING"):
        continue
    ia, ip = f["int"].rsplit(":", 1)
    if ":" in ia:
        continue
    proto = names.get(f["ip_proto"], "?")
    print(f"{proto} {f['ext'].rsplit(':', 1)[1]} {ia}:{ip}")
    if "ext2" in f:
        print(f"{proto} {f['ext2']} {ia}:{int(ip) + 1}")
PY
}

# The daemon's whole list (asked over $SOCK, which the sourcing script sets, with `pcpmap daemon list`) against the gateway's
# rules: they must agree exactly, within 5 s (a delete or renewal in flight settles meanwhile).
expect_gateway_daemon() {
	local want have
	for _ in $(seq 50); do
		"$LAB" cli "$PCPMAP" daemon -s "$SOCK" list >"$WORK/final-list.out" 2>&1 ||
			fail "the daemon's list failed: $(cat "$WORK/final-list.out")"
		want=$(daemon_mappings "$WORK/final-list.out" | sort)
		have=$(gw_mappings | sort)
		[[ $want != "$have" ]] || return 0
		sleep 0.1
	done
	fail "the gateway's mappings differ from the daemon's: daemon [${want//$'\n'/, }], gateway [${have//$'\n'/, }]"
}
