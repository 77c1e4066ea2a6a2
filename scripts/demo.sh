#!/usr/bin/env bash
# The main job: build, start a tapdisk serving a raw image through tap-ctl, and use it
# with real NBD clients (qemu-io, nbdinfo, nbdcopy), then show tap-ctl list and stats.
set -euo pipefail
src=$(cd "$(dirname "$0")/.." && pwd)
"$src/scripts/install-deps.sh"
BUILD_DIR=$src/build "$src/scripts/build.sh"
build=$src/build
export PATH="/usr/bin:$PATH"

work=$(mktemp -d /tmp/blktap-demo.XXXXXX)
export BLKTAP_CONTROL_DIR=$work/ctl TAPDISK=$build/tapdisk
mkdir -p "$BLKTAP_CONTROL_DIR"
trap 'for s in "$BLKTAP_CONTROL_DIR"/ctl*; do [ -S "$s" ] && kill "${s##*/ctl}" 2>/dev/null; done; rm -rf "$work"' EXIT

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
run() { printf '$ %s\n' "$*"; "$@"; }

say "A 256 MiB raw image, served by a tapdisk"
truncate -s 256M "$work/disk.img"
dev=$(run "$build/tap-ctl" create -a "aio:$work/disk.img")
echo "$dev"
minor=${dev##*-}
run "$build/tap-ctl" list
pid=$("$build/tap-ctl" list -m "$minor" | sed -n 's/^pid=\([0-9]*\) .*/\1/p')
uri="nbd+unix:///?socket=$BLKTAP_CONTROL_DIR/nbd$pid.$minor"

say "What the NBD export offers"
run nbdinfo "$uri"

say "qemu-io writes patterns (one with FUA), zeroes a range, flushes, and reads them back"
run qemu-io -f raw "$uri" -c 'write -P 0xab 0 1M' -c 'write -f -P 0xcd 1M 64k' \
	-c 'write -z 2M 1M' -c flush -c 'read -P 0xab 0 1M' -c 'read -P 0xcd 1M 64k' -c 'read -P 0 2M 1M'

say "nbdcopy copies 64 MiB of random data in and out; cmp compares"
head -c 64M /dev/urandom >"$work/random.img"
run nbdcopy "$work/random.img" "$uri"
run nbdcopy "$uri" "$work/copy.img"
run cmp -n 67108864 "$work/random.img" "$work/copy.img" && echo "identical"

say "Pause and unpause (the image chain is closed and reopened)"
run "$build/tap-ctl" pause -p "$pid" -m "$minor"
run "$build/tap-ctl" list -m "$minor"
run "$build/tap-ctl" unpause -p "$pid" -m "$minor"

say "Statistics"
run "$build/tap-ctl" stats -p "$pid" -m "$minor"
echo

say "Destroy; the data is in the image file"
run "$build/tap-ctl" destroy -p "$pid" -m "$minor"
run cmp -n 67108864 "$work/random.img" "$work/disk.img" && echo "image file holds the copied data"
