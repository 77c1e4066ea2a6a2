#!/usr/bin/env bash
# nbdcopy a random image into the export and back out; every byte must survive.
source "$(dirname "$0")/functions.sh"
requires nbdcopy

img=$TEST_DIR/disk.img
src=$TEST_DIR/src.img
out=$TEST_DIR/out.img
make_image "$img" 96M
make_image "$src" 96M 42
vbd_create "$img"

nbdcopy --flush "$src" "$VBD_URI" || fail "nbdcopy in"
nbdcopy "$VBD_URI" "$out" || fail "nbdcopy out"
cmp "$src" "$out" || fail "copy out differs from source"
# Four connections, requests of 4 MiB: multi-conn and large requests together.
nbdcopy -C 4 --request-size=4194304 "$VBD_URI" "$TEST_DIR/out4.img" || fail "nbdcopy -C 4"
cmp "$src" "$TEST_DIR/out4.img" || fail "4-connection copy differs"

vbd_destroy "$VBD_PID" "$VBD_MINOR"
cmp "$src" "$img" || fail "image file differs from source"
echo "PASS: nbdcopy round trip, 96 MiB"
