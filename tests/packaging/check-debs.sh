#!/usr/bin/env bash
# Builds pcpmap's Debian packages (packaging/build-deb.sh), runs lintian on them, installs them on this
# machine with dpkg -i and checks them: the tool runs, pkg-config and CMake find the libraries from an
# outside program, systemd-analyze accepts the unit, the install started no daemon; then purges them all
# and checks that nothing is left in /usr, /etc and /var/lib (dpkg's own database aside).
#
# Meant for a throwaway CI machine, as root. It guards the machine: it refuses to run when any pcpmap
# package or any file the packages ship is already there; while the packages are installed a
# policy-rc.d denies every service start (and, under systemd, pcpmapd.service is masked for this
# boot); pcpmapd itself is only ever run for --help/--check-config, in a new network namespace; on
# any exit the packages are purged and the machine's policy-rc.d and unit state are put back.
#
# Usage: tests/packaging/check-debs.sh [OUTDIR]   (OUTDIR keeps the .debs; default: a temporary dir)
# The package build runs the unit tests as dpkg-buildpackage does; PCPMAP_DEB_NOCHECK=1 skips them (scripts/test.sh
# sets it: its first build has the package's hardening flags and has run those tests).
# Exit 0 pass, 1 fail, 77 skip (no dpkg-buildpackage, not root).
set -uo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)

skip() { echo "check-debs: SKIP: $*"; exit 77; }
command -v dpkg-buildpackage >/dev/null || skip "dpkg-buildpackage is not installed (apt-get install dpkg-dev debhelper)"
[ "$(id -u)" = 0 ] || skip "needs root: installs the packages with dpkg -i"
[ -z "${PCPMAP_DEB_BUILD:-}" ] || skip "running inside a package build (packaging/build-deb.sh)"
export DEBIAN_FRONTEND=noninteractive LC_ALL=C.UTF-8
unset PKG_CONFIG_PATH CMAKE_PREFIX_PATH LD_LIBRARY_PATH

pass=0
failed=0
ok() { pass=$((pass + 1)); echo "ok - $*"; }
bad() { failed=$((failed + 1)); echo "not ok - $*"; }
check() { # check DESCRIPTION COMMAND...: passes when the command succeeds
	local what=$1
	shift
	if "$@"; then ok "$what"; else bad "$what"; fi
}
die() { echo "check-debs: $*" >&2; exit 1; }

tmp=$(mktemp -d "${TMPDIR:-/tmp}/pcpmap-check-debs.XXXXXX")
chmod 755 "$tmp"
out=${1:-$tmp/debs}
installed=()     # packages this script installed, purged on exit
policy_made=0    # 1: we created /usr/sbin/policy-rc.d; 2: we set the machine's aside in $tmp
masked=0
cleanup() {
	local rc=$?
	if [ ${#installed[@]} -gt 0 ]; then
		echo "check-debs: cleaning up: purging ${installed[*]}"
		dpkg --purge "${installed[@]}" </dev/null >/dev/null 2>&1 || true
	fi
	[ $masked = 1 ] && systemctl unmask --runtime pcpmapd.service >/dev/null 2>&1
	case $policy_made in
	1) rm -f /usr/sbin/policy-rc.d ;;
	2) mv -f "$tmp/policy-rc.d.saved" /usr/sbin/policy-rc.d ;;
	esac
	rm -rf "$tmp"
	exit $rc
}
trap cleanup EXIT
trap 'exit 1' INT TERM HUP

# --- Build -----------------------------------------------------------------------------------------
build_opts=()
[ "${PCPMAP_DEB_NOCHECK:-0}" = 1 ] && build_opts=(--no-check)
start=$(date +%s)
if ! "$root/packaging/build-deb.sh" "${build_opts[@]}" "$out" >"$tmp/build.log" 2>&1; then
	tail -n 60 "$tmp/build.log"
	die "packaging/build-deb.sh failed (log above)"
fi
echo "check-debs: packages built in $(($(date +%s) - start)) s${build_opts[*]:+ (${build_opts[*]}: without their unit tests)}"
shopt -s nullglob
changes=("$out"/pcpmap_*.changes)
[ ${#changes[@]} = 1 ] || die "expected one pcpmap_*.changes in $out"
debs=()
for f in "$out"/*.deb; do
	case $f in *-dbgsym_*) ;; *) debs+=("$f") ;; esac
done
pkgs=()
for f in "${debs[@]}"; do pkgs+=("$(dpkg-deb -f "$f" Package)"); done
echo "check-debs: packages: ${pkgs[*]}"
upstream=$(dpkg-deb -f "${debs[0]}" Version)
upstream=${upstream%-*}
for p in libpcpmap0 libpcpmap-dev pcpmap pcpmapd; do
	check "package $p was built" grep -qx "$p" <(printf '%s\n' "${pkgs[@]}")
done
have_compat=0
[ -f "$root/compat/CMakeLists.txt" ] && have_compat=1
if [ $have_compat = 1 ]; then
	for p in libpcpmap-natpmp1 libpcpmap-natpmp-dev libpcpmap-miniupnpc17 libpcpmap-miniupnpc-dev pcpmap-dropin; do
		check "package $p was built" grep -qx "$p" <(printf '%s\n' "${pkgs[@]}")
	done
fi

# --- lintian ---------------------------------------------------------------------------------------
if command -v lintian >/dev/null; then
	if lintian --fail-on error,warning --display-level '>=warning' "${changes[0]}" >"$tmp/lintian.log" 2>&1; then
		ok "lintian: no errors or warnings"
	else
		grep -v 'running with root privileges' "$tmp/lintian.log"
		bad "lintian: errors or warnings (above)"
	fi
else
	bad "lintian is not installed (apt-get install lintian; scripts/install-deps.sh)"
fi

# --- Guards before touching the machine ------------------------------------------------------------
for p in "${pkgs[@]}"; do
	st=$(dpkg-query -W -f '${db:Status-Status}' "$p" 2>/dev/null)
	case $st in "" | not-installed) ;; *) die "refusing: package $p is already on this machine ($st); purge it first" ;; esac
done
for f in "${debs[@]}"; do
	while read -r path; do
		if [ -e "$path" ] || [ -L "$path" ]; then die "refusing: $path (from $(basename "$f")) already exists"; fi
	done < <(dpkg-deb --fsys-tarfile "$f" | tar -t | sed -n 's|^\./|/|; /[^/]$/p')
done
[ ! -e /run/pcpmapd ] || die "refusing: /run/pcpmapd exists (a pcpmapd runs here?)"
if [ -e /usr/sbin/policy-rc.d ]; then
	if /usr/sbin/policy-rc.d pcpmapd.service start >/dev/null 2>&1; [ $? != 101 ]; then
		mv /usr/sbin/policy-rc.d "$tmp/policy-rc.d.saved"
		policy_made=2
	fi
else
	policy_made=1
fi
if [ $policy_made != 0 ]; then
	printf '#!/bin/sh\n# check-debs.sh: no service may start while it runs\nexit 101\n' >/usr/sbin/policy-rc.d
	chmod 755 /usr/sbin/policy-rc.d
fi
systemd_up=0
if [ -d /run/systemd/system ] && command -v systemctl >/dev/null; then
	systemd_up=1
	[ ! -e /run/systemd/system/pcpmapd.service ] || die "refusing: /run/systemd/system/pcpmapd.service exists"
	systemctl mask --runtime pcpmapd.service >/dev/null && masked=1
fi

# Every process whose executable is the installed daemon.
daemon_pids() {
	local p
	for p in /proc/[0-9]*; do
		case $(readlink "$p/exe" 2>/dev/null) in /usr/sbin/pcpmapd | "/usr/sbin/pcpmapd (deleted)") echo "${p#/proc/}" ;; esac
	done
}
snapshot() {
	find /usr /etc /var/lib -xdev \( -path /var/lib/dpkg -o -path /var/lib/apt -o -path /var/lib/systemd/timers \) \
		-prune -o -print 2>/dev/null | LC_ALL=C sort >"$1"
}
snapshot "$tmp/before.list"

# --- Install ---------------------------------------------------------------------------------------
installed=("${pkgs[@]}")
if dpkg -i "${debs[@]}" </dev/null >"$tmp/dpkg-i.log" 2>&1; then
	ok "dpkg -i of ${#debs[@]} packages"
else
	cat "$tmp/dpkg-i.log"
	bad "dpkg -i (log above)"
fi
for p in "${pkgs[@]}"; do
	check "$p is installed" test "$(dpkg-query -W -f '${db:Status-Abbrev}' "$p" 2>/dev/null)" = "ii "
done

# --- The tool --------------------------------------------------------------------------------------
v=$(pcpmap --version 2>&1)
check "pcpmap --version runs and says $upstream ($v)" grep -qF "$upstream" <<<"$v"
check "man page pcpmap(1)" test -f /usr/share/man/man1/pcpmap.1.gz
check "bash completion for pcpmap loads" \
	bash -c 'source /usr/share/bash-completion/completions/pcpmap && complete -p pcpmap >/dev/null'
# `pcpmap top` is a module the tool loads for that command only: without a terminal it runs and says so
# (exit 2; 3 would be the module missing), and the tool itself needs no ncurses.
top_rc() { pcpmap top </dev/null >/dev/null 2>&1 && echo 0 || echo $?; }
check "pcpmap top loads its module (exit 2 without a terminal, got $(top_rc))" test "$(top_rc)" = 2
check "pcpmap needs no ncurses or tinfo itself" \
	bash -c '! readelf -d /usr/bin/pcpmap | grep -qE "NEEDED.*\[lib(ncurses|tinfo)"'

# --- The library from outside ----------------------------------------------------------------------
v=$(pkg-config --modversion libpcpmap 2>&1)
check "pkg-config --modversion libpcpmap = $upstream ($v)" test "$v" = "$upstream"
ma=$(dpkg-architecture -qDEB_HOST_MULTIARCH)
uses_lib() { # uses_lib PROGRAM SONAME: the dynamic loader resolves SONAME to the packaged file
	local got
	got=$(ldd "$1" 2>/dev/null | awk -v n="$2" '$1 == n && $2 == "=>" {print $3}')
	[ -n "$got" ] && [ "$(readlink -f "$got")" = "$(readlink -f "/usr/lib/$ma/$2")" ] &&
		dpkg -S "/usr/lib/$ma/$2" >/dev/null 2>&1
}
mkdir -p "$tmp/outside"
# shellcheck disable=SC2046
if cc -std=c17 -Wall -Wextra -Werror -o "$tmp/outside/pc" "$root/tests/install/outside.c" \
	$(pkg-config --cflags --libs libpcpmap) && "$tmp/outside/pc"; then
	ok "outside program built with pkg-config runs"
else
	bad "outside program built with pkg-config"
fi
check "it uses /usr/lib/$ma/libpcpmap.so.0" uses_lib "$tmp/outside/pc" libpcpmap.so.0
mkdir -p "$tmp/outside/cm"
cat >"$tmp/outside/cm/CMakeLists.txt" <<CM
cmake_minimum_required(VERSION 3.25)
project(outside C)
find_package(pcpmap $upstream REQUIRED)
add_executable(outside $root/tests/install/outside.c)
target_link_libraries(outside PRIVATE pcpmap::pcpmap)
CM
if cmake -S "$tmp/outside/cm" -B "$tmp/outside/cm/build" >"$tmp/cmake.log" 2>&1 &&
	cmake --build "$tmp/outside/cm/build" >>"$tmp/cmake.log" 2>&1 && "$tmp/outside/cm/build/outside"; then
	ok "outside program built with find_package(pcpmap) runs"
else
	cat "$tmp/cmake.log"
	bad "outside program built with find_package(pcpmap)"
fi

if [ $have_compat = 1 ]; then
	# The compat APIs under their own names; asm labels route them to pcpmap_compat_* in our libraries.
	cat >"$tmp/outside/natpmp.c" <<'C'
#define ENABLE_STRNATPMPERR
#include <stdio.h>
#include <natpmp.h>
int main(void)
{
	const char *s = strnatpmperr(NATPMP_ERR_INVALIDARGS);
	printf("natpmp: %s\n", s ? s : "(null)");
	return s && *s ? 0 : 1;
}
C
	cat >"$tmp/outside/upnpc.c" <<'C'
#include <stdio.h>
#include <miniupnpc/upnperrors.h>
int main(void)
{
	const char *s = strupnperror(714);
	printf("miniupnpc: %s\n", s ? s : "(null)");
	return s && *s ? 0 : 1;
}
C
	for lib in natpmp:pcpmap-natpmp:1 upnpc:pcpmap-miniupnpc:17; do
		IFS=: read -r src pc so <<<"$lib"
		v=$(pkg-config --modversion "$pc" 2>&1)
		check "pkg-config --modversion $pc = $upstream ($v)" test "$v" = "$upstream"
		# shellcheck disable=SC2046
		if cc -std=c17 -Wall -Wextra -Werror -o "$tmp/outside/$src" "$tmp/outside/$src.c" \
			$(pkg-config --cflags --libs "$pc") && "$tmp/outside/$src"; then
			ok "$src program built with pkg-config $pc runs"
		else
			bad "$src program built with pkg-config $pc"
		fi
		check "it uses /usr/lib/$ma/lib$pc.so.$so" uses_lib "$tmp/outside/$src" "lib$pc.so.$so"
	done

	# The drop-in: private, found by the launcher, chosen by the loader only under it.
	dropin=/usr/lib/$ma/pcpmap/dropin
	v=$(pcpmap-run --version 2>&1)
	check "pcpmap-run --version says $upstream ($v)" grep -qF "$upstream" <<<"$v"
	check "man page pcpmap-run(1)" test -f /usr/share/man/man1/pcpmap-run.1.gz
	check "pcpmap-run --print-dir is $dropin" test "$(pcpmap-run --print-dir 2>&1)" = "$dropin"
	check "$dropin/libnatpmp.so.1 installed" test -e "$dropin/libnatpmp.so.1"
	check "$dropin/libminiupnpc.so.17 installed" test -e "$dropin/libminiupnpc.so.17"
	# dpkg -L lists directories too: only files directly in the multiarch directory would be wrong.
	check "the drop-in package ships no file in /usr/lib/$ma itself" \
		test -z "$(dpkg -L pcpmap-dropin | grep -E "^/usr/lib/$ma/[^/]+$" | while read -r f; do
			[ -d "$f" ] || echo "$f"
		done)"
	check "no ldconfig trigger for the private drop-in" \
		test ! -e "/var/lib/dpkg/info/pcpmap-dropin.triggers"
	if [ -x /usr/bin/natpmpc ]; then
		# shellcheck disable=SC2016 # expanded by the child shell
		t=$(pcpmap-run sh -c 'LD_TRACE_LOADED_OBJECTS=1 exec "$0"' /usr/bin/natpmpc 2>&1)
		check "natpmpc under pcpmap-run loads $dropin/libnatpmp.so.1" \
			grep -q "libnatpmp.so.1 => $dropin/libnatpmp.so.1" <<<"$t"
		t=$(LD_TRACE_LOADED_OBJECTS=1 /usr/bin/natpmpc 2>&1)
		check "natpmpc alone still loads the system's libnatpmp.so.1" \
			grep -q "libnatpmp.so.1 => /lib/$ma/libnatpmp.so.1\|libnatpmp.so.1 => /usr/lib/$ma/libnatpmp.so.1" <<<"$t"
	fi
fi

# --- The daemon ------------------------------------------------------------------------------------
unit=/lib/systemd/system/pcpmapd.service
check "unit $unit installed" test -f "$unit"
check "man page pcpmapd(8)" test -f /usr/share/man/man8/pcpmapd.8.gz
# shellcheck disable=SC2013 # Documentation= holds space-separated URIs: split into words on purpose
for doc in $(sed -n 's/^Documentation=//p' "$unit" 2>/dev/null); do
	case $doc in
	file:*) check "the unit's Documentation $doc exists" test -f "${doc#file:}" ;;
	man:*)
		page=${doc#man:}
		sec=${page##*(}
		sec=${sec%)}
		check "the unit's Documentation $doc exists" test -f "/usr/share/man/man$sec/${page%%(*}.$sec.gz"
		;;
	esac
done
check "/etc/pcpmap/pcpmapd.conf is a conffile" grep -q '^ /etc/pcpmap/pcpmapd.conf ' \
	<(dpkg-query -W -f '${Conffiles}\n' pcpmapd)
if command -v systemd-analyze >/dev/null; then
	if systemd-analyze verify "$unit" >"$tmp/verify.log" 2>&1; then
		ok "systemd-analyze verify $unit"
	else
		cat "$tmp/verify.log"
		bad "systemd-analyze verify $unit (above)"
	fi
else
	echo "check-debs: systemd-analyze not installed: unit not verified"
fi
check "the install started no pcpmapd (pids: $(daemon_pids | tr '\n' ' '))" test -z "$(daemon_pids)"
check "no /run/pcpmapd" test ! -e /run/pcpmapd
check "no daemon state in /var/lib" test ! -e /var/lib/pcpmapd -a ! -e /var/lib/private/pcpmapd
if [ $systemd_up = 1 ]; then
	check "pcpmapd.service is not active" test "$(systemctl is-active pcpmapd.service 2>/dev/null)" != active
fi
# The daemon only for --help and --check-config, and only in a network namespace of its own.
if unshare --net true 2>/dev/null; then
	check "pcpmapd defaults to /etc/pcpmap/pcpmapd.conf" grep -qF /etc/pcpmap/pcpmapd.conf \
		<(unshare --net /usr/sbin/pcpmapd --help 2>&1)
	check "pcpmapd --check-config accepts the shipped configuration" \
		unshare --net /usr/sbin/pcpmapd -c /etc/pcpmap/pcpmapd.conf --check-config
else
	echo "check-debs: cannot create a network namespace: pcpmapd --help/--check-config not run"
fi

# --- Purge -----------------------------------------------------------------------------------------
if dpkg --purge "${pkgs[@]}" </dev/null >"$tmp/dpkg-purge.log" 2>&1; then
	ok "dpkg --purge of ${#pkgs[@]} packages"
	installed=()
else
	cat "$tmp/dpkg-purge.log"
	bad "dpkg --purge (log above)"
fi
for p in "${pkgs[@]}"; do
	st=$(dpkg-query -W -f '${db:Status-Status}' "$p" 2>/dev/null)
	check "$p is gone from dpkg (${st:-unknown})" test -z "$st" -o "$st" = not-installed
done
snapshot "$tmp/after.list"
if diff -u "$tmp/before.list" "$tmp/after.list" >"$tmp/left.diff"; then
	ok "purge left /usr, /etc and /var/lib as they were"
else
	grep '^[-+]/' "$tmp/left.diff"
	bad "purge left /usr, /etc or /var/lib changed (above: - gone, + left behind)"
fi
check "still no pcpmapd running" test -z "$(daemon_pids)"

echo "check-debs: $pass passed, $failed failed"
[ $failed = 0 ]
