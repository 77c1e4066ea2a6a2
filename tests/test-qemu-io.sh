#!/usr/bin/env bash
# qemu-io through the NBD export: patterns, FUA, zeroes, discard, flush, async writes.
# The same commands run on a plain copy of the image; both files must end identical.
source "$(dirname "$0")/functions.sh"
requires qemu-io

img=$TEST_DIR/disk.img
ref=$TEST_DIR/ref.img
make_image "$img" 64M 7
cp "$img" "$ref"
vbd_create "$img"

cmds=(
	-c 'write -P 0x11 0 64k'
	-c 'write -P 0x22 1M 4k'
	-c 'write -f -P 0x33 2M 128k'
	-c 'write -z 4M 1M'
	-c 'write -P 0x44 63M 1M'
	-c 'aio_write -P 0x55 8M 64k'
	-c 'aio_write -P 0x66 9M 512'
	-c aio_flush
	-c flush
	-c 'write -P 0x77 5M 3584'
)
qio "${cmds[@]}" >"$TEST_DIR/qio.out" || fail "qemu-io writes failed: $(cat "$TEST_DIR/qio.out")"
qemu-io -f raw "$ref" "${cmds[@]}" >/dev/null

# Read back through the export with exact patterns; qemu-io exits 1 on a mismatch.
qio -c 'read -P 0x11 0 64k' -c 'read -P 0x22 1M 4k' -c 'read -P 0x33 2M 128k' \
	-c 'read -P 0 4M 1M' -c 'read -P 0x44 63M 1M' -c 'read -P 0x55 8M 64k' \
	-c 'read -P 0x66 9M 512' -c 'read -P 0x77 5M 3584' >/dev/null ||
	fail "pattern verification through NBD failed"

# Unaligned I/O: qemu aligns to the 512-byte minimum block we advertise (read-modify-write).
qio -c 'write -P 0x88 1000 3000' -c 'read -P 0x88 1000 3000' >/dev/null || fail "unaligned write"
qemu-io -f raw "$ref" -c 'write -P 0x88 1000 3000' >/dev/null

# The largest request the export takes, 64 MiB, in one piece each way.
big=$TEST_DIR/big.img
make_image "$big" 128M
save_pid=$VBD_PID save_minor=$VBD_MINOR save_uri=$VBD_URI
vbd_create "$big"
qio -c 'write -P 0x99 32M 64M' -c 'read -P 0x99 32M 64M' -c 'read -P 0 0 32M' -c 'read -P 0 96M 32M' \
	>/dev/null || fail "64 MiB request"
vbd_destroy "$VBD_PID" "$VBD_MINOR"
VBD_PID=$save_pid VBD_MINOR=$save_minor VBD_URI=$save_uri

# Discard is advisory and, on this export, keeps the data; it must succeed.
qio -c 'discard 16M 1M' >/dev/null || fail "discard failed"

vbd_destroy "$VBD_PID" "$VBD_MINOR"
wait_gone "$VBD_PID"
cmp "$img" "$ref" || fail "image differs from the reference after destroy"
echo "PASS: qemu-io patterns, FUA, zeroes, flush; image equals the reference"
