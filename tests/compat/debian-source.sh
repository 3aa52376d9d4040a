#!/usr/bin/env bash
# Fetches and unpacks a Debian source package (bookworm main) for the source-compatibility tests, at run time:
# the sources never enter the repository. apt runs with a private sources list (deb-src for deb.debian.org),
# state and cache under DEST, so the host's apt configuration and state are untouched.
# PCPMAP_DEBIAN_SOURCES, when set, names a directory already holding PKG's .dsc and its files (from
# `apt-get source --download-only PKG`) or the unpacked tree PKG/, for machines without the network.
# Usage: debian-source.sh PKG DEST   (DEST/src/ is the unpacked tree; exit 77 with a message when the source
#        cannot be had: no apt, no network, no deb-src index, no dpkg-source)
set -euo pipefail
pkg=${1:?usage: debian-source.sh PKG DEST}
dest=${2:?usage: debian-source.sh PKG DEST}
skip() {
	echo "debian-source: cannot get the source of $pkg: $*"
	exit 77
}
mkdir -p "$dest/dl"
dl=$dest/dl
if [[ -n ${PCPMAP_DEBIAN_SOURCES:-} && -d $PCPMAP_DEBIAN_SOURCES/$pkg ]]; then
	rm -rf "$dest/src"
	cp -r -- "$PCPMAP_DEBIAN_SOURCES/$pkg" "$dest/src"
	echo "debian-source: $pkg copied from $PCPMAP_DEBIAN_SOURCES/$pkg"
	exit 0
elif [[ -n ${PCPMAP_DEBIAN_SOURCES:-} ]]; then
	cp -- "$PCPMAP_DEBIAN_SOURCES/${pkg}_"* "$dl/" 2>/dev/null || skip "no ${pkg}_* in PCPMAP_DEBIAN_SOURCES ($PCPMAP_DEBIAN_SOURCES)"
else
	command -v apt-get >/dev/null || skip "apt-get is not installed"
	keyring=/usr/share/keyrings/debian-archive-keyring.gpg
	[[ -r $keyring ]] || skip "$keyring is missing (package debian-archive-keyring)"
	apt=$dest/apt
	mkdir -p "$apt/parts" "$apt/state/lists/partial" "$apt/cache/archives/partial"
	: >"$apt/sources.list"
	: >"$apt/status"
	cat >"$apt/parts/debian-src.sources" <<SRC
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: bookworm
Components: main
Signed-By: $keyring
SRC
	opts=(-o "Dir::Etc::SourceList=$apt/sources.list" -o "Dir::Etc::SourceParts=$apt/parts"
		-o "Dir::State=$apt/state" -o "Dir::State::status=$apt/status" -o "Dir::Cache=$apt/cache"
		-o "Acquire::Languages=none" -o "Debug::NoLocking=1" -o "APT::Sandbox::User=$(id -un)" -q)
	timeout 300 apt-get "${opts[@]}" update >"$dest/apt-update.log" 2>&1 ||
		skip "apt-get update of deb.debian.org bookworm deb-src failed: $(grep -m1 '^[EW]:' "$dest/apt-update.log" || tail -n1 "$dest/apt-update.log")"
	(cd "$dl" && timeout 300 apt-get "${opts[@]}" source --download-only "$pkg") >"$dest/apt-source.log" 2>&1 ||
		skip "apt-get source --download-only $pkg failed: $(grep -m1 '^E:' "$dest/apt-source.log" || tail -n1 "$dest/apt-source.log")"
fi
command -v dpkg-source >/dev/null || skip "dpkg-source is not installed (package dpkg-dev)"
dsc=$(find "$dl" -maxdepth 1 -name "${pkg}_*.dsc" | sort | tail -n1)
[[ -n $dsc ]] || skip "no .dsc for $pkg was downloaded"
rm -rf "$dest/src"
dpkg-source --no-check -x "$dsc" "$dest/src" >"$dest/dpkg-source.log" 2>&1 ||
	skip "dpkg-source -x $(basename "$dsc") failed: $(tail -n1 "$dest/dpkg-source.log")"
echo "debian-source: $(basename "$dsc" .dsc) unpacked in $dest/src"
