#!/usr/bin/env bash
# Builds each example application twice from the same unchanged source: against the real Debian library
# (libnatpmp-dev, libminiupnpc-dev) and against pcpmap's compat library through its pkg-config file, from an
# installed tree (cmake --install). Checks which library each binary uses, and runs one exchange that needs no
# gateway (ICMP from a closed port) with both natpmp builds.
# Usage: build-both.sh SOURCE_DIR BUILD_DIR [OUT_DIR]   (OUT_DIR keeps the install and the four binaries:
#        natpmp_app.real natpmp_app.ours upnpc_app.real upnpc_app.ours)
set -euo pipefail
src=$1
build=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
out=${3:-$tmp}
mkdir -p "$out"
app=$src/tests/compat
fail() {
	echo "build-both: $*" >&2
	exit 1
}

cmake --install "$build" --prefix "$out/prefix" >/dev/null
pc=$(find "$out/prefix" -name pcpmap-natpmp.pc -printf '%h\n' | head -n1)
[[ -n $pc && -f $pc/pcpmap-miniupnpc.pc ]] || fail "pcpmap-natpmp.pc / pcpmap-miniupnpc.pc were not installed"
export PKG_CONFIG_PATH=$pc
libdir=$(pkg-config --variable=libdir pcpmap-natpmp)
incdir=$(pkg-config --variable=includedir pcpmap-natpmp)
# The headers live apart, so they never shadow the real natpmp.h or miniupnpc/ in the same prefix.
[[ -f $incdir/pcpmap-compat/natpmp.h && -f $incdir/pcpmap-compat/miniupnpc/miniupnpc.h ]] ||
	fail "compat headers not under $incdir/pcpmap-compat"
[[ ! -e $incdir/natpmp.h && ! -e $incdir/miniupnpc ]] || fail "compat headers installed where the real ones live"

cflags=(-std=gnu17 -O2 -Wall -Wextra -Werror)
# A sanitized tree (PCPMAP_SANITIZE) needs its runtime first in every program that loads its libraries.
if grep -q '^PCPMAP_SANITIZE:BOOL=ON' "$build/CMakeCache.txt" 2>/dev/null; then
	cflags+=(-fsanitize=address -fsanitize=undefined -fno-omit-frame-pointer)
fi
# libnatpmp-dev ships no .pc file: its users write -lnatpmp.
cc "${cflags[@]}" -o "$out/natpmp_app.real" "$app/natpmp_app.c" -lnatpmp
# shellcheck disable=SC2046
cc "${cflags[@]}" -o "$out/upnpc_app.real" "$app/upnpc_app.c" $(pkg-config --cflags --libs miniupnpc)
# The prefix is temporary: an old-style RPATH (inherited by libpcpmap-*.so, unlike RUNPATH) finds libpcpmap.so.0
# next to them, with no LD_LIBRARY_PATH to carry into the lab namespaces.
rpath=("-Wl,--disable-new-dtags" "-Wl,-rpath,$libdir")
# shellcheck disable=SC2046
cc "${cflags[@]}" -o "$out/natpmp_app.ours" "$app/natpmp_app.c" $(pkg-config --cflags --libs pcpmap-natpmp) "${rpath[@]}"
# shellcheck disable=SC2046
cc "${cflags[@]}" -o "$out/upnpc_app.ours" "$app/upnpc_app.c" $(pkg-config --cflags --libs pcpmap-miniupnpc) \
	"${rpath[@]}"

needed() {
	readelf -d "$1" | sed -n 's/.*NEEDED.*\[\(.*\)\]/\1/p'
}
check() { # BINARY WANT_LIB NOT_LIB SYMBOL
	local n
	n=$(needed "$1")
	grep -qx "$2" <<<"$n" || fail "$(basename "$1") does not need $2: ${n//$'\n'/ }"
	! grep -qx "$3" <<<"$n" || fail "$(basename "$1") needs $3"
	nm -D --undefined-only "$1" | grep -qw "$4" || fail "$(basename "$1") does not import $4"
}
check "$out/natpmp_app.real" libnatpmp.so.1 libpcpmap-natpmp.so.1 initnatpmp
check "$out/natpmp_app.ours" libpcpmap-natpmp.so.1 libnatpmp.so.1 pcpmap_compat_initnatpmp
check "$out/upnpc_app.real" libminiupnpc.so.17 libpcpmap-miniupnpc.so.17 UPNP_AddPortMapping
check "$out/upnpc_app.ours" libpcpmap-miniupnpc.so.17 libminiupnpc.so.17 pcpmap_compat_UPNP_AddPortMapping
echo "build-both: natpmp_app and upnpc_app built against the real libraries and against pcpmap's (pkg-config)"

# Same source, same outcome: a "gateway" where nothing listens (127.0.0.1:5351 answers ICMP port unreachable).
if ! ss -Hlun 'sport = :5351' 2>/dev/null | grep -q .; then
	real=$("$out/natpmp_app.real" -g 127.0.0.1 map tcp 7000 7000 60 2>&1 | tail -n1) || true
	ours=$(PCPMAP_GATEWAY='' "$out/natpmp_app.ours" -g 127.0.0.1 map tcp 7000 7000 60 2>&1 | tail -n1) || true
	[[ $real == "public address failed -7 "* ]] || fail "real build: '$real'"
	[[ $ours == "public address failed -7 "* ]] || fail "pcpmap build: '$ours'"
	echo "build-both: both natpmp builds report NATPMP_ERR_NOGATEWAYSUPPORT for a closed port"
	ours=$(PCPMAP_GATEWAY=127.0.0.1 PCPMAP_COMPAT_PROTOCOLS=pcp,natpmp "$out/upnpc_app.ours" map tcp 7000 7000 60 2>&1 |
		tail -n1) || true
	[[ $ours == "no IGD found (error 0)" ]] || fail "pcpmap upnpc build: '$ours'"
	echo "build-both: the pcpmap upnpc build finds no IGD there"
fi
