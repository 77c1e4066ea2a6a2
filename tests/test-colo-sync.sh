#!/bin/bash
# The start's online sync (sync=full|diff) while two guest writers write to the very extents
# being copied: after the sync and the first checkpoint the Secondary's disk equals the
# Primary's byte for byte; diff sends exactly the extents that differ; a checkpoint is refused
# while syncing, a Secondary failover until the first checkpoint (also once started again
# after a cut copy, and for a Secondary made again after kill -9), and 'failover force' works
# and says so.  docs/colo-protocol.md ("SYNC") states the ordering invariant this proves.
. "$(dirname "$0")/functions.sh"
log_tapdisks
requires_python_nbd
requires ss

MiB=$((1 << 20))

# sync_with_writers MODE RATE [OPTION...]: a pair on differing random disks, started (both
# sides with the OPTIONs) with sync=MODE and sync_rate=RATE while two writers (one following
# the copy, one anywhere) write to the Primary; then the first checkpoint, and the disks
# compared.
sync_with_writers() {
	local mode=$1 rate=$2 spid n1 n2 rc=0
	shift 2
	step "sync=$mode sync_rate=$rate${*:+ $*} with two writers racing the copy"
	make_image "$TEST_DIR/p.img" 24M 11
	if [ "$mode" = diff ]; then
		# Most extents equal, every fourth differs in one sector.
		cp "$TEST_DIR/p.img" "$TEST_DIR/s.img"
		for e in $(seq 0 4 23); do
			dd if=/dev/urandom of="$TEST_DIR/s.img" bs=512 seek=$((e * 2048 + 7)) count=1 \
				conv=notrunc status=none
		done
	else
		make_image "$TEST_DIR/s.img" 24M 12
	fi
	# Each extent read completes 50 ms late (a test knob of the driver, as a slow disk
	# would): the writers surely write to an extent while its copy is being made.
	export TAPDISK_COLO_SYNC_TEST_DELAY_MS=50
	colo_pair_create "$TEST_DIR/p.img" "$TEST_DIR/s.img"
	unset TAPDISK_COLO_SYNC_TEST_DELAY_MS
	colo S start secondary "$@" || fail "start secondary"
	rm -f "$TEST_DIR/stop"
	"$TAPCTL" colo -p "$P_PID" -m "$P_MINOR" start primary sync="$mode" sync_rate="$rate" "$@" \
		tls=none \
		>"$TEST_DIR/start.out" 2>&1 &
	spid=$!
	wait_status P state syncing 30
	"$PY" "$top_srcdir/tests/colo_sync_writer.py" "$P_URI" "$TEST_DIR/stop" 1 follow "$TAPCTL" \
		"$P_PID" "$P_MINOR" >"$TEST_DIR/w1.out" 2>&1 &
	W1=$!
	"$PY" "$top_srcdir/tests/colo_sync_writer.py" "$P_URI" "$TEST_DIR/stop" 2 random \
		>"$TEST_DIR/w2.out" 2>&1 &
	W2=$!
	wait "$spid" || rc=$?
	touch "$TEST_DIR/stop"
	wait "$W1" || fail "writer 1: $(cat "$TEST_DIR/w1.out")"
	wait "$W2" || fail "writer 2: $(cat "$TEST_DIR/w2.out")"
	[ "$rc" = 0 ] || fail "start primary sync=$mode: $(cat "$TEST_DIR/start.out")"
	n1=$(cat "$TEST_DIR/w1.out")
	n2=$(cat "$TEST_DIR/w2.out")
	echo "writers: $n1 writes following the copy, $n2 anywhere, during the sync"
	[ "$n1" -gt 0 ] && [ "$n2" -gt 0 ] || fail "the writers wrote nothing during the sync"
	expect_status P state running
	expect_status S state running
	expect_status P sync_total_bytes $((24 * MiB))
	expect_status P sync_done_bytes $((24 * MiB))
	checkpoint_both 2
	same "$TEST_DIR/s.img" "$TEST_DIR/p.img" \
		"sync=$mode: the Secondary's disk after the sync and the first checkpoint"
	colo_pair_destroy
}

sync_with_writers full 4M
# The smallest queue_limit, which the writers keep busy: the copy still goes on.
sync_with_writers diff 4M queue_limit=1M

step "sync=diff sends exactly the extents that differ (the last one short)"
# 16.5 MiB: 17 extents, the last 512 KiB.  Extents 0, 5 and 16 differ by one sector each.
make_image "$TEST_DIR/p.img" $((16 * MiB + MiB / 2)) 21
cp "$TEST_DIR/p.img" "$TEST_DIR/s.img"
for sector in 0 $((5 * 2048 + 100)) $((16 * 2048 + 1000)); do
	dd if=/dev/urandom of="$TEST_DIR/s.img" bs=512 seek=$sector count=1 conv=notrunc status=none
done
colo_pair "$TEST_DIR/p.img" "$TEST_DIR/s.img" sync=diff
expect_status P state running
expect_status P sync_total_bytes $((16 * MiB + MiB / 2))
expect_status P sync_done_bytes $((16 * MiB + MiB / 2))
expect_status P sync_sent_bytes $((2 * MiB + MiB / 2))
expect_status S sync_done_bytes $((2 * MiB + MiB / 2))
checkpoint_both 2
cmp "$TEST_DIR/p.img" "$TEST_DIR/s.img" || fail "sync=diff: the disks differ after the checkpoint"
colo_pair_destroy

step "sync=diff of identical disks sends nothing; the default is diff"
colo_pair_create "$TEST_DIR/p.img" "$TEST_DIR/s.img"
colo S start secondary || fail "start secondary"
colo P start primary || fail "start primary with the default sync"
grep -q "sync: diff copy of $((16 * MiB + MiB / 2)) bytes" "$TAPLOG" ||
	fail "the default start ran no diff sync"
expect_status P sync_total_bytes $((16 * MiB + MiB / 2))
expect_status P sync_sent_bytes 0
expect_status S state running
step "before the first checkpoint a Secondary failover is refused"
expect_error S 16 "tap-ctl: colo failover: the disk is inconsistent: no checkpoint since the Primary's copy; 'failover force' fails over anyway" failover
checkpoint_both 2
colo_pair_destroy

step "verify=1 with sync=full|diff is refused; verify=1 alone syncs nothing"
colo_pair_create "$TEST_DIR/p.img" "$TEST_DIR/s.img"
colo S start secondary || fail "start secondary"
expect_error P 22 "tap-ctl: colo start: verify=1 checks that the disks are identical, sync=diff copies them: choose one" start primary verify=1 sync=diff
expect_status P state idle
colo P start primary verify=1 || fail "start primary verify=1 on identical disks"
expect_status P sync_total_bytes 0
expect_status P state running
colo_pair_destroy

step "while syncing: checkpoint and failover refused, 'failover force' works and says so"
make_image "$TEST_DIR/p.img" 32M 31
make_image "$TEST_DIR/s.img" 32M 32
colo_pair_create "$TEST_DIR/p.img" "$TEST_DIR/s.img"
colo S start secondary || fail "start secondary"
# 64 KiB/s: the copy of 32 MiB cannot end during this test.
"$TAPCTL" colo -p "$P_PID" -m "$P_MINOR" start primary sync=full sync_rate=64K tls=none \
	>"$TEST_DIR/start.out" 2>&1 &
spid=$!
wait_status P state syncing 30
wait_status S state syncing 30
rc=0
err=$(colo P checkpoint 2>&1) || rc=$?
expect_eq "$rc" 16 "checkpoint while syncing: exit status (EBUSY)"
[[ "$err" =~ ^"tap-ctl: colo checkpoint: prepare_checkpoint: syncing: "([0-9]+)" of 33554432 bytes copied"$ ]] ||
	fail "checkpoint while syncing: got '$err'"
[ "${BASH_REMATCH[1]}" -lt 33554432 ] || fail "checkpoint while syncing: $err"
rc=0
err=$(colo S failover 2>&1) || rc=$?
expect_eq "$rc" 16 "failover while syncing: exit status (EBUSY)"
[[ "$err" =~ ^"tap-ctl: colo failover: the disk is inconsistent: the Primary's copy has not ended ("[0-9]+" bytes received); 'failover force' fails over anyway"$ ]] ||
	fail "failover while syncing: got '$err'"
expect_status S state syncing
out=$(colo S failover force) || fail "failover force: $out"
[[ "$out" =~ ^"failover forced: the disk is inconsistent: the Primary's copy has not ended ("[0-9]+" bytes received)"$ ]] ||
	fail "failover force: got '$out'"
expect_status S state failed-over
grep -q "failover forced: the disk is inconsistent" "$TAPLOG" || fail "the forced failover is not logged"
rc=0
wait "$spid" || rc=$?
[ "$rc" != 0 ] || fail "the Primary's start succeeded though the Secondary failed over"
echo "the Primary's start: $(cat "$TEST_DIR/start.out")"
colo_pair_destroy

step "the Primary gone during the copy: the Secondary is idle again, and a new start copies the rest"
make_image "$TEST_DIR/p.img" 16M 51
make_image "$TEST_DIR/s.img" 16M 52
colo_pair_create "$TEST_DIR/p.img" "$TEST_DIR/s.img"
colo S start secondary || fail "start secondary"
"$TAPCTL" colo -p "$P_PID" -m "$P_MINOR" start primary sync=full sync_rate=2M tls=none \
	>"$TEST_DIR/start.out" 2>&1 &
spid=$!
wait_status S sync_done_bytes $((2 * MiB)) 30
colo_destroy P
rc=0
wait "$spid" || rc=$?
[ "$rc" != 0 ] || fail "the start succeeded though its VBD was closed"
wait_status S state idle 30
expect_status S role none
# What the cut copy left: the extents that differ now are what the next diff must send.
differ=$("$PY" - "$TEST_DIR/p.img" "$TEST_DIR/s.img" <<'PYEOF'
import sys
a, b = open(sys.argv[1], "rb").read(), open(sys.argv[2], "rb").read()
print(sum(a[i:i + (1 << 20)] != b[i:i + (1 << 20)] for i in range(0, len(a), 1 << 20)))
PYEOF
)
[ "$differ" -lt 16 ] || fail "the cut copy copied nothing"
colo_vbd P "colo:127.0.0.1:$COLO_PORT:$TEST_DIR/p.img"
colo S start secondary || fail "start secondary again"
# Started again, the Secondary's disk still holds part of the copy: no failover.
expect_error S 16 "tap-ctl: colo failover: the disk is inconsistent: no checkpoint since the Primary's copy; 'failover force' fails over anyway" failover
colo P start primary sync=diff || fail "start primary sync=diff again"
expect_status P sync_sent_bytes $((differ * MiB))
echo "the second start sent the $differ extents the cut copy had not copied"
checkpoint_both 2
same "$TEST_DIR/s.img" "$TEST_DIR/p.img" "the Secondary's disk after a copy cut and resumed"

step "kill -9 of the Secondary: made again, it refuses a failover until its first checkpoint"
checkpoint_both 3
checkpoint_both 4 # the Primary knows checkpoint 3 complete on both sides
qio_cmds "$P_URI" -- "write -P 0x71 3M 64k" || fail "a write the Secondary applies: $QIO_OUT"
wait_applied
kill -9 "$S_PID"
wait_status P state broken 30
"$TAPCTL" destroy -p "$S_PID" -m "$S_MINOR" >/dev/null 2>&1 || true # tap-ctl forgets it
"$TAPCTL" free -m "$S_MINOR" >/dev/null 2>&1 || true
qio_cmds "$P_URI" -- "write -P 0x72 5M 64k" || fail "a write of the broken Primary: $QIO_OUT"
colo_vbd S "colo:127.0.0.1:$COLO_PORT:$TEST_DIR/s.img"
colo S start secondary || fail "start the restarted Secondary"
expect_error S 16 "tap-ctl: colo failover: the disk is inconsistent: no checkpoint since this VBD became a Secondary; 'failover force' fails over anyway" failover
expect_status S state connecting
# No pair identity: the Primary's resync gets no common checkpoint, a diff of the whole disk.
colo P start primary || fail "start the broken Primary again"
expect_status P sync_total_bytes $((16 * MiB))
expect_status P sync_sent_bytes $((1 * MiB)) # the write after the kill; 3M was applied
checkpoint_both 2
same "$TEST_DIR/s.img" "$TEST_DIR/p.img" "the restarted Secondary's disk after the first checkpoint"
# A cut in the new run resyncs from its own checkpoint 1, not from the last run's 3 (which
# this Secondary never reaches: a diff of the whole disk instead).
qio_cmds "$P_URI" -- "write -P 0x73 9M 64k" || fail "a write in epoch 2: $QIO_OUT"
wait_applied
for f in "dport = :$COLO_PORT" "sport = :$COLO_PORT"; do
	# shellcheck disable=SC2086
	ss -K -t $f >/dev/null 2>&1 || true
done
wait_status P state broken 30
wait_status S state broken 30
colo S start secondary || fail "start secondary again after the cut"
colo P start primary || fail "start primary again after the cut (resync)"
expect_status P sync_total_bytes $((1 * MiB))
checkpoint_both 3
same "$TEST_DIR/s.img" "$TEST_DIR/p.img" "the resync after a cut in the new run"
colo S failover || fail "failover after the first checkpoint"
colo_pair_destroy
echo PASS
