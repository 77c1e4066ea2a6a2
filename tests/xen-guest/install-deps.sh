#!/usr/bin/env bash
# Installs what tests/xen-guest/run.sh needs on Debian 12 (as root), beyond
# scripts/install-deps.sh: QEMU, Debian's Xen 4.17 and dom0 kernel, busybox-static, socat.
# Installing linux-image-amd64 regenerates the host's /boot/initrd.img and installs no GRUB.
set -euo pipefail
pkgs=(
	qemu-system-x86 xen-hypervisor-4.17-amd64 xen-utils-4.17 xenstore-utils linux-image-amd64
	busybox-static cpio kmod nbd-client socat openssl e2fsprogs python3
)
bash "$(dirname "$0")/../../scripts/apt-install.sh" "${pkgs[@]}"
