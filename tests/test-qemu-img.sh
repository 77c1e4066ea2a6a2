#!/usr/bin/env bash
# qemu-img: info sees the size; convert copies a qcow2 image in and out byte for byte.
source "$(dirname "$0")/functions.sh"
requires qemu-img

img=$TEST_DIR/disk.img
make_image "$img" 32M
vbd_create "$img"

size=$(qemu-img info --output=json -f raw "$VBD_URI" | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["virtual-size"])')
expect_eq "$size" 33554432 "virtual size"

# A source with data, holes and zeros, converted into the export.
src=$TEST_DIR/src.img
make_image "$src" 32M
qemu-io -f raw "$src" -c 'write -P 0xa5 0 1M' -c 'write -P 0x5a 17M 3M' -c 'write -P 0x01 31M 1M' >/dev/null
qemu-img convert -f raw -O raw -n "$src" "$VBD_URI" || fail "convert into the export"
qemu-img compare -f raw -F raw "$src" "$VBD_URI" >/dev/null || fail "compare export with source"

out=$TEST_DIR/out.qcow2
qemu-img convert -f raw -O qcow2 "$VBD_URI" "$out" || fail "convert out of the export"
qemu-img compare -f raw -F qcow2 "$src" "$out" >/dev/null || fail "compare qcow2 copy with source"

vbd_destroy "$VBD_PID" "$VBD_MINOR"
cmp "$src" "$img" || fail "image differs from source"
echo "PASS: qemu-img info/convert/compare"
