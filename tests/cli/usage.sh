#!/usr/bin/env bash
# Argument errors of the pcpmap tool: exit codes (2 for usage errors, 0 for --help and --version) and an
# error message on stderr that names the problem. Only commands that fail before contacting a gateway are run;
# as a safety net everything runs in an empty network namespace when unshare(1) allows it, under a timeout.
# Usage: PCPMAP_BIN=path/to/pcpmap tests/cli/usage.sh   (default: build/cli/pcpmap). Exit 0 pass, 1 fail.
set -u
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
bin=${PCPMAP_BIN:-build/cli/pcpmap}
[[ "$bin" != /* && ! -x "$bin" && -x "$root/$bin" ]] && bin="$root/$bin"
if [[ ! -x "$bin" ]]; then
	echo "usage.sh: no pcpmap binary at '$bin' (set PCPMAP_BIN)"
	exit 1
fi

# No network for the tool: a fresh network namespace (as root, or through a user namespace).
isolate=()
if unshare -n true 2>/dev/null; then
	isolate=(unshare -n)
elif unshare -rn true 2>/dev/null; then
	isolate=(unshare -rn)
fi

out=$(mktemp)
err=$(mktemp)
trap 'rm -f "$out" "$err"' EXIT
fail=0
n=0

run()
{
	"${isolate[@]}" timeout 10 "$bin" "$@" >"$out" 2>"$err"
}

report()
{
	n=$((n + 1))
	if [[ -z "$1" ]]; then
		echo "ok $n - $2"
	else
		echo "not ok $n - $2: $1"
		sed 's/^/#   stdout: /' "$out"
		sed 's/^/#   stderr: /' "$err"
		fail=1
	fi
}

# usage_err "PATTERN" ARGS...: exit 2, stderr matches PATTERN (extended regex) and offers --help, stdout empty.
usage_err()
{
	local pat=$1 why=""
	shift
	run "$@"
	local rc=$?
	if [[ $rc != 2 ]]; then
		why="exit $rc, want 2"
	elif ! grep -Eq -- "$pat" "$err"; then
		why="stderr does not match /$pat/"
	elif ! grep -q -- "--help" "$err"; then
		why="stderr does not point to --help"
	elif [[ -s "$out" ]]; then
		why="unexpected stdout"
	fi
	report "$why" "pcpmap $* -> 2, /$pat/"
}

# help_ok CMD...: exit 0, "Usage: pcpmap ..." on stdout, nothing on stderr.
help_ok()
{
	local why=""
	run "$@"
	local rc=$?
	if [[ $rc != 0 ]]; then
		why="exit $rc, want 0"
	elif ! grep -q "^Usage: pcpmap" "$out"; then
		why="no 'Usage: pcpmap' on stdout"
	elif [[ -s "$err" ]]; then
		why="unexpected stderr"
	fi
	report "$why" "pcpmap $* -> 0, Usage"
}

# The command
usage_err "needs a command"
usage_err "unknown command 'frob'" frob
usage_err "unknown command '--bogus'" --bogus

# map: arguments
usage_err "needs PROTO and PORT" map
usage_err "needs PROTO and PORT" map tcp
usage_err "needs PROTO and PORT" map tcp 80 81
usage_err "PROTO is tcp, udp or all, not 'sctp'" map sctp 80
usage_err "PORT is 1-65535, not '0'" map tcp 0
usage_err "PORT is 1-65535, not '70000'" map tcp 70000
usage_err "PORT is 1-65535, not 'http'" map tcp http
usage_err "PORT is 1-65535, not '65536'" map udp 65536
# map: option values
usage_err "--timeout .*'abc'" map tcp 80 --timeout abc
usage_err "--timeout .*'0'" map tcp 80 -t 0
usage_err "--lifetime .*'-1'" map tcp 80 --lifetime -1
usage_err "--lifetime .*'0'" map tcp 80 --lifetime 0
usage_err "--external-port .*'70000'" map tcp 80 -e 70000
usage_err "--external-port .*'0'" map tcp 80 --external-port 0
usage_err "--filter .*'10.0.0.0/33'" map tcp 80 --filter 10.0.0.0/33
usage_err "--filter .*'2001:db8::/129'" map tcp 80 --filter 2001:db8::/129
usage_err "--filter .*'198.51.100.1,70000'" map tcp 80 --filter 198.51.100.1,70000
usage_err "--protocol .*'sctp'" map tcp 80 --protocol sctp
usage_err "--protocol .*'pcp,pcp'" map tcp 80 --protocol pcp,pcp
usage_err "unrecognized option '--bogus'" map tcp 80 --bogus
usage_err "option '--lifetime' requires an argument" map tcp 80 --lifetime

# unmap
usage_err "needs PROTO and PORT" unmap
usage_err "needs --nonce" unmap tcp 80
usage_err "--nonce wants 24 hex digits, not 'xyz'" unmap tcp 80 --nonce xyz
usage_err "--nonce wants 24 hex digits" unmap tcp 80 --nonce 0123456789abcdef0123456
usage_err "--nonce wants 24 hex digits" unmap tcp 80 --nonce 0123456789abcdef012345678
usage_err "--nonce wants 24 hex digits" unmap tcp 80 --nonce 0123456789abcdef012345zz
usage_err "PROTO is tcp, udp or all, not 'icmp'" unmap icmp 80 --nonce 0123456789abcdef01234567
usage_err "PORT is 1-65535, not '0'" unmap udp 0 --nonce 0123456789abcdef01234567

# peer
usage_err "needs PROTO PORT PEER_ADDR PEER_PORT" peer tcp 40000
usage_err "PROTO is tcp or udp, not 'all'" peer all 40000 198.51.100.7 443
usage_err "PORT is 1-65535, not '0'" peer tcp 0 198.51.100.7 443
usage_err "PEER_PORT is 1-65535, not '0'" peer udp 40000 198.51.100.7 0
usage_err "PEER_ADDR 'notanip' is not an IPv4 or IPv6 address" peer tcp 40000 notanip 443
usage_err "--pair" peer tcp 40000 198.51.100.7 443 --pair
usage_err "--prefer-failure" peer tcp 40000 198.51.100.7 443 --prefer-failure
usage_err "--filter" peer tcp 40000 198.51.100.7 443 --filter 198.51.100.7

# commands without positional arguments
usage_err "unexpected argument 'extra'" announce extra
usage_err "unexpected argument 'extra'" probe extra
usage_err "--timeout .*'-5'" probe --timeout -5

# --help: the tool's, and every command's that the tool's help lists
help_ok --help
help_ok -h
commands=$(run --help && sed -n '/^Commands:/,/^$/p' "$out" | sed -n 's/^  \([a-z][a-z-]*\) .*/\1/p')
for c in map peer unmap announce probe; do
	if ! grep -qx "$c" <<<"$commands"; then
		report "not in 'pcpmap --help'" "command $c listed"
	fi
done
for c in $commands; do
	help_ok "$c" --help
	help_ok "$c" -h
done
# --help wins over argument errors that come after it is seen
help_ok map sctp --help

# Planned commands, checked once the tool has them.
if grep -qx external-address <<<"$commands"; then
	usage_err "unexpected argument 'extra'" external-address extra
fi
if grep -qx connections <<<"$commands"; then
	usage_err "--pick .*'0'" connections --pick 0
	usage_err "--pick .*'abc'" connections --pick abc
	usage_err "PROTO is tcp, udp or all, not 'sctp'" connections sctp
	usage_err "--prefer-failure, --filter and --pair" connections --pick 1 --pair
fi

# --version
run --version
rc=$?
why=""
if [[ $rc != 0 ]]; then
	why="exit $rc, want 0"
elif ! grep -Eq '^pcpmap [0-9]+\.[0-9]+\.[0-9]+' "$out"; then
	why="stdout is not 'pcpmap X.Y.Z'"
fi
report "$why" "pcpmap --version -> 0, version"

echo "1..$n"
if ((fail)); then
	echo "usage.sh: FAILED"
	exit 1
fi
echo "usage.sh: $n checks passed${isolate[*]:+ (isolated: ${isolate[*]})}"
exit 0
