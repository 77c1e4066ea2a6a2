#!/usr/bin/env bash
# CI: the real Xen guest test (tests/xen-guest/run.sh) on the normal build of scripts/test.sh.
# Installs its packages first; a missing package, QEMU or Xen makes it fail, never skip.
# Its work directory, serial logs included, is kept in $BUILD_DIR/xen-guest.
set -euo pipefail
src=$(cd "$(dirname "$0")/../.." && pwd)
build=${BUILD_DIR:-$src/build}
bash "$src/tests/xen-guest/install-deps.sh"
[ -x "$build/colo-test-xenstored" ] || BUILD_DIR=$build "$src/scripts/build.sh"
rm -rf "$build/xen-guest"
echo "== real Xen guest on colo disks, two hosts, the plug pulled (tests/xen-guest)"
WORK=$build/xen-guest timeout 1200 bash "$src/tests/xen-guest/run.sh" "$build"
