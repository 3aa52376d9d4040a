#!/usr/bin/env bash
# Sets everything up and runs the whole test suite on Debian 12 (as root):
#  1. installs the Debian packages the build, tests and lab need;
#  2. builds with -Werror and runs every test (unit, fuzz corpus replay, style, install, interop);
#  3. builds again with AddressSanitizer + UndefinedBehaviorSanitizer and runs the unit, fuzz-replay and
#     interop tests once more.
# Interop cases each build their own lab and mostly wait on the network and on timers, so they run
# PCPMAP_INTEROP_JOBS at a time (default 4) whatever the number of cores, beside the package test; the rest
# runs one per core. doc/TESTING.md has the phases' times.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
jobs=$(nproc)
labs=${PCPMAP_INTEROP_JOBS:-4}

# The first build takes Debian's hardening flags (those the package is built with), so its unit tests are the
# ones the package build would run (dh_auto_test): the package test then builds the .debs without them.
hard=()
if command -v dpkg-buildflags >/dev/null; then
	export DEB_BUILD_MAINT_OPTIONS=hardening=+all
	ldflags=$(dpkg-buildflags --get LDFLAGS)
	hard=(-DCMAKE_C_FLAGS="$(dpkg-buildflags --get CFLAGS) $(dpkg-buildflags --get CPPFLAGS)"
		-DCMAKE_EXE_LINKER_FLAGS="$ldflags" -DCMAKE_SHARED_LINKER_FLAGS="$ldflags"
		-DCMAKE_MODULE_LINKER_FLAGS="$ldflags")
	export PCPMAP_DEB_NOCHECK=1
fi
cmake -S . -B build -G Ninja -DPCPMAP_WERROR=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo "${hard[@]}"
ninja -C build -j"$jobs"
ctest --test-dir build --output-on-failure -j"$jobs" -LE interop -E '^packaging_debs$'
# The package test (a build, lintian, dpkg) runs beside the interop cases, which mostly wait on timers and
# the network; it touches no namespace and no file of the build trees.
pkg_log=$(mktemp "${TMPDIR:-/tmp}/pcpmap-check-debs.XXXXXX")
bash tests/packaging/check-debs.sh >"$pkg_log" 2>&1 &
pkg=$!
interop_rc=0
ctest --test-dir build --output-on-failure -j"$labs" -L interop || interop_rc=$?
pkg_rc=0
wait "$pkg" || pkg_rc=$?
cat "$pkg_log"
rm -f "$pkg_log"
[ "$pkg_rc" = 0 ] || [ "$pkg_rc" = 77 ] || { echo "test.sh: packaging_debs failed (exit $pkg_rc)" >&2; exit 1; }
[ "$interop_rc" = 0 ] || exit "$interop_rc"

cmake -S . -B build-asan -G Ninja -DPCPMAP_WERROR=ON -DPCPMAP_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug \
	-DPCPMAP_BUILD_BENCH=OFF
ninja -C build-asan -j"$jobs"
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
ctest --test-dir build-asan --output-on-failure -j"$jobs" -L unit -LE 'style|interop'
ctest --test-dir build-asan --output-on-failure -j"$labs" -L interop
