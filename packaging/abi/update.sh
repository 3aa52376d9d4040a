#!/usr/bin/env bash
# Regenerates the committed ABI baseline of libpcpmap from a build tree, after an intended change of the
# ABI (a new function or a struct grown at its end is compatible; anything else needs a new SONAME).
# Usage: packaging/abi/update.sh BUILD_DIR
set -euo pipefail
cd "$(dirname "$0")/../.."
build=${1:?usage: packaging/abi/update.sh BUILD_DIR}
so=$(find "$build" -maxdepth 1 -name 'libpcpmap.so.*.*' -type f | head -n1)
[ -n "$so" ] || { echo "abi: no libpcpmap.so.X.Y.Z in $build" >&2; exit 1; }
abidw --no-show-locs --no-corpus-path --no-comp-dir-path --headers-dir include/pcpmap \
	--out-file packaging/abi/libpcpmap.so.0.abi "$so"
# Source paths of this checkout mean nothing elsewhere.
sed -i "s|$PWD/||g" packaging/abi/libpcpmap.so.0.abi
echo "abi: baseline written from $so"
