#!/bin/bash
# verify=1 reads both whole disks (in tapdisk's loop) for the checksum comparison, a slice per
# tick.  However long that takes, neither side may take the other's silence meanwhile for a
# lost link: the loop goes on serving the link between slices.
#
# The proof does not race the scheduler.  The timeout is generous (2 s), and the Secondary's
# disk is made slow by construction: a file served by nbdfuse from nbdkit's rate filter, so
# its verify takes at least (size - burst) / rate = 6 s, three timeouts, whatever the load.
# A verify that held the loop for its whole run would leave the link silent for all of it and
# fail the start with "nothing heard for ... ms"; one that yields between slices starts fine.
. "$(dirname "$0")/functions.sh"
log_tapdisks
requires qemu-io
requires nbdkit
requires nbdfuse
[ -c /dev/fuse ] && [ -w /dev/fuse ] || { echo "SKIP: /dev/fuse is not usable"; exit 77; }

TIMEOUT_MS=2000
SIZE_MB=256
# 32 MiB/s, with nbdkit's default burst of 2 s (64 MiB): 192 MiB at least 6 s, and a 1 MiB
# slice holds the loop about 31 ms.
RATE_BITS=$((32 * 8))M
MIN_VERIFY_MS=$(((SIZE_MB - 64) * 1000 / 32))

step "the Secondary's disk: $SIZE_MB MiB read at most at 32 MiB/s"
mnt=$TEST_DIR/mnt
mkdir "$mnt"
echo "$RATE_BITS" >"$TEST_DIR/rate"
nbdfuse "$mnt/s.img" [ nbdkit --filter=rate memory "${SIZE_MB}M" rate="$RATE_BITS" \
	rate-file="$TEST_DIR/rate" ] 2>"$TEST_DIR/nbdfuse.log" &
FUSE_PID=$!
# Run before functions.sh's cleanup kills the tapdisks: one may still hold the disk open.
unmount() {
	local sock
	for sock in "$BLKTAP_CONTROL_DIR"/ctl*; do
		[ -S "$sock" ] && kill -9 "${sock##*/ctl}" 2>/dev/null
	done
	for _ in $(seq 100); do
		umount "$mnt" 2>/dev/null && break
		sleep 0.1
	done
	kill "$FUSE_PID" 2>/dev/null
	wait "$FUSE_PID" 2>/dev/null
}
cleanup_fn unmount
for _ in $(seq 300); do
	[ -f "$mnt/s.img" ] && break
	kill -0 "$FUSE_PID" 2>/dev/null || break
	sleep 0.1
done
if [ ! -f "$mnt/s.img" ]; then
	echo "SKIP: nbdfuse could not mount: $(tail -n 3 "$TEST_DIR/nbdfuse.log")"
	exit 77
fi
expect_eq "$(stat -c %s "$mnt/s.img")" $((SIZE_MB << 20)) "the Secondary's disk size"
truncate -s "${SIZE_MB}M" "$TEST_DIR/p.img"

step "start with verify=1 timeout=$TIMEOUT_MS: done once the Secondary's slow verify matched"
start=$(date +%s%N)
colo_pair "$TEST_DIR/p.img" "$mnt/s.img" verify=1 timeout=$TIMEOUT_MS
ms=$((($(date +%s%N) - start) / 1000000))
echo "start with verify=1 took $ms ms (timeout $TIMEOUT_MS ms, at least $MIN_VERIFY_MS ms by the rate)"
# The rate guarantees this; a failure means the disk was not the slow one and proves nothing.
[ "$ms" -ge "$MIN_VERIFY_MS" ] || fail "the verify took $ms ms, less than $MIN_VERIFY_MS ms"
expect_status P state running
expect_status S state running
expect_status P link up
expect_status S link up
expect_status S last_error ""

step "replication works after it"
echo 2000M >"$TEST_DIR/rate" # the rate filter rereads it: the checks below need no limit
qemu-io -f raw "$P_URI" -c 'write -P 0x42 200M 1M' >/dev/null || fail "primary write"
expect_eq "$(colo_p checkpoint)" "epoch=2" "Primary checkpoint"
expect_eq "$(colo_s checkpoint)" "epoch=2" "Secondary checkpoint"
cmp "$TEST_DIR/p.img" "$mnt/s.img" || fail "disks differ after the checkpoint"
colo_pair_destroy
echo "verify over a slow disk with the link up: ok"
