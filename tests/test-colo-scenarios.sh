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

# Every tapdisk runs in the foreground with its log in $TAPLOG, shown when a check fails and
# kept with $TEST_DIR.
log_tapdisks

fail() {
	echo "FAIL: $*" >&2
	if [ -s "$TAPLOG" ]; then
		echo "--- last colo lines of $TAPLOG ---" >&2
		grep -i 'colo' "$TAPLOG" | tail -25 >&2
	fi
	exit 1
}

step() { echo "--- $*"; }

# fill_image PATH BYTE: 64 MiB of one byte value.
fill_image() {
	"$PY" -c 'import sys; open(sys.argv[1], "wb").write(bytes([int(sys.argv[2], 0)]) * int(sys.argv[3]))' \
		"$1" "$2" "$SIZE"
}

# pair_create PIMG SIMG: a Secondary and a Primary colo VBD, not started.
pair_create() {
	COLO_PORT=$(free_port)
	vbd_create_spec "colo:127.0.0.1:$COLO_PORT:$2"
	S_PID=$VBD_PID S_MINOR=$VBD_MINOR S_URI=$VBD_URI
	vbd_create_spec "colo:127.0.0.1:$COLO_PORT:$1"
	P_PID=$VBD_PID P_MINOR=$VBD_MINOR P_URI=$VBD_URI
}

# pair_start [options]: the Secondary first, as upstream requires.
pair_start() {
	colo_s start secondary "$@" || fail "start secondary $*"
	colo_p start primary "$@" || fail "start primary $*"
	expect_status s state running
	expect_status s link up
	expect_status p state running
	expect_status p link up
}

pair_destroy() {
	vbd_destroy "$P_PID" "$P_MINOR" || fail "destroying the Primary"
	vbd_destroy "$S_PID" "$S_MINOR" || fail "destroying the Secondary"
}

# field p|s KEY: one field of the Primary's / the Secondary's status.
field() {
	local st
	st=$(colo_"$1" status) || fail "colo status on the ${1^^} side failed"
	json_field "$st" "$2"
}

expect_status() {
	local got
	got=$(field "$1" "$2")
	[ "$got" = "$3" ] || fail "${1^^} status $2: expected '$3', got '$got' ($(colo_"$1" status))"
}

# status_without_error p|s: the status with last_error left out.
status_without_error() {
	local st
	st=$(colo_"$1" status) || fail "colo status failed"
	"$PY" -c 'import json, sys; d = json.loads(sys.argv[1]); d.pop("last_error"); print(json.dumps(d, sort_keys=True))' "$st"
}

# expect_refused p|s RC LINE COMMAND...: the colo command fails with exactly that line and
# exit status.
expect_refused() {
	local side=$1 rc=$2 line=$3 got_rc=0 err
	shift 3
	err=$(colo_"$side" "$@" 2>&1 >/dev/null) || got_rc=$?
	[ "$got_rc" = "$rc" ] || fail "colo $* on the ${side^^} side: exit $got_rc, expected $rc ($err)"
	[ "$err" = "$line" ] || fail "colo $* on the ${side^^} side: expected the line '$line', got '$err'"
}

# view_check URI WHAT qemu-io-commands...: read -P checks through an NBD export.
view_check() {
	local uri=$1 what=$2 out
	shift 2
	local args=()
	for c in "$@"; do args+=(-c "$c"); done
	out=$(qemu-io -f raw "$uri" "${args[@]}" 2>&1) || fail "$what: $(grep -v '^read\|^[0-9.]* [KMG]i\?B, ' <<<"$out")"
	if grep -q 'Pattern verification failed\|error' <<<"$out"; then
		fail "$what: $out"
	fi
}

# file_check IMG WHAT qemu-io-commands...: the same on the image file, read-only.
file_check() {
	local img=$1 what=$2 out
	shift 2
	local args=()
	for c in "$@"; do args+=(-c "$c"); done
	out=$(qemu-io -f raw -r -U "$img" "${args[@]}" 2>&1) || fail "$what: $out"
	if grep -q 'Pattern verification failed\|error' <<<"$out"; then
		fail "$what: $out"
	fi
}

# qwrite URI WHAT qemu-io-commands...: writes through an NBD export (or to a plain model file).
qwrite() {
	local uri=$1 what=$2 out
	shift 2
	local args=()
	for c in "$@"; do args+=(-c "$c"); done
	out=$(qemu-io -f raw "$uri" "${args[@]}" 2>&1) || fail "$what: $out"
	if grep -qi 'error\|failed' <<<"$out"; then
		fail "$what: $out"
	fi
}

# dump_view URI OUT: the whole export into a file.
dump_view() {
	"$PY" - "$1" "$2" <<'PYEOF' || fail "reading the export $1"
import nbd, sys
h = nbd.NBD()
h.connect_uri(sys.argv[1])
size = h.get_size()
with open(sys.argv[2], "wb") as f:
    off = 0
    while off < size:
        n = min(8 << 20, size - off)
        f.write(h.pread(n, off))
        off += n
h.shutdown()
PYEOF
}

# same A B WHAT: the two files are byte-identical; otherwise says where they differ.
same() {
	local msg
	msg=$("$PY" - "$1" "$2" <<'PYEOF'
import sys
a, b = open(sys.argv[1], "rb").read(), open(sys.argv[2], "rb").read()
if len(a) != len(b):
    print("sizes %d and %d" % (len(a), len(b)))
    sys.exit(1)
if a == b:
    sys.exit(0)
diff = [i for i in range(0, len(a), 512) if a[i:i + 512] != b[i:i + 512]]
first = diff[0] + next(k for k in range(512) if a[diff[0] + k] != b[diff[0] + k])
print("%d sectors differ, first at byte %d (got 0x%02x, expected 0x%02x), last sector at %d"
      % (len(diff), first, a[first], b[first], diff[-1]))
sys.exit(1)
PYEOF
	) || fail "$3: $msg"
}

# same_view URI MODEL WHAT: the export reads exactly as the model file.
same_view() {
	dump_view "$1" "$TEST_DIR/view.dump"
	same "$TEST_DIR/view.dump" "$2" "$3"
}

# wait_applied: every forwarded write is acknowledged, i.e. applied on the Secondary.
wait_applied() {
	for _ in $(seq 200); do
		[ "$(field p inflight_bytes)" = 0 ] && return 0
		sleep 0.05
	done
	fail "the Secondary did not acknowledge the Primary's writes within 10 s: $(colo_p status)"
}

wait_field() {
	local side=$1 key=$2 want=$3
	for _ in $(seq 200); do
		[ "$(field "$side" "$key")" = "$want" ] && return 0
		sleep 0.05
	done
	fail "${side^^} status $key did not become '$want' within 10 s: $(colo_"$side" status)"
}

checkpoint_both() {
	local want=$1 out
	out=$(colo_p checkpoint) || fail "checkpoint on the Primary"
	expect_eq "$out" "epoch=$want" "the Primary's checkpoint"
	out=$(colo_s checkpoint) || fail "checkpoint on the Secondary"
	expect_eq "$out" "epoch=$want" "the Secondary's checkpoint"
}

pimg=$TEST_DIR/p.img
simg=$TEST_DIR/s.img

##############################################################################################
step "P: the Primary is a plain disk before start, forwards after, keeps serving after failover"
make_image "$pimg" 64M 5
make_image "$simg" 64M 5
pair_create "$pimg" "$simg"
expect_status p role none
expect_status p state idle
expect_status p link none
expect_status p epoch 0
# P1/P2 expect -EIO before start; here the colo VBD is a pass-through disk until started.
qwrite "$P_URI" "Primary write before start" 'write -P 0x44 2M 64k' 'write -P 0x45 100000 3000'
view_check "$P_URI" "Primary read before start" 'read -P 0x44 2M 64k' 'read -P 0x45 100000 3000'
file_check "$pimg" "Primary image before start" 'read -P 0x44 2M 64k' 'read -P 0x45 100000 3000'
qwrite "$S_URI" "Secondary write before start" 'write -P 0x44 2M 64k' 'write -P 0x45 100000 3000'
same "$simg" "$pimg" "both images equal before start"
cp "$pimg" "$TEST_DIR/model.img"
cp "$pimg" "$TEST_DIR/pre.img"

pair_start
expect_status p role primary
expect_status p epoch 1
expect_status s role secondary
expect_status s epoch 1
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
expect_status p dirty_blocks $((256 + 2 + 1))
checkpoint_both 2
same "$simg" "$pimg" "both images after a checkpoint"
same_view "$S_URI" "$pimg" "the Secondary's view after a checkpoint"
expect_status s buffer_blocks 0
expect_status p sent_bytes 0
expect_status p inflight_bytes 0
# The Primary keeps the dirty blocks of the last two epochs: it cannot know whether the
# Secondary's do_checkpoint of epoch 1 ran.  Epoch 1: [8M, 9M) = 256 blocks, 12345+6789 (RMW
# to sectors [12288, 19456)) = blocks 3-4, and the last block.
expect_status p dirty_blocks $((256 + 2 + 1))

# Writes of epoch 2, then failover on the Primary: it keeps serving as a plain disk.
qwrite "$P_URI" "Primary writes of epoch 2" 'write -P 0x58 16M 128k'
wait_applied
colo_p failover || fail "failover on the Primary"
expect_status p state failed-over
expect_status p link none
# Epochs 1 and 2: epoch 2 added 32 blocks.
expect_status p dirty_blocks $((256 + 2 + 1 + 32))
qwrite "$P_URI" "Primary write after failover" 'write -P 0x59 20M 4k'
view_check "$P_URI" "Primary read after failover" 'read -P 0x59 20M 4k' 'read -P 0x58 16M 128k'
file_check "$pimg" "Primary image after failover" 'read -P 0x59 20M 4k'
expect_status p dirty_blocks $((256 + 2 + 1 + 32 + 1))
expect_status p state failed-over
# The Secondary saw the link close.
wait_field s link lost
expect_status s state broken
pair_destroy

##############################################################################################
step "S1/S2: the Secondary is a plain disk before start"
fill_image "$pimg" 0x11
fill_image "$simg" 0x11
pair_create "$pimg" "$simg"
expect_status s role none
expect_status s state idle
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
expect_status s buffer_blocks $((H / 4096))
qwrite "$S_URI" "S3 (5): Secondary VM writes 0x33 to [0, h)" "write -P 0x33 0 $H"
view_check "$S_URI" "S3 (6): view" "read -P 0x33 0 $H" "read -P 0x11 $H $H"
file_check "$simg" "S3: the Secondary's file [0, h) untouched" "read -P 0x11 0 $H" "read -P 0x22 $H $H"
expect_status s buffer_blocks $((SIZE / 4096))
expect_status s buffer_bytes $SIZE

step "S4: failover on the Secondary rolls the primary write back and keeps its own"
colo_s failover || fail "S4: failover on the Secondary"
expect_status s state failed-over
expect_status s buffer_blocks 0
file_check "$simg" "S4: file after failover" "read -P 0x33 0 $H" "read -P 0x11 $H $H"
view_check "$S_URI" "S4: view after failover" "read -P 0x33 0 $H" "read -P 0x11 $H $H"
same_view "$S_URI" "$simg" "S4: the view equals the file"
wait_field p link lost
expect_status p state broken

step "S5: after failover, start/checkpoint/failover/stop are refused and change nothing"
cp "$simg" "$TEST_DIR/s4.img"
before=$(status_without_error s)
ended="replication has ended (failed-over); the disk is a plain disk"
expect_refused s 108 "tap-ctl: colo start: start: $ended" start secondary
expect_eq "$(field s last_error)" "start: $ended" "S5: last_error after start"
expect_refused s 108 "tap-ctl: colo start: start: $ended" start primary
expect_refused s 108 "tap-ctl: colo checkpoint: do_checkpoint: $ended" checkpoint
expect_eq "$(field s last_error)" "do_checkpoint: $ended" "S5: last_error after checkpoint"
expect_refused s 114 "tap-ctl: colo failover: failover: replication has already failed over" failover
expect_refused s 108 "tap-ctl: colo stop: stop: replication has already failed over" stop
expect_eq "$(field s last_error)" "stop: replication has already failed over" "S5: last_error after stop"
expect_eq "$(status_without_error s)" "$before" "S5: the status (but last_error) after the refusals"
same "$simg" "$TEST_DIR/s4.img" "S5: the file after the refusals"
view_check "$S_URI" "S5: view" "read -P 0x33 0 $H" "read -P 0x11 $H $H"
# Still a plain disk: a write goes straight to the file.
qwrite "$S_URI" "S5: write after failover" 'write -P 0x66 40M 4k'
file_check "$simg" "S5: the write reached the file" 'read -P 0x66 40M 4k'
pair_destroy

##############################################################################################
step "S6: after a checkpoint the Secondary VM sees the Primary's writes"
fill_image "$pimg" 0x11
fill_image "$simg" 0x11
pair_create "$pimg" "$simg"
pair_start
qwrite "$P_URI" "S6: Primary writes 0x22 to [h, 64M)" "write -P 0x22 $H $H"
view_check "$S_URI" "S6: before the checkpoint" 'read -P 0x11 0 64M'
checkpoint_both 2
view_check "$S_URI" "S6: after the checkpoint" "read -P 0x11 0 $H" "read -P 0x22 $H $H"
expect_status s buffer_blocks 0
same "$simg" "$pimg" "S6: both files after the checkpoint"

step "(a) the first write after a checkpoint saves the block again"
# Block range X was saved in epoch 1 (now dropped); epoch 2's write must save 0x22 again.
qwrite "$P_URI" "(a) Primary writes 0x44 over [h, h+64k)" "write -P 0x44 $H 64k"
wait_applied
expect_status s buffer_blocks 16
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
expect_status s buffer_blocks 32
colo_s failover || fail "(a)/(b) failover"
file_check "$simg" "(a)/(b) file after failover" "read -P 0x11 0 $H" "read -P 0x22 $H $((4 * MiB + 16384))" \
	"read -P 0x33 $((Y + 16384)) 24k" "read -P 0x34 $((Y + 40960)) 16k" \
	"read -P 0x22 $((Y + 57344)) $((28 * MiB - 57344))"
same_view "$S_URI" "$simg" "(a)/(b) view equals the file after failover"
pair_destroy

##############################################################################################
step "(c) stop on the Secondary drops the buffer: the file is the Primary's"
make_image "$pimg" 64M 9
cp "$pimg" "$simg"
pair_create "$pimg" "$simg"
pair_start
qwrite "$P_URI" "(c) Primary writes" 'write -P 0x22 0 1M' 'write -P 0x23 7340544 5000'
qwrite "$S_URI" "(c) Secondary VM writes" 'write -P 0x33 0 512k' 'write -P 0x34 2M 64k'
wait_applied
view_check "$S_URI" "(c) Secondary view before stop" 'read -P 0x33 0 512k' 'read -P 0x34 2M 64k'
colo_s stop || fail "(c) stop on the Secondary"
expect_status s state stopped
expect_status s buffer_blocks 0
same "$simg" "$pimg" "(c) the Secondary's file after stop equals the Primary's"
same_view "$S_URI" "$pimg" "(c) the Secondary's view after stop"
wait_field p link lost
expect_status p state broken
pair_destroy

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
	pair_create "$pimg" "$simg"
	pair_start "block_size=$bs"
	expect_status s block_size "$bs"
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
	pair_destroy
}
unaligned 4096
unaligned 65536

##############################################################################################
step "(i) misuse: errors, and nothing changes"
fill_image "$pimg" 0x11
fill_image "$simg" 0x11
pair_create "$pimg" "$simg"
expect_refused p 22 "tap-ctl: colo checkpoint: prepare_checkpoint: replication is not started" checkpoint
expect_refused s 22 "tap-ctl: colo failover: failover: replication is not started" failover
expect_refused s 22 "tap-ctl: colo stop: stop: replication is not started" stop
expect_refused s 22 "tap-ctl: colo start: block_size=3000: must be a power of two from 512 to 1048576" \
	start secondary block_size=3000
expect_refused s 22 "tap-ctl: colo start: unknown option 'frob'" start secondary frob=1
expect_refused s 22 "tap-ctl: colo start: spill=rel/path: must be an absolute path" start secondary spill=rel/path
expect_refused s 22 "tap-ctl: colo start: unknown role 'tertiary': expected primary or secondary" start tertiary
expect_refused s 22 "tap-ctl: colo checkpoint: checkpoint takes no arguments (got 'now')" checkpoint now
for side in p s; do
	expect_status $side role none
	expect_status $side state idle
	expect_status $side link none
	expect_status $side epoch 0
done
# A VBD whose start was refused starts normally afterwards.
pair_start
expect_refused s 16 "tap-ctl: colo start: start: already started as secondary (running)" start secondary
expect_refused s 16 "tap-ctl: colo start: start: already started as secondary (running)" start primary
expect_refused p 16 "tap-ctl: colo start: start: already started as primary (running)" start primary
expect_status s state running
expect_status p state running
file_check "$simg" "(i) the Secondary's file" 'read -P 0x11 0 64M'
file_check "$pimg" "(i) the Primary's file" 'read -P 0x11 0 64M'
# Replication still works after the refusals.
qwrite "$P_URI" "(i) Primary write" 'write -P 0x22 0 4k'
checkpoint_both 2
file_check "$simg" "(i) the Secondary's file after a checkpoint" 'read -P 0x22 0 4k' 'read -P 0x11 4k 67104768'
pair_destroy

echo "PASS: colo scenarios P, S1-S6, (a) (b) (c) (e) (i) with exact bytes"
