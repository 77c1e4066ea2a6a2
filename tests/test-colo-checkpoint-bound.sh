#!/bin/bash
# No COLO command waits forever or acts later for nobody (docs/colo.md, "Bounds and
# cancelling"):
#  - a Secondary's checkpoint with no marker on its way ends after `timeout` (ETIMEDOUT) and
#    changes nothing;
#  - status names the command that waits (`pending`); a second checkpoint meanwhile is refused
#    (EBUSY) and says what the first waits for;
#  - a caller that hangs up (tap-ctl killed) withdraws its checkpoint: the Primary's next
#    marker is not taken by it (the buffer stays, the epoch too), and the next checkpoint in
#    the right order succeeds at once;
#  - a Primary's checkpoint that the Secondary does not acknowledge (it holds the epoch for its
#    own checkpoint) ends after `timeout` (ETIMEDOUT);
#  - guest writes held for queue space by a Secondary that acknowledges nothing (it holds the
#    epoch, and its checkpoint never comes) wait `timeout` at most: the link goes, the writes
#    complete on the Primary's disk, and a resync protects it again;
#  - a Primary's start whose caller hangs up while connecting leaves the VBD idle.
. "$(dirname "$0")/functions.sh"
log_tapdisks colo
requires qemu-io

now_ms() { echo $(($(date +%s%N) / 1000000)); }

# pending NAME: the status's pending field ("<absent>" if it has none).
pending() {
	"$PY" -c 'import json, sys; print(json.loads(sys.argv[1]).get("pending", "<absent>"))' \
		"$(colo "$1" status)"
}

# wait_pending NAME VALUE: polls until pending is VALUE (up to 20 s).
wait_pending() {
	for _ in $(seq 400); do
		[ "$(pending "$1")" = "$2" ] && return 0
		sleep 0.05
	done
	fail "$1: pending did not become '$2' within 20 s: $(colo "$1" status)"
}

# bounded_colo NAME COMMAND...: tap-ctl colo, killed after 60 s; sets RC and ERR.
bounded_colo() {
	local pid=${1}_PID minor=${1}_MINOR
	shift
	RC=0
	ERR=$(timeout 60 "$TAPCTL" colo -p "${!pid}" -m "${!minor}" "$@" 2>&1 >/dev/null) || RC=$?
}

pimg=$TEST_DIR/p.img
simg=$TEST_DIR/s.img
make_image "$pimg" 64M 1
cp "$pimg" "$simg"

step "a Secondary's checkpoint with no Primary ends after timeout, and changes nothing"
colo_pair_create "$pimg" "$simg"
colo S start secondary timeout=1000 || fail "start secondary"
t0=$(now_ms)
bounded_colo S checkpoint
elapsed=$(($(now_ms) - t0))
echo "    exit $RC after $elapsed ms: $ERR"
expect_eq "$RC" 110 "exit status of the unanswered checkpoint"
expect_eq "$ERR" "tap-ctl: colo checkpoint: do_checkpoint: the end of epoch 1 did not come within 1000 ms; nothing changed" \
	"the unanswered checkpoint's line"
[ "$elapsed" -ge 950 ] || fail "the checkpoint ended after $elapsed ms, before its timeout"
expect_status S epoch 1
expect_status S pending ""
expect_status S state connecting

step "status shows a waiting checkpoint; a second one is refused"
# A long timeout: the checkpoints below wait for the Primary's markers, not for the bound.
colo_destroy S
colo_destroy P
colo_pair "$pimg" "$simg" timeout=60000
qemu-io -f raw "$P_URI" -c 'write -P 0x11 0 64k' >/dev/null || fail "write on the Primary"
"$TAPCTL" colo -p "$S_PID" -m "$S_MINOR" checkpoint >"$TEST_DIR/ck1.out" 2>&1 &
ck1=$!
wait_pending S checkpoint
bounded_colo S checkpoint
expect_eq "$RC/$ERR" "16/tap-ctl: colo checkpoint: do_checkpoint: a checkpoint is in progress (waiting for the end of epoch 1)" \
	"a second checkpoint while one waits"
expect_eq "$(colo P checkpoint)" "epoch=2" "the Primary's checkpoint"
wait "$ck1" || fail "the waiting checkpoint: $(cat "$TEST_DIR/ck1.out")"
expect_eq "$(cat "$TEST_DIR/ck1.out")" "epoch=2" "the waiting checkpoint's answer"
expect_status S pending ""
expect_status S buffer_blocks 0

step "a checkpoint whose caller hangs up is withdrawn and takes no marker"
"$TAPCTL" colo -p "$S_PID" -m "$S_MINOR" checkpoint >/dev/null 2>&1 &
ck2=$!
wait_pending S checkpoint
kill -9 "$ck2"
wait "$ck2" 2>/dev/null || true
wait_pending S ""
expect_status S epoch 2
expect_eq "$(colo_field S last_error)" \
	"do_checkpoint: cancelled: the caller went away before the end of epoch 2; nothing changed" \
	"the Secondary's last_error after the hangup"
# The Primary's next checkpoint: its marker must wait for a checkpoint asked for later.
qemu-io -f raw "$P_URI" -c 'write -P 0x22 1M 64k' >/dev/null || fail "write on the Primary"
expect_eq "$(colo P checkpoint)" "epoch=3" "the Primary's checkpoint after the hangup"
sleep 0.5
expect_status S epoch 2
[ "$(colo_field S buffer_blocks)" -gt 0 ] || fail "the withdrawn checkpoint dropped the buffer: $(colo S status)"
t0=$(now_ms)
bounded_colo S checkpoint
expect_eq "$RC/$ERR" "0/" "the Secondary's checkpoint in order"
elapsed=$(($(now_ms) - t0))
[ "$elapsed" -lt 10000 ] || fail "the ordered checkpoint took $elapsed ms"
expect_status S epoch 3
expect_status S buffer_blocks 0
checkpoint_both 4
same "$pimg" "$simg" "both disks after the checkpoints"
colo_pair_destroy

step "a Primary's checkpoint the Secondary does not acknowledge ends after timeout"
# Two Primary checkpoints without the Secondary's between: the Secondary holds the second
# epoch's frames, marker included, until its own checkpoint, and heartbeats meanwhile.
colo_pair "$pimg" "$simg" timeout=1000
qemu-io -f raw "$P_URI" -c 'write -P 0x41 0 64k' >/dev/null || fail "write on the Primary"
expect_eq "$(colo P checkpoint)" "epoch=2" "the Primary's first checkpoint"
qemu-io -f raw "$P_URI" -c 'write -P 0x42 2M 64k' >/dev/null || fail "write on the Primary"
t0=$(now_ms)
bounded_colo P checkpoint
elapsed=$(($(now_ms) - t0))
echo "    exit $RC after $elapsed ms: $ERR"
expect_eq "$RC/$ERR" "110/tap-ctl: colo checkpoint: prepare_checkpoint: no acknowledgement from the Secondary for 1000 ms (it holds the next epoch until its own checkpoint); the marker of epoch 2 stays sent" \
	"the unacknowledged Primary checkpoint"
[ "$elapsed" -ge 950 ] || fail "the Primary's checkpoint ended after $elapsed ms, before its timeout"
expect_status P pending ""
expect_status P epoch 3
expect_status P state running
# The Secondary takes both markers, one checkpoint each; then both sides go on in step.
expect_eq "$(colo S checkpoint)" "epoch=2" "the Secondary's first checkpoint"
expect_eq "$(colo S checkpoint)" "epoch=3" "the Secondary's second checkpoint"
checkpoint_both 4
same "$pimg" "$simg" "both disks after the timed-out checkpoint"
colo_pair_destroy

step "guest writes held by a Secondary that holds the epoch wait timeout at most"
# The Primary's checkpoint without the Secondary's (a controller that died between the two):
# the Secondary holds every later frame, so the queue fills and the guest's writes wait on it.
colo_pair "$pimg" "$simg" timeout=2000 queue_limit=1M
expect_eq "$(colo P checkpoint)" "epoch=2" "the Primary's checkpoint"
t0=$(now_ms)
RC=0
OUT=$(timeout 60 qemu-io -f raw "$P_URI" -c 'write -P 0x51 8M 512k' -c 'write -P 0x52 9M 512k' \
	-c 'write -P 0x53 10M 512k' -c 'write -P 0x54 11M 512k' 2>&1) || RC=$?
elapsed=$(($(now_ms) - t0))
echo "    the guest's 4 writes of 512 KiB: exit $RC after $elapsed ms"
expect_eq "$RC" 0 "the guest's writes behind a full queue ($OUT)"
[ "$elapsed" -ge 1900 ] || fail "the writes ended after $elapsed ms, before the timeout"
expect_status P state broken
expect_status P link lost
expect_eq "$(colo_field P last_error)" "replication link to 127.0.0.1:$COLO_PORT lost: the Secondary acknowledged nothing for 2000 ms while guest writes waited for queue space (1048576 bytes unacknowledged, limit 1048576): it holds the next epoch until its own checkpoint, or cannot apply" \
	"the Primary's last_error"
for i in 1 2 3 4; do
	qio_cmds "$P_URI" -- "read -P 0x5$i $((7 + i))M 512k" && ! grep -qi fail <<<"$QIO_OUT" ||
		fail "read back on the Primary: $QIO_OUT"
done
# A resync from the last checkpoint both completed (1: the Secondary never took 2) copies
# what the Secondary lacks; the first checkpoint, epoch 2 again, makes both disks equal.
wait_status S state broken 30
colo S start secondary timeout=2000 queue_limit=1M || fail "start secondary again"
colo P start primary timeout=2000 queue_limit=1M || fail "start primary again (resync)"
checkpoint_both 2
same "$pimg" "$simg" "both disks after the resync"
colo_pair_destroy

step "a Primary's start whose caller hangs up while connecting leaves it idle"
COLO_PORT=$(free_port)
colo_vbd P "colo:127.0.0.1:$COLO_PORT:$pimg"
"$TAPCTL" colo -p "$P_PID" -m "$P_MINOR" start primary connect_timeout=600000 tls=none >/dev/null 2>&1 &
st=$!
wait_pending P start
expect_status P state connecting
kill -9 "$st"
wait "$st" 2>/dev/null || true
wait_pending P ""
expect_status P state idle
expect_status P role none
expect_status P link none
expect_eq "$(colo_field P last_error)" "start: cancelled: the caller went away before the handshake" \
	"the Primary's last_error after the hangup"
colo_destroy P
echo "checkpoint bounds and hangups: ok"
