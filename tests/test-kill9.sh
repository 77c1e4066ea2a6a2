#!/usr/bin/env bash
# kill -9 of one tapdisk: tap-ctl list stays sane, the other tapdisk keeps serving,
# and the dead one's minor can be freed and used again.
source "$(dirname "$0")/functions.sh"
requires qemu-io

a=$TEST_DIR/a.img
b=$TEST_DIR/b.img
make_image "$a" 8M
make_image "$b" 8M
vbd_create "$a"
pid_a=$VBD_PID minor_a=$VBD_MINOR
qio -c 'write -P 0x61 0 1M' >/dev/null
vbd_create "$b"
pid_b=$VBD_PID minor_b=$VBD_MINOR

kill -9 "$pid_a"
wait_gone "$pid_a"

list=$(timeout 10 "$TAPCTL" list) || fail "tap-ctl list failed after kill -9"
grep -q "^pid=$pid_b minor=$minor_b state=0 args=aio:$b\$" <<<"$list" || fail "live VBD missing from: $list"
if grep -q "pid=$pid_a " <<<"$list"; then fail "dead tapdisk listed: $list"; fi

qio -c 'write -P 0x62 0 1M' -c 'read -P 0x62 0 1M' >/dev/null || fail "surviving tapdisk stopped serving"
# The write acknowledged by the killed tapdisk before the kill is on its disk.
qemu-io -f raw "$a" -c 'read -P 0x61 0 1M' >/dev/null || fail "acknowledged write lost by kill -9"

"$TAPCTL" free -m "$minor_a" || fail "free of the dead tapdisk's minor"
vbd_create "$a"
qio -c 'read -P 0x61 0 1M' >/dev/null || fail "reopened image"
vbd_destroy "$VBD_PID" "$VBD_MINOR"
vbd_destroy "$pid_b" "$minor_b"
echo "PASS: kill -9 leaves tap-ctl list sane and the other tapdisk serving"
