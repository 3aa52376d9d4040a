#!/usr/bin/env bash
# Builds pcpmap's Debian packages from this repository without touching it: stages a copy of the tree
# (the files git tracks or would track; everything when it is not a git work tree) in a temporary
# directory with packaging/debian copied to debian/, runs `dpkg-buildpackage -us -uc -b` there and
# copies the .deb, .changes and .buildinfo files to OUTDIR.
#
# Usage: packaging/build-deb.sh [--no-check] [--keep] OUTDIR
#   --no-check   DEB_BUILD_OPTIONS/PROFILES nocheck: skip the unit tests during the build
#   --keep       keep the staging directory (its path is printed)
# Without compat/CMakeLists.txt the compat packages are left out (build profile pkg.pcpmap.nocompat).
# Needs the Build-Depends of packaging/debian/control (scripts/install-deps.sh installs them).
# Exit status: 0 built, 1 failure, 2 usage.
set -euo pipefail

usage() { sed -n 's/^# \{0,1\}//; 7,10p' "$0" >&2; exit 2; }
nocheck=0
keep=0
out=""
while [ $# -gt 0 ]; do
	case "$1" in
	--no-check) nocheck=1 ;;
	--keep) keep=1 ;;
	-h | --help) usage ;;
	-*) echo "build-deb.sh: unknown option $1" >&2; usage ;;
	*) [ -z "$out" ] || usage; out=$1 ;;
	esac
	shift
done
[ -n "$out" ] || usage
command -v dpkg-buildpackage >/dev/null || { echo "build-deb.sh: dpkg-buildpackage not found (apt-get install dpkg-dev debhelper)" >&2; exit 1; }

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
[ -f "$root/packaging/debian/control" ] || { echo "build-deb.sh: $root/packaging/debian/control missing" >&2; exit 1; }
mkdir -p "$out"
out=$(cd "$out" && pwd)

tmp=$(mktemp -d "${TMPDIR:-/tmp}/pcpmap-deb.XXXXXX")
cleanup() { if [ $keep = 1 ]; then echo "build-deb.sh: staging kept in $tmp"; else rm -rf "$tmp"; fi; }
trap cleanup EXIT

# Stage the source: never build in the repository (no obj-*/ or debian/ appear there).
version=$(dpkg-parsechangelog -l "$root/packaging/debian/changelog" -S Version)
upstream=${version%-*}
upstream=${upstream#*:}
src=$tmp/pcpmap-$upstream
mkdir -p "$src"
if git -C "$root" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
	# Tracked and untracked-but-not-ignored files (build trees are ignored), as they are on disk now.
	git -C "$root" ls-files -z --cached --others --exclude-standard |
		while IFS= read -r -d '' f; do
			if [ -e "$root/$f" ] || [ -L "$root/$f" ]; then printf '%s\0' "$f"; fi
		done |
		tar -C "$root" --null --no-recursion -T - -cf - | tar -C "$src" -xf -
else
	tar -C "$root" --exclude-vcs --exclude='./build' --exclude='./build-*' --exclude='./obj-*' \
		--exclude='./debian' -cf - . | tar -C "$src" -xf -
fi
rm -rf "$src/debian"
cp -a "$src/packaging/debian" "$src/debian"

opts=()
profiles=()
# Build and run the package's unit tests on every core unless the caller chose (Debian policy 4.9.1).
case " ${DEB_BUILD_OPTIONS:-} " in
*" parallel="*) ;;
*) export DEB_BUILD_OPTIONS="${DEB_BUILD_OPTIONS:+$DEB_BUILD_OPTIONS }parallel=$(nproc)" ;;
esac
if [ $nocheck = 1 ]; then
	export DEB_BUILD_OPTIONS="${DEB_BUILD_OPTIONS:+$DEB_BUILD_OPTIONS }nocheck"
	profiles+=(nocheck)
fi
if [ ! -f "$src/compat/CMakeLists.txt" ]; then
	echo "build-deb.sh: no compat/CMakeLists.txt: building without the compat packages"
	profiles+=(pkg.pcpmap.nocompat)
fi
if [ ${#profiles[@]} -gt 0 ]; then
	opts+=("-P$(
		IFS=,
		echo "${profiles[*]}"
	)")
fi

# Tests run by the package build see this (tests/packaging/check-debs.sh skips itself under it).
export PCPMAP_DEB_BUILD=1
echo "build-deb.sh: building pcpmap $version in $src"
start=$(date +%s)
(cd "$src" && dpkg-buildpackage -us -uc -b -Jauto "${opts[@]}")
echo "build-deb.sh: dpkg-buildpackage took $(($(date +%s) - start)) s"

shopt -s nullglob
files=("$tmp"/*.deb "$tmp"/*.ddeb "$tmp"/*.changes "$tmp"/*.buildinfo)
[ ${#files[@]} -gt 0 ] || { echo "build-deb.sh: no packages were produced" >&2; exit 1; }
cp "${files[@]}" "$out/"
for f in "${files[@]}"; do echo "build-deb.sh: $out/$(basename "$f")"; done
