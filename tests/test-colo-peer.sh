#!/bin/bash
# peer=ADDR on the Secondary: a Primary from any other address is refused before any of its
# data is read, with a clear error on both sides, and the Secondary keeps waiting for the
# right one.
. "$(dirname "$0")/functions.sh"
log_tapdisks
requires qemu-io

make_image "$TEST_DIR/p.img" 8M 7
cp "$TEST_DIR/p.img" "$TEST_DIR/s.img"
cp "$TEST_DIR/s.img" "$TEST_DIR/s.orig"
colo_pair_create "$TEST_DIR/p.img" "$TEST_DIR/s.img"

colo_s start secondary peer=127.0.0.2 || fail "start secondary"
out=$(colo_p start primary 2>&1) && fail "a Primary from 127.0.0.1 was accepted"
expect_eq "$out" "tap-ctl: colo start: the Secondary refused: address 127.0.0.1 is not this Secondary's Primary" "Primary's error"
st=$(colo_s status)
expect_eq "$(json_field "$st" state)" "connecting" "Secondary state after the refusal"
expect_eq "$(json_field "$st" link)" "listening" "Secondary link after the refusal"
expect_eq "$(json_field "$st" last_error)" "refused a connection from 127.0.0.1: only 127.0.0.2 may be the Primary" "Secondary's error"
expect_eq "$(json_field "$(colo_p status)" state)" "idle" "Primary state after the refusal"

# The refused Primary is still a plain disk: its writes are local only.
qemu-io -f raw "$P_URI" -c 'write -P 0x5a 0 64k' >/dev/null || fail "write on the idle Primary"
cmp -s "$TEST_DIR/s.img" "$TEST_DIR/s.orig" || fail "the Secondary's disk changed"
echo "refused: ok"

# A Secondary that names 127.0.0.1 takes it (a fresh pair: the disks are equal again).
colo_pair_destroy
cp "$TEST_DIR/p.img" "$TEST_DIR/s2.img"
colo_pair_create "$TEST_DIR/p.img" "$TEST_DIR/s2.img"
colo_s start secondary peer=127.0.0.1 || fail "start secondary with peer=127.0.0.1"
colo_p start primary || fail "start primary from the allowed address"
qemu-io -f raw "$P_URI" -c 'write -P 0x6b 1M 64k' >/dev/null || fail "write"
expect_eq "$(colo_p checkpoint)" "epoch=2" "Primary checkpoint"
expect_eq "$(colo_s checkpoint)" "epoch=2" "Secondary checkpoint"
cmp "$TEST_DIR/p.img" "$TEST_DIR/s2.img" || fail "disks differ after the checkpoint"
echo "allowed: ok"
