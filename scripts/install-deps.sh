#!/usr/bin/env bash
# Installs what building and testing blktap-colo needs on Debian 12 (run as root).
set -euo pipefail
pkgs=(
	build-essential autoconf automake pkg-config	# build
	libaio-dev check libxen-dev libgnutls28-dev libxxhash-dev	# libraries
	gnutls-bin					# certtool, psktool: credentials made in TLS tests
	qemu-utils nbdkit libnbd-bin python3-libnbd fio	# real NBD clients and peers for tests
	clang libclang-rt-14-dev			# libFuzzer targets
	e2fsprogs iproute2 procps			# chattr, ip netns, pgrep
	xenstore-utils					# xenstore-read/-write/-watch/-ls: the toolstack in tests
	scdoc man-db					# man pages: built from man/*.scd, checked with man --warnings
	systemd						# systemd-analyze verify, systemd-tmpfiles on the units
	prometheus					# promtool check metrics on colo-controller metrics
	dpkg-dev debhelper lintian			# the Debian package: build, lintian, install, purge
	resource-agents pacemaker corosync pacemaker-cli-utils # the OCF agent: ocf-tester, a cluster
	nbd-client					# block-colo's /dev/nbdN for blkback
	gnuplot-nox					# bench/colo-pause-plot.sh: docs/ plots
)
bash "$(dirname "$0")/apt-install.sh" "${pkgs[@]}"
