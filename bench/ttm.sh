#!/usr/bin/env bash
# Time-to-mapping benchmark in the lab: brings up the demo gateway, runs bench_ttm in the client
# namespace (raw PCP round trip, pcpmap in-process and as a process, natpmpc), tears down. Root.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${PCPMAP_BUILD_DIR:-$PWD/build}
RUNS=${1:-25}
export PCPMAP_LAB=${PCPMAP_LAB_TAG:-}pmbench PCPMAP_BUILD_DIR=$BUILD
XDG=$(mktemp -d /tmp/pcpmap-bench-ttm.XXXXXX) # the gateway cache of this run only
export XDG_RUNTIME_DIR=$XDG
trap 'tests/interop/lab.sh down >/dev/null 2>&1 || true; rm -rf "$XDG"' EXIT
tests/interop/lab.sh up >/dev/null
tests/interop/lab.sh cli "$BUILD/bench/bench_ttm" 192.168.77.1 "$BUILD/cli/pcpmap" "$RUNS" "$(command -v natpmpc)"
