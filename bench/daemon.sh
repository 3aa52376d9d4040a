#!/usr/bin/env bash
# pcpmapd under load: runs bench_daemon (the daemon holds N mappings against a fake PCP server on
# 127.0.0.1) once per count given, 10000 then 1000 by default; extra options go to bench_daemon
# (e.g. --idle-seconds 20). Needs no lab and no root. Prints one table per count, the shutdown last
# (its time, deletes answered, how many the daemon confirmed and how many records it kept). Shutdown alone:
# bench/daemon.sh 2000 -- --shutdown-only --delete-delay-ms 2 --check-shutdown 64
#   bench/daemon.sh [COUNT...] [-- BENCH_OPTIONS...]
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${PCPMAP_BUILD_DIR:-$PWD/build}
counts=()
while [[ $# -gt 0 && $1 != -- ]]; do
	counts+=("$1")
	shift
done
[[ ${1:-} == -- ]] && shift
[[ ${#counts[@]} -gt 0 ]] || counts=(10000 1000)
for n in "${counts[@]}"; do
	"$BUILD/bench/bench_daemon" -n "$n" -d "$BUILD/daemon/pcpmapd" "$@"
done
