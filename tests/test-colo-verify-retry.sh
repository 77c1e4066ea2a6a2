#!/bin/bash
# A failed start can be retried (docs/colo.md, "States"): verify=1 on disks that differ fails
# the Primary's start, and leaves both sides idle, with the reason in last_error and neither
# disk changed; once the disks are made equal, the same VBDs start again and replicate.
. "$(dirname "$0")/functions.sh"
log_tapdisks colo
requires qemu-io

pimg=$TEST_DIR/p.img
simg=$TEST_DIR/s.img
make_image "$pimg" 64M 7
cp "$pimg" "$simg"
# One byte differs, at 5 MiB + 3.
"$PY" -c 'import sys; f = open(sys.argv[1], "r+b"); f.seek(5 * 2**20 + 3); b = f.read(1); f.seek(-1, 1); f.write(bytes([b[0] ^ 0xff]))' "$simg"
cp "$simg" "$TEST_DIR/sref.img"
cp "$pimg" "$TEST_DIR/pref.img"
why="verify: the disks differ in the 1048576-byte chunk at byte offset 5242880"

step "verify=1 on differing disks fails, and both sides are idle again"
colo_pair_create "$pimg" "$simg"
colo S start secondary || fail "start secondary"
rc=0
err=$(colo P start primary verify=1 2>&1) || rc=$?
echo "    exit $rc: $err"
expect_eq "$rc" 84 "exit status of the failed verify (EILSEQ)"
expect_eq "$err" "tap-ctl: colo start: replication link to 127.0.0.1:$COLO_PORT lost: the Secondary reported: $why (Invalid or incomplete multibyte or wide character)" \
	"the Primary's line"
wait_status S state idle 20
for side in P S; do
	expect_status $side role none
	expect_status $side state idle
	expect_status $side link none
	expect_status $side epoch 0
	expect_status $side pending ""
done
expect_status S last_error "$why"
same "$simg" "$TEST_DIR/sref.img" "the Secondary's disk after the failed verify"
same "$pimg" "$TEST_DIR/pref.img" "the Primary's disk after the failed verify"

step "the disks made equal, the same VBDs start again"
# Idle, both are plain disks: the same write through each makes them equal.
qemu-io -f raw "$P_URI" -c 'write -P 0x5a 5M 4k' >/dev/null || fail "write on the Primary"
qemu-io -f raw "$S_URI" -c 'write -P 0x5a 5M 4k' >/dev/null || fail "write on the Secondary"
same "$simg" "$pimg" "both disks before the retry"
colo S start secondary || fail "start secondary again after the failed verify"
colo P start primary verify=1 || fail "start primary verify=1 again"
expect_status P state running
expect_status S state running
expect_status S last_error ""
qemu-io -f raw "$P_URI" -c 'write -P 0x61 9M 64k' >/dev/null || fail "write after the retry"
checkpoint_both 2
same "$simg" "$pimg" "both disks after the retry and a checkpoint"
colo_pair_destroy
echo "retry after a failed verify: ok"
