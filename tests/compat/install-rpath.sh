#!/usr/bin/env bash
# An installed tree works without LD_LIBRARY_PATH: a program linked against the installed compat library with
# a plain -Wl,-rpath (RUNPATH, which the loader does not pass on to the library's own dependencies) starts,
# because the compat libraries carry a RUNPATH of their own to libpcpmap ($ORIGIN). The installed pcpmap-run
# finds the installed drop-in directory, whose libraries find libpcpmap the same way.
# Usage: install-rpath.sh SOURCE_DIR BUILD_DIR
set -euo pipefail
src=$1
build=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() {
	echo "install-rpath: $*" >&2
	exit 1
}
cmake --install "$build" --prefix "$tmp/prefix" >/dev/null
pc=$(find "$tmp/prefix" -name pcpmap-natpmp.pc -printf '%h\n' | head -n1)
[[ -n $pc ]] || fail "pcpmap-natpmp.pc was not installed"
export PKG_CONFIG_PATH=$pc
libdir=$(cd "$(pkg-config --variable=libdir pcpmap-natpmp)" && pwd -P)
unset LD_LIBRARY_PATH
# Where the loader's trace says libpcpmap.so.0 comes from, resolved ($ORIGIN/../.. is not normalised).
pcpmap_from() { realpath -e -s "$(sed -n 's/.*libpcpmap.so.0 => \([^ ]*\).*/\1/p' <<<"$1")" 2>/dev/null || true; }

# shellcheck disable=SC2046
cc -std=gnu17 -O2 -o "$tmp/natpmp_app" "$src/tests/compat/natpmp_app.c" $(pkg-config --cflags --libs pcpmap-natpmp) \
	"-Wl,-rpath,$libdir"
readelf -d "$tmp/natpmp_app" | grep -q RUNPATH || fail "the linker wrote no RUNPATH (the case this test is about)"
set +e
out=$("$tmp/natpmp_app" 2>&1)
rc=$?
set -e
[[ $out != *"cannot open shared object file"* ]] || fail "natpmp_app does not start: $out"
[[ $rc -eq 1 && $out == *"usage: natpmp_app"* ]] || fail "natpmp_app did not reach main ($rc): $out"
lib=$(pcpmap_from "$(LD_TRACE_LOADED_OBJECTS=1 "$tmp/natpmp_app")")
[[ $lib == "$libdir/libpcpmap.so.0" ]] || fail "libpcpmap.so.0 comes from '$lib', not $libdir"
echo "install-rpath: a program linked with -rpath only starts and loads $libdir/libpcpmap.so.0"

# The installed launcher and drop-in.
run=$tmp/prefix/bin/pcpmap-run
[[ -x $run ]] || fail "pcpmap-run was not installed in bin"
dir=$(env -u PCPMAP_DROPIN_DIR "$run" --print-dir) || fail "the installed pcpmap-run finds no drop-in directory"
[[ $dir == "$libdir/pcpmap/dropin" ]] || fail "pcpmap-run's drop-in directory is $dir, not $libdir/pcpmap/dropin"
[[ -f $dir/libnatpmp.so.1 || -L $dir/libnatpmp.so.1 ]] || fail "no libnatpmp.so.1 in $dir"
[[ ! -e $dir/libnatpmp.so ]] || fail "$dir holds a development symlink libnatpmp.so"
[[ ! -e $libdir/libnatpmp.so.1 ]] || fail "a libnatpmp.so.1 was installed in the library directory itself"
# shellcheck disable=SC2016
trace=$(env -u PCPMAP_DROPIN_DIR "$run" sh -c 'LD_TRACE_LOADED_OBJECTS=1 exec "$0"' "$tmp/natpmp_app")
[[ $(pcpmap_from "$trace") == "$libdir/libpcpmap.so.0" ]] || fail "under pcpmap-run: $trace"
if [[ -x /usr/bin/natpmpc ]]; then
	# shellcheck disable=SC2016
	trace=$(env -u PCPMAP_DROPIN_DIR "$run" sh -c 'LD_TRACE_LOADED_OBJECTS=1 exec "$0"' /usr/bin/natpmpc)
	grep -q "libnatpmp.so.1 => $dir/libnatpmp.so.1" <<<"$trace" || fail "natpmpc under pcpmap-run: $trace"
	[[ $(pcpmap_from "$trace") == "$libdir/libpcpmap.so.0" ]] || fail "the drop-in finds no libpcpmap: $trace"
	echo "install-rpath: natpmpc under the installed pcpmap-run loads $dir/libnatpmp.so.1 and $libdir/libpcpmap.so.0"
fi
