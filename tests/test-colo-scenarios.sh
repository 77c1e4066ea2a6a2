#!/bin/bash
# QEMU's tests/unit/test-replication.c scenarios, ported to a colo Primary and Secondary over
# 127.0.0.1 with exact bytes (the QEMU block replication reference note, sections 3.1-3.4), plus
# the extra scenarios (a), (b), (c), (e) and (i) that upstream lacks.
#
# Images are 64 MiB, h = 32 MiB.  "View" is what a VM reads through a VBD's NBD export (the
# Secondary's: its buffer over its disk); "file" is the image file itself.  Patterns are
# checked with qemu-io's read -P, which fails on any mismatch; random images are compared
# with a byte model built by running the same qemu-io commands on a plain copy.
source "$(dirname "$0")/functions.sh"
requires qemu-io
requires_python_nbd

MiB=$((1 << 20))
SIZE=$((64 * MiB))
H=$((32 * MiB))

# Every tapdisk runs in the foreground with its log in $TAPLOG, whose colo lines are shown
# when a check fails; $TEST_DIR keeps it.
log_tapdisks colo

# fill_image PATH BYTE: 64 MiB of one byte value.
fill_image() {
	"$PY" -c 'import sys; open(sys.argv[1], "wb").write(bytes([int(sys.argv[2], 0)]) * int(sys.argv[3]))' \
		"$1" "$2" "$SIZE"
}

# pair_start [options]: the Secondary first, as upstream requires.
pair_start() {
	colo_pair_start "$@"
	expect_status S state running
	expect_status S link up
	expect_status P state running
	expect_status P link up
}

# status_without_error P|S: the status with last_error and last_error_at left out.
status_without_error() {
	local st
	st=$(colo "$1" status) || fail "colo status failed"
	"$PY" -c 'import json, sys; d = json.loads(sys.argv[1]); d.pop("last_error"); d.pop("last_error_at"); print(json.dumps(d, sort_keys=True))' "$st"
}

# view_check URI WHAT qemu-io-commands...: read -P checks through an NBD export.
view_check() {
	qio_cmds "$1" -- "${@:3}" ||
		fail "$2: $(grep -v '^read\|^[0-9.]* [KMG]i\?B, ' <<<"$QIO_OUT")"
	if grep -q 'Pattern verification failed\|error' <<<"$QIO_OUT"; then
		fail "$2: $QIO_OUT"
	fi
}

# file_check IMG WHAT qemu-io-commands...: the same on the image file, read-only.
file_check() {
	qio_cmds -r -U "$1" -- "${@:3}" || fail "$2: $QIO_OUT"
	if grep -q 'Pattern verification failed\|error' <<<"$QIO_OUT"; then
		fail "$2: $QIO_OUT"
	fi
}

# qwrite URI WHAT qemu-io-commands...: writes through an NBD export (or to a plain model file).
qwrite() {
	qio_cmds "$1" -- "${@:3}" || fail "$2: $QIO_OUT"
	if grep -qi 'error\|failed' <<<"$QIO_OUT"; then
		fail "$2: $QIO_OUT"
	fi
}

pimg=$TEST_DIR/p.img
simg=$TEST_DIR/s.img

##############################################################################################
step "P: the Primary is a plain disk before start, forwards after, keeps serving after failover"
make_image "$pimg" 64M 5
make_image "$simg" 64M 5
colo_pair_create "$pimg" "$simg"
expect_status P role none
expect_status P state idle
expect_status P link none
expect_status P epoch 0
# P1/P2 expect -EIO before start; here the colo VBD is a pass-through disk until started.
qwrite "$P_URI" "Primary write before start" 'write -P 0x44 2M 64k' 'write -P 0x45 100000 3000'
view_check "$P_URI" "Primary read before start" 'read -P 0x44 2M 64k' 'read -P 0x45 100000 3000'
file_check "$pimg" "Primary image before start" 'read -P 0x44 2M 64k' 'read -P 0x45 100000 3000'
qwrite "$S_URI" "Secondary write before start" 'write -P 0x44 2M 64k' 'write -P 0x45 100000 3000'
same "$simg" "$pimg" "both images equal before start"
cp "$pimg" "$TEST_DIR/model.img"
cp "$pimg" "$TEST_DIR/pre.img"

pair_start
expect_status P role primary
expect_status P epoch 1
expect_status S role secondary
expect_status S epoch 1
# P3: reads work on the started Primary (upstream's read fails: its filter has no local child).
view_check "$P_URI" "Primary read after start" 'read -P 0x44 2M 64k'

pw=('write -P 0x55 8M 1M' 'write -P 0x56 12345 6789' 'write -P 0x57 67108352 512')
qwrite "$P_URI" "Primary writes" "${pw[@]}"
qwrite "$TEST_DIR/model.img" "model" "${pw[@]}"
same "$pimg" "$TEST_DIR/model.img" "the Primary's image after its writes"
view_check "$P_URI" "Primary read-back" 'read -P 0x55 8M 1M' 'read -P 0x56 12345 6789' 'read -P 0x57 67108352 512'
wait_applied
# Not yet a checkpoint: the Secondary VM still reads the old contents.
view_check "$S_URI" "Secondary view before the checkpoint" 'read -P 0x44 2M 64k'
same_view "$S_URI" "$TEST_DIR/pre.img" "the Secondary's view before the checkpoint"
expect_status P dirty_blocks $((256 + 2 + 1))
checkpoint_both 2
same "$simg" "$pimg" "both images after a checkpoint"
same_view "$S_URI" "$pimg" "the Secondary's view after a checkpoint"
expect_status S buffer_blocks 0
expect_status P sent_bytes 0
expect_status P inflight_bytes 0
# The Primary keeps the dirty blocks of the last two epochs: it cannot know whether the
# Secondary's do_checkpoint of epoch 1 ran.  Epoch 1: [8M, 9M) = 256 blocks, 12345+6789 (RMW
# to sectors [12288, 19456)) = blocks 3-4, and the last block.
expect_status P dirty_blocks $((256 + 2 + 1))

# Writes of epoch 2, then failover on the Primary: it keeps serving as a plain disk.
qwrite "$P_URI" "Primary writes of epoch 2" 'write -P 0x58 16M 128k'
wait_applied
colo_p failover || fail "failover on the Primary"
expect_status P state failed-over
expect_status P link none
# Epochs 1 and 2: epoch 2 added 32 blocks.
expect_status P dirty_blocks $((256 + 2 + 1 + 32))
qwrite "$P_URI" "Primary write after failover" 'write -P 0x59 20M 4k'
view_check "$P_URI" "Primary read after failover" 'read -P 0x59 20M 4k' 'read -P 0x58 16M 128k'
file_check "$pimg" "Primary image after failover" 'read -P 0x59 20M 4k'
expect_status P dirty_blocks $((256 + 2 + 1 + 32 + 1))
expect_status P state failed-over
# The Secondary saw the link close: the Primary's failover said GOODBYE (colo-protocol.md).
wait_status S link closed 10
expect_status S state broken
colo_pair_destroy

##############################################################################################
step "S1/S2: the Secondary is a plain disk before start"
fill_image "$pimg" 0x11
fill_image "$simg" 0x11
colo_pair_create "$pimg" "$simg"
expect_status S role none
expect_status S state idle
view_check "$S_URI" "S1: Secondary read before start" 'read -P 0x11 0 64M'
qwrite "$S_URI" "S2: Secondary write before start" 'write -P 0x5a 1M 64k' 'write -P 0x5b 3145828 1000'
file_check "$simg" "S2: the write reached the file" 'read -P 0x5a 1M 64k' 'read -P 0x5b 3145828 1000' \
	'read -P 0x11 0 1M' 'read -P 0x11 1114112 2031716'
qwrite "$S_URI" "S2: restore 0x11" 'write -P 0x11 1M 64k' 'write -P 0x11 3M 4k'
file_check "$simg" "S2: restored" 'read -P 0x11 0 64M'

step "S3: primary writes are masked, Secondary VM writes stay in the buffer"
pair_start
view_check "$S_URI" "S3 (2): view after start" 'read -P 0x11 0 64M'
qwrite "$P_URI" "S3 (3): Primary writes 0x22 to [h, 64M)" "write -P 0x22 $H $H"
wait_applied
view_check "$S_URI" "S3 (4): view [0, 64M) still 0x11" 'read -P 0x11 0 64M'
file_check "$simg" "S3 (4): the Secondary's file has the primary write" "read -P 0x11 0 $H" "read -P 0x22 $H $H"
expect_status S buffer_blocks $((H / 4096))
qwrite "$S_URI" "S3 (5): Secondary VM writes 0x33 to [0, h)" "write -P 0x33 0 $H"
view_check "$S_URI" "S3 (6): view" "read -P 0x33 0 $H" "read -P 0x11 $H $H"
file_check "$simg" "S3: the Secondary's file [0, h) untouched" "read -P 0x11 0 $H" "read -P 0x22 $H $H"
expect_status S buffer_blocks $((SIZE / 4096))
expect_status S buffer_bytes $SIZE

step "S4: failover on the Secondary rolls the primary write back and keeps its own"
colo_s failover || fail "S4: failover on the Secondary"
expect_status S state failed-over
expect_status S buffer_blocks 0
file_check "$simg" "S4: file after failover" "read -P 0x33 0 $H" "read -P 0x11 $H $H"
view_check "$S_URI" "S4: view after failover" "read -P 0x33 0 $H" "read -P 0x11 $H $H"
same_view "$S_URI" "$simg" "S4: the view equals the file"
wait_status P link closed 10
expect_status P state broken

# (A start does work: a new run, tests/test-colo-reprotect.sh.)
step "S5: after failover, checkpoint/failover/stop are refused and change nothing"
cp "$simg" "$TEST_DIR/s4.img"
before=$(status_without_error S)
ended="replication has ended (failed-over); the disk is a plain disk"
expect_error S 108 "tap-ctl: colo checkpoint: do_checkpoint: $ended" checkpoint
expect_eq "$(colo_field S last_error)" "do_checkpoint: $ended" "S5: last_error after checkpoint"
expect_error S 114 "tap-ctl: colo failover: replication has already failed over" failover
expect_error S 108 "tap-ctl: colo stop: replication has already failed over" stop
expect_eq "$(colo_field S last_error)" "stop: replication has already failed over" "S5: last_error after stop"
expect_eq "$(status_without_error S)" "$before" "S5: the status (but last_error) after the refusals"
same "$simg" "$TEST_DIR/s4.img" "S5: the file after the refusals"
view_check "$S_URI" "S5: view" "read -P 0x33 0 $H" "read -P 0x11 $H $H"
# Still a plain disk: a write goes straight to the file.
qwrite "$S_URI" "S5: write after failover" 'write -P 0x66 40M 4k'
file_check "$simg" "S5: the write reached the file" 'read -P 0x66 40M 4k'
colo_pair_destroy

##############################################################################################
step "S6: after a checkpoint the Secondary VM sees the Primary's writes"
fill_image "$pimg" 0x11
fill_image "$simg" 0x11
colo_pair_create "$pimg" "$simg"
pair_start
qwrite "$P_URI" "S6: Primary writes 0x22 to [h, 64M)" "write -P 0x22 $H $H"
view_check "$S_URI" "S6: before the checkpoint" 'read -P 0x11 0 64M'
checkpoint_both 2
view_check "$S_URI" "S6: after the checkpoint" "read -P 0x11 0 $H" "read -P 0x22 $H $H"
expect_status S buffer_blocks 0
same "$simg" "$pimg" "S6: both files after the checkpoint"

step "(a) the first write after a checkpoint saves the block again"
# Block range X was saved in epoch 1 (now dropped); epoch 2's write must save 0x22 again.
qwrite "$P_URI" "(a) Primary writes 0x44 over [h, h+64k)" "write -P 0x44 $H 64k"
wait_applied
expect_status S buffer_blocks 16
file_check "$simg" "(a) the primary write reached the Secondary's file" "read -P 0x44 $H 64k"
view_check "$S_URI" "(a) view keeps the checkpoint contents" "read -P 0x22 $H 64k"

step "(b) the Secondary VM's own write survives a later primary write to the same blocks"
# The primary write covers the Secondary VM's 8 blocks and 8 blocks around them: saving the
# old contents of the 16 must not overwrite the 8 the Secondary VM wrote.
Y=$((H + 4 * MiB))
qwrite "$S_URI" "(b) Secondary VM writes 0x33 to [Y+16k, Y+48k)" "write -P 0x33 $((Y + 16384)) 32k"
qwrite "$P_URI" "(b) Primary writes 0x55 to [Y, Y+64k)" "write -P 0x55 $Y 64k"
wait_applied
file_check "$simg" "(b) the primary write reached the file" "read -P 0x55 $Y 64k"
view_check "$S_URI" "(b) the Secondary VM reads its own data and the checkpoint around it" \
	"read -P 0x22 $Y 16k" "read -P 0x33 $((Y + 16384)) 32k" "read -P 0x22 $((Y + 49152)) 16k"
# A Secondary VM write after the primary write, over part of the saved blocks.
qwrite "$S_URI" "(b) Secondary VM writes 0x34 to [Y+40k, Y+56k)" "write -P 0x34 $((Y + 40960)) 16k"
view_check "$S_URI" "(b) view after the second Secondary VM write" "read -P 0x22 $Y 16k" \
	"read -P 0x33 $((Y + 16384)) 24k" "read -P 0x34 $((Y + 40960)) 16k" "read -P 0x22 $((Y + 57344)) 8k"
expect_status S buffer_blocks 32
colo_s failover || fail "(a)/(b) failover"
file_check "$simg" "(a)/(b) file after failover" "read -P 0x11 0 $H" "read -P 0x22 $H $((4 * MiB + 16384))" \
	"read -P 0x33 $((Y + 16384)) 24k" "read -P 0x34 $((Y + 40960)) 16k" \
	"read -P 0x22 $((Y + 57344)) $((28 * MiB - 57344))"
same_view "$S_URI" "$simg" "(a)/(b) view equals the file after failover"
colo_pair_destroy

##############################################################################################
step "(c) stop on the Secondary drops the buffer: the file is the Primary's"
make_image "$pimg" 64M 9
cp "$pimg" "$simg"
colo_pair_create "$pimg" "$simg"
pair_start
qwrite "$P_URI" "(c) Primary writes" 'write -P 0x22 0 1M' 'write -P 0x23 7340544 5000'
qwrite "$S_URI" "(c) Secondary VM writes" 'write -P 0x33 0 512k' 'write -P 0x34 2M 64k'
wait_applied
view_check "$S_URI" "(c) Secondary view before stop" 'read -P 0x33 0 512k' 'read -P 0x34 2M 64k'
colo_s stop || fail "(c) stop on the Secondary"
expect_status S state stopped
expect_status S buffer_blocks 0
same "$simg" "$pimg" "(c) the Secondary's file after stop equals the Primary's"
same_view "$S_URI" "$pimg" "(c) the Secondary's view after stop"
wait_status P link closed 10
expect_status P state broken
colo_pair_destroy

##############################################################################################
# (e) Unaligned writes on random images, with two block sizes.  Everything the Primary writes
# lands on both files; the Secondary VM's view is the initial image plus its own writes, and
# so is its file after failover.
unaligned() {
	local bs=$1
	step "(e) unaligned writes, block_size=$bs"
	make_image "$pimg" 64M 11
	cp "$pimg" "$simg"
	cp "$pimg" "$TEST_DIR/model-p.img"
	cp "$pimg" "$TEST_DIR/model-s.img"
	colo_pair_create "$pimg" "$simg"
	pair_start "block_size=$bs"
	expect_status S block_size "$bs"
	local pw=('write -P 0x41 4608 1000' 'write -P 0x42 70000 3333' 'write -P 0x43 67108164 700'
		'write -P 0x44 1048276 600' 'write -P 0x45 5242881 131071')
	local sw=('write -P 0x61 8292 3000' 'write -P 0x62 4146 200' 'write -P 0x63 67107864 900'
		'write -P 0x64 1048476 5000' 'write -P 0x65 69631 2')
	qwrite "$P_URI" "(e) Primary writes" "${pw[0]}" "${pw[1]}"
	qwrite "$S_URI" "(e) Secondary VM writes" "${sw[0]}" "${sw[1]}"
	qwrite "$P_URI" "(e) Primary writes" "${pw[2]}" "${pw[3]}" "${pw[4]}"
	qwrite "$S_URI" "(e) Secondary VM writes" "${sw[2]}" "${sw[3]}" "${sw[4]}"
	qwrite "$TEST_DIR/model-p.img" "model" "${pw[@]}"
	qwrite "$TEST_DIR/model-s.img" "model" "${sw[@]}"
	wait_applied
	same "$pimg" "$TEST_DIR/model-p.img" "(e) bs=$bs: the Primary's file"
	same "$simg" "$TEST_DIR/model-p.img" "(e) bs=$bs: the Secondary's file has the Primary's writes"
	same_view "$S_URI" "$TEST_DIR/model-s.img" "(e) bs=$bs: the Secondary's view"
	colo_s failover || fail "(e) failover"
	same "$simg" "$TEST_DIR/model-s.img" "(e) bs=$bs: the Secondary's file after failover"
	same_view "$S_URI" "$TEST_DIR/model-s.img" "(e) bs=$bs: the Secondary's view after failover"
	colo_pair_destroy
}
unaligned 4096
unaligned 65536

##############################################################################################
step "(i) misuse: errors, and nothing changes"
fill_image "$pimg" 0x11
fill_image "$simg" 0x11
colo_pair_create "$pimg" "$simg"
expect_error P 22 "tap-ctl: colo checkpoint: prepare_checkpoint: replication is not started" checkpoint
expect_error S 22 "tap-ctl: colo failover: replication is not started" failover
expect_error S 22 "tap-ctl: colo stop: replication is not started" stop
expect_error S 22 "tap-ctl: colo start: block_size=3000: must be a power of two from 512 to 1048576" \
	start secondary block_size=3000
expect_error S 22 "tap-ctl: colo start: unknown option 'frob'" start secondary frob=1
expect_error S 22 "tap-ctl: colo start: spill=rel/path: must be an absolute path" start secondary spill=rel/path
expect_error S 2 "tap-ctl: colo start: spill=$TEST_DIR/no/such/dir/x: cannot create the file (No such file or directory)" \
	start secondary "spill=$TEST_DIR/no/such/dir/x"
# Each role refuses the options of the other, which it would not use.
for opt in ram_limit=1M "spill=$TEST_DIR/spill" spill_limit=1M peer=127.0.0.1; do
	expect_error P 22 "tap-ctl: colo start: ${opt%%=*} is an option of the Secondary, not of the Primary" \
		start primary "$opt"
done
expect_error S 22 "tap-ctl: colo start: connect_timeout is an option of the Primary, not of the Secondary" \
	start secondary connect_timeout=500
expect_error S 22 "tap-ctl: colo start: unknown role 'tertiary': expected primary or secondary" start tertiary
expect_error S 22 "tap-ctl: colo checkpoint: checkpoint takes no arguments (got 'now')" checkpoint now
for side in P S; do
	expect_status $side role none
	expect_status $side state idle
	expect_status $side link none
	expect_status $side epoch 0
done
# A VBD whose start was refused starts normally afterwards.
pair_start
expect_error S 16 "tap-ctl: colo start: already started as secondary (running)" start secondary
expect_error S 16 "tap-ctl: colo start: already started as secondary (running)" start primary
expect_error P 16 "tap-ctl: colo start: already started as primary (running)" start primary
expect_status S state running
expect_status P state running
file_check "$simg" "(i) the Secondary's file" 'read -P 0x11 0 64M'
file_check "$pimg" "(i) the Primary's file" 'read -P 0x11 0 64M'
# Replication still works after the refusals.
qwrite "$P_URI" "(i) Primary write" 'write -P 0x22 0 4k'
checkpoint_both 2
file_check "$simg" "(i) the Secondary's file after a checkpoint" 'read -P 0x22 0 4k' 'read -P 0x11 4k 67104768'
colo_pair_destroy

echo "PASS: colo scenarios P, S1-S6, (a) (b) (c) (e) (i) with exact bytes"
