#!/usr/bin/env bash
# Installs every Debian package pcpmap needs to build, test and run its lab.
# Guards the host namespace: no daemon from these packages may start here.
set -euo pipefail
[ "$(id -u)" = 0 ] || { echo "install-deps.sh: run as root" >&2; exit 1; }
export DEBIAN_FRONTEND=noninteractive

build_pkgs="build-essential cmake ninja-build pkg-config clang-format man-db groff-base bsdextrautils \
debhelper dpkg-dev fakeroot lintian abigail-tools \
libmnl-dev libnatpmp-dev libminiupnpc-dev libcmocka-dev libncurses-dev"
lab_pkgs="miniupnpd miniupnpd-nftables nftables miniupnpc natpmpc tshark iproute2 procps iputils-ping \
netcat-openbsd util-linux python3 tmux"

missing=""
for p in $build_pkgs $lab_pkgs; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing="$missing $p"
done
if [ -z "$missing" ]; then
	echo "install-deps.sh: all packages present"
	exit 0
fi

echo "miniupnpd miniupnpd/start_daemon boolean false" | debconf-set-selections
echo "wireshark-common wireshark-common/install-setuid boolean false" | debconf-set-selections
made_policy=0
if [ ! -e /usr/sbin/policy-rc.d ]; then
	printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
	chmod +x /usr/sbin/policy-rc.d
	made_policy=1
fi
cleanup() { [ $made_policy = 1 ] && rm -f /usr/sbin/policy-rc.d; true; }
trap cleanup EXIT

apt-get update -q
# shellcheck disable=SC2086
apt-get install -y -q --no-install-recommends $missing
# The package may have started a daemon in the host namespace despite the guards: stop that one only. Labs
# run their own miniupnpd inside their namespaces, possibly right now, and must keep it.
host_net=$(readlink /proc/$$/ns/net)
for pid in $(pgrep -x miniupnpd || true); do
	if [ "$(readlink "/proc/$pid/ns/net" 2>/dev/null || true)" = "$host_net" ]; then
		kill "$pid" 2>/dev/null || true
	fi
done
