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

# Nothing but pcpmap_* may be exported.
so=$(find "$tmp/prefix" -name 'libpcpmap.so.*' -type f | head -n1)
leaked=$(nm -D --defined-only "$so" | awk '$2 ~ /^[TDBR]$/ {print $3}' | grep -v '^pcpmap_' || true)
if [ -n "$leaked" ]; then
	echo "install: symbols leak from $so:" >&2
	echo "$leaked" >&2
	exit 1
fi
echo "install: $(nm -D --defined-only "$so" | grep -c ' T pcpmap_') exported functions, all pcpmap_*"

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
