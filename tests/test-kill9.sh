#!/usr/bin/env bash
# kill -9 of one tapdisk: the other keeps serving; the dead one's minor and sockets are
# recognised as stale and reclaimed by tap-ctl list and allocate (its marker is unlocked but
# names it), while a minor in use cannot be freed (EAGAIN, as blktap3) and a minor
# allocated but not attached yet stays.
source "$(dirname "$0")/functions.sh"
requires qemu-io

a=$TEST_DIR/a.img
b=$TEST_DIR/b.img
c=$TEST_DIR/c.img
make_image "$a" 8M
make_image "$b" 8M
make_image "$c" 8M
vbd_create "$a"
pid_a=$VBD_PID minor_a=$VBD_MINOR
qio -c 'write -P 0x61 0 1M' >/dev/null
vbd_create "$b"
pid_b=$VBD_PID minor_b=$VBD_MINOR uri_b=$VBD_URI

step "a minor in use cannot be freed"
rc=0
err=$("$TAPCTL" free -m "$minor_b" 2>&1) || rc=$?
expect_eq "$rc" 11 "exit status of free of a minor in use (EAGAIN)"
expect_eq "$err" "tap-ctl: free: minor $minor_b is in use by tapdisk $pid_b" "free of a minor in use"
[ -e "$BLKTAP_CONTROL_DIR/tapdisk/tapdisk-$minor_b" ] || fail "free removed the marker of a minor in use"

step "kill -9: list reclaims the dead tapdisk's minor and sockets"
kill -9 "$pid_a"
wait_gone "$pid_a"
left=("$BLKTAP_CONTROL_DIR/ctl$pid_a" "$BLKTAP_CONTROL_DIR/nbd$pid_a.$minor_a"
	"$BLKTAP_CONTROL_DIR/tapdisk/tapdisk-$minor_a")
for f in "${left[@]}"; do
	[ -e "$f" ] || fail "kill -9 did not leave $f behind: the test proves nothing"
done
list=$(timeout 60 "$TAPCTL" list) || fail "tap-ctl list failed after kill -9"
expect_eq "$list" "pid=$pid_b minor=$minor_b state=0 args=aio:$b" "list after kill -9"
for f in "${left[@]}"; do
	[ ! -e "$f" ] || fail "list left $f of the dead tapdisk"
done
VBD_URI=$uri_b qio -c 'write -P 0x62 0 1M' -c 'read -P 0x62 0 1M' >/dev/null ||
	fail "surviving tapdisk stopped serving"
# The write acknowledged by the killed tapdisk before the kill is on its disk.
qemu-io -f raw "$a" -c 'read -P 0x61 0 1M' >/dev/null || fail "acknowledged write lost by kill -9"

step "the next create takes the dead tapdisk's minor"
vbd_create "$a"
expect_eq "$VBD_MINOR" "$minor_a" "minor of the next create"
qio -c 'read -P 0x61 0 1M' >/dev/null || fail "reopened image"
vbd_destroy "$VBD_PID" "$VBD_MINOR"

step "kill -9: allocate reclaims too; an allocated minor not attached yet is kept"
dev=$("$TAPCTL" allocate) || fail allocate
kept=${dev##*-}
vbd_create "$c"
pid_c=$VBD_PID minor_c=$VBD_MINOR
kill -9 "$pid_c"
wait_gone "$pid_c"
dev=$("$TAPCTL" allocate) || fail "allocate after kill -9"
expect_eq "${dev##*-}" "$minor_c" "allocate takes the dead tapdisk's minor"
[ ! -e "$BLKTAP_CONTROL_DIR/ctl$pid_c" ] || fail "allocate left ctl$pid_c of the dead tapdisk"
expect_eq "$("$TAPCTL" list -m "$kept")" "minor=$kept" "an allocated minor without a tapdisk"
"$TAPCTL" free -m "$kept" || fail "free of the allocated minor"
"$TAPCTL" free -m "$minor_c" || fail "free of the reallocated minor"

vbd_destroy "$pid_b" "$minor_b"
expect_eq "$("$TAPCTL" list)" "" "list at the end"
echo "PASS: kill -9: the other tapdisk serves on; its minor and sockets are reclaimed by list and allocate; free refuses a minor in use"
