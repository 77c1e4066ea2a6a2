#!/usr/bin/env bash
# Eight clients at once, each writing and verifying its own region, while a ninth reads.
source "$(dirname "$0")/functions.sh"
requires qemu-io

img=$TEST_DIR/disk.img
make_image "$img" 64M
vbd_create "$img"

pids=()
for i in $(seq 0 7); do
	off=$((i * 8))
	pat=$(printf '0x%02x' $((0x30 + i)))
	cmds=()
	for j in $(seq 0 15); do
		cmds+=(-c "aio_write -P $pat $((off * 1048576 + j * 262144)) 256k")
	done
	cmds+=(-c aio_flush -c "read -P $pat ${off}M 4M")
	qio "${cmds[@]}" >"$TEST_DIR/c$i.out" 2>&1 &
	pids+=($!)
done
qio -c 'read 0 64M' >/dev/null &
pids+=($!)
for p in "${pids[@]}"; do
	wait "$p" || fail "a concurrent client failed"
done

vbd_destroy "$VBD_PID" "$VBD_MINOR"
"$PY" - "$img" <<'PYEOF'
import sys
data = open(sys.argv[1], 'rb').read()
for i in range(8):
    region = data[i * 8 << 20:(i * 8 + 4) << 20]
    assert region == bytes([0x30 + i]) * (4 << 20), "client %d's region is wrong" % i
    rest = data[(i * 8 + 4) << 20:(i + 1) * 8 << 20]
    assert rest == bytes(len(rest)), "bytes past client %d's region changed" % i
PYEOF
echo "PASS: 8 writers and a reader on separate connections"
