#!/usr/bin/env bash
# Memory of holding one mapping (bench/bench_rss.c): the library and `pcpmap map` holding a PCP mapping,
# beside the peak RSS of natpmpc and upnpc doing the same job in the same run. In the lab (root).
# Usage: bench/rss.sh [RUNS]; BENCH_RSS_SHOW=1 also lists what is resident.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${PCPMAP_BUILD_DIR:-$PWD/build}
RUNS=${1:-5}
export PCPMAP_LAB=${PCPMAP_LAB_TAG:-}pmrss PCPMAP_BUILD_DIR=$BUILD
XDG=$(mktemp -d /tmp/pcpmap-bench-rss.XXXXXX)
export XDG_RUNTIME_DIR=$XDG
trap 'tests/interop/lab.sh down >/dev/null 2>&1 || true; rm -rf "$XDG"' EXIT
tests/interop/lab.sh up >/dev/null
tests/interop/lab.sh cli "$BUILD/bench/bench_rss" 192.168.77.1 "${PCPMAP_BIN:-$BUILD/cli/pcpmap}" \
	"${PCPMAP_HOLDER:-$BUILD/bench/bench_rss_holder}" "$RUNS"
