#!/bin/bash
# A failed start can be retried (docs/colo.md, "States"): verify=1 on disks that differ fails
# the Primary's start, and leaves both sides idle, with the reason in last_error and neither
# disk changed; once the disks are made equal, the same VBDs start again and replicate.
# A start that copies what it knows differs is no start from equal disks: after a lost link
# (a resync) and after a failover (a re-protect), the same start with verify=1 copies exactly
# the changed extents and replicates, instead of refusing disks that differ by design.
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
echo "retry after a failed verify: ok"

# ext_write NAME PATTERN EXTENT...: 64 KiB of PATTERN into each 1 MiB EXTENT, through NAME.
ext_write() {
	local uri=${1}_URI e cmds=()
	for e in "${@:3}"; do cmds+=("write -P $2 $((e << 20)) 64k"); done
	qio_cmds "${!uri}" -- "${cmds[@]}" || fail "writes through $1: $QIO_OUT"
}

step "verify=1 and a lost link: the same start again resyncs the changed extents"
ext_write P 0x62 11 12
checkpoint_both 3
S_PID_STOPPED=$S_PID
cleanup_fn 'kill -CONT "$S_PID_STOPPED" 2>/dev/null'
kill -STOP "$S_PID"
ext_write P 0x63 20 # epoch 3, after the last checkpoint
wait_status P state broken 20
ext_write P 0x64 21 # not forwarded: only the Primary's dirty map knows it
kill -CONT "$S_PID"
wait_status S state broken 20
colo S start secondary || fail "start secondary again after the lost link"
rc=0
err=$(colo P start primary verify=1 2>&1) || rc=$?
expect_eq "$rc:$err" "0:" "start primary verify=1 again after the lost link"
expect_status P state running
expect_status P sync_total_bytes $((2 << 20))
grep -q "verify=1: no verify step for a resync, which copies what differs" "$TAPLOG" ||
	fail "the Primary did not log why it skipped the verify step"
expect_status S last_error ""
ext_write P 0x65 22
checkpoint_both 4
same "$simg" "$pimg" "both disks after the resync and a checkpoint"
echo "verify=1 and a resync: ok"

step "verify=1 and a re-protect: the failed-over Secondary starts as Primary with verify=1"
ext_write P 0x66 30
checkpoint_both 5
ext_write P 0x67 31 # after the last checkpoint
wait_status P inflight_bytes 0 10
colo S failover || fail "failover of the Secondary"
wait_status P state broken 20
ext_write S 0x68 40 # the new Primary serves the guest
RP_PORT=$(free_port)
colo P start secondary "address=127.0.0.1:$RP_PORT" || fail "start secondary on the old Primary"
rc=0
err=$(colo S start primary verify=1 "address=127.0.0.1:$RP_PORT" 2>&1) || rc=$?
expect_eq "$rc:$err" "0:" "start primary verify=1 on the failed-over Secondary (re-protect)"
expect_status S state running
expect_status S reprotect exact
expect_status S sync_total_bytes $((2 << 20))
grep -q "verify=1: no verify step for a re-protect, which copies what differs" "$TAPLOG" ||
	fail "the new Primary did not log why it skipped the verify step"
checkpoint_both 2 S P # the roles swapped
same "$simg" "$pimg" "both disks after the re-protect and a checkpoint"
colo_pair_destroy
echo "verify=1 and a re-protect: ok"
