#!/usr/bin/env bash
# Sets everything up and runs the whole test suite on Debian 12 (as root):
#  1. installs the Debian packages the build, tests and lab need;
#  2. builds with -Werror and runs every test (unit, fuzz corpus replay, style, install, interop);
#  3. builds again with AddressSanitizer + UndefinedBehaviorSanitizer and runs the unit, fuzz-replay and
#     interop tests once more.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
jobs=$(nproc)

cmake -S . -B build -G Ninja -DPCPMAP_WERROR=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo
ninja -C build -j"$jobs"
ctest --test-dir build --output-on-failure -j"$jobs"

cmake -S . -B build-asan -G Ninja -DPCPMAP_WERROR=ON -DPCPMAP_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug \
	-DPCPMAP_BUILD_BENCH=OFF
ninja -C build-asan -j"$jobs"
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
ctest --test-dir build-asan --output-on-failure -j"$jobs" -L 'unit|interop' -LE style
