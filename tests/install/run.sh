#!/usr/bin/env bash
# Installs the built tree into a temporary prefix and builds an outside program against it,
# once with pkg-config and once with find_package(pcpmap).
set -euo pipefail
src=$1
build=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cmake --install "$build" --prefix "$tmp/prefix" >/dev/null
libdir=$(find "$tmp/prefix" -name 'libpcpmap.pc' -printf '%h\n' | head -n1)
[ -n "$libdir" ] || { echo "install: libpcpmap.pc was not installed" >&2; exit 1; }
export PKG_CONFIG_PATH="$libdir"
cc -std=c17 -Wall -Wextra -Werror -o "$tmp/outside" "$src/tests/install/outside.c" $(pkg-config --cflags --libs libpcpmap)
LD_LIBRARY_PATH="$libdir/.." "$tmp/outside"
echo "install: pkg-config build works"

# The tools run the shipped library: each needs libpcpmap.so.0 and, installed, finds the one in its prefix.
cache_on() { grep -qE "^$1:BOOL=(ON|TRUE|1)\$" "$build/CMakeCache.txt"; }
progs=()
cache_on PCPMAP_BUILD_CLI && progs+=("$tmp/prefix/bin/pcpmap")
cache_on PCPMAP_BUILD_DAEMON && progs+=("$tmp/prefix/sbin/pcpmapd")
for p in "${progs[@]}"; do
	[ -x "$p" ] || { echo "install: $p was not installed" >&2; exit 1; }
	if ! readelf -d "$p" | grep -qE 'NEEDED.*\[libpcpmap\.so\.0\]'; then
		echo "install: $p does not link libpcpmap.so.0 (readelf -d: no NEEDED entry)" >&2
		exit 1
	fi
	got=$(env -u LD_LIBRARY_PATH ldd "$p" | awk '$1 == "libpcpmap.so.0" {print $3}')
	case "$got" in
	"$tmp/prefix"/*) ;;
	*)
		echo "install: $p resolves libpcpmap.so.0 to '${got:-nothing}', not to the one under $tmp/prefix" >&2
		exit 1
		;;
	esac
	echo "install: $(basename "$p") needs libpcpmap.so.0 and finds $(realpath -s --relative-to="$tmp/prefix" "$got")"
done

# `pcpmap top` is a module that the tool loads for that command alone (cli/top.h): the tool itself needs no
# ncurses, and the installed tool finds the installed module (exit 2: it ran and found no terminal; 3 would
# be the module missing).
if cache_on PCPMAP_BUILD_CLI && grep -qE "^NCURSESW_FOUND:INTERNAL=1$" "$build/CMakeCache.txt"; then
	if readelf -d "$tmp/prefix/bin/pcpmap" | grep -qE 'NEEDED.*\[lib(ncurses|tinfo)'; then
		echo "install: bin/pcpmap links ncurses or tinfo itself (readelf -d); only its top module may" >&2
		exit 1
	fi
	mod=$(find "$tmp/prefix" -name pcpmap-top.so -type f | head -n1)
	[ -n "$mod" ] || { echo "install: the top module pcpmap-top.so was not installed" >&2; exit 1; }
	rc=0
	env -u LD_LIBRARY_PATH "$tmp/prefix/bin/pcpmap" top </dev/null >/dev/null 2>"$tmp/top.err" || rc=$?
	if [ $rc -ne 2 ]; then
		echo "install: installed 'pcpmap top' exited $rc, not 2 (no terminal) with its module in place:" >&2
		cat "$tmp/top.err" >&2
		exit 1
	fi
	echo "install: pcpmap top loads $(realpath -s --relative-to="$tmp/prefix" "$mod"); the tool needs no ncurses"
fi

# Nothing but pcpmap_* may be exported.
so=$(find "$tmp/prefix" -name 'libpcpmap.so.*' -type f | head -n1)
leaked=$(nm -D --defined-only "$so" | awk '$2 ~ /^[TDBR]$/ {print $3}' | grep -v '^pcpmap_' || true)
if [ -n "$leaked" ]; then
	echo "install: symbols leak from $so:" >&2
	echo "$leaked" >&2
	exit 1
fi
echo "install: $(nm -D --defined-only "$so" | grep -c ' T pcpmap_') exported functions, all pcpmap_*"

# Exactly the functions the version script lists, no more, no fewer.
listed=$(grep -oE '^[[:space:]]+pcpmap_[a-z0-9_]+;' "$src/cmake/libpcpmap.map" | tr -d ' \t;' | sort)
exported=$(nm -D --defined-only "$so" | awk '$2 == "T" {sub(/@.*/, "", $3); print $3}' | sort)
if [ "$listed" != "$exported" ]; then
	echo "install: exports differ from cmake/libpcpmap.map:" >&2
	diff <(echo "$listed") <(echo "$exported") >&2 || true
	exit 1
fi

# The ABI against the committed baseline (abigail-tools), both sides written by abidw the same way: any
# change fails. A compatible one (a new function, a struct grown at its end) is recorded on purpose with
# packaging/abi/update.sh; anything else needs a new SONAME.
if command -v abidiff >/dev/null 2>&1; then
	abidw --no-show-locs --no-corpus-path --no-comp-dir-path --headers-dir "$tmp/prefix/include/pcpmap" \
		--out-file "$tmp/now.abi" "$so"
	rc=0
	abidiff --suppressions "$src/packaging/abi/suppressions.ini" "$src/packaging/abi/libpcpmap.so.0.abi" \
		"$tmp/now.abi" >"$tmp/abidiff.txt" 2>&1 || rc=$?
	if [ $rc -ne 0 ]; then
		echo "install: the ABI differs from packaging/abi/libpcpmap.so.0.abi (abidiff exit $rc):" >&2
		cat "$tmp/abidiff.txt" >&2
		echo "install: if the change is intended and compatible, run packaging/abi/update.sh BUILD_DIR" >&2
		exit 1
	fi
	echo "install: ABI identical to packaging/abi/libpcpmap.so.0.abi"
else
	echo "install: abidiff missing (Debian package abigail-tools): cannot compare the ABI" >&2
	exit 1
fi

mkdir -p "$tmp/cm"
cat >"$tmp/cm/CMakeLists.txt" <<CM
cmake_minimum_required(VERSION 3.25)
project(outside C)
find_package(pcpmap REQUIRED)
add_executable(outside $src/tests/install/outside.c)
target_link_libraries(outside PRIVATE pcpmap::pcpmap)
CM
cmake -S "$tmp/cm" -B "$tmp/cm/build" -DCMAKE_PREFIX_PATH="$tmp/prefix" >/dev/null
cmake --build "$tmp/cm/build" >/dev/null
LD_LIBRARY_PATH="$libdir/.." "$tmp/cm/build/outside"
echo "install: find_package build works"
