#!/bin/bash
# Each failure is logged once, where it happens: a failed disk read (by the aio driver, not
# again by the VBD layer), a refused colo command from tap-ctl and from xenstore (by the colo
# driver, not again by the control plane or the xenstore binding), and a spill file that
# cannot be created (by the colo driver, not again by the disk buffer).  The caller still
# gets the driver's sentence.
source "$(dirname "$0")/functions.sh"
source "$(dirname "$0")/xenstore-functions.sh"
requires qemu-io
requires xenstore-write

log_tapdisks
xsd_start # before the tapdisks, which find it through XENSTORED_PATH

# expect_logged_once PATTERN WHAT: exactly one line of tapdisk's log contains PATTERN.
expect_logged_once() {
	local n
	n=$(grep -c -- "$1" "$TAPLOG" || true)
	[ "$n" = 1 ] || fail "$2: '$1' logged $n times, expected once:
$(grep -- "$1" "$TAPLOG")"
}

step "a read past the end of a file that shrank under the VBD"
img=$TEST_DIR/disk.img
make_image "$img" 1M
vbd_create "$img"
truncate -s 4096 "$img"
if out=$(qemu-io -f raw "$VBD_URI" -c "read 512k 4k" 2>&1) && ! grep -qi error <<<"$out"; then
	fail "the read past the end succeeded: $out"
fi
grep -q "Input/output error" <<<"$out" || fail "the read failed with another error: $out"
expect_logged_once "sector 1024" "a failed read"
vbd_destroy "$VBD_PID" "$VBD_MINOR"

step "a colo command refused by the driver, from tap-ctl"
make_image "$TEST_DIR/c.img" 1M
colo_vbd C "colo:127.0.0.1:$(free_port):$TEST_DIR/c.img"
rc=0
out=$(colo C stop 2>&1) || rc=$?
expect_eq "$rc" 22 "stop before start: exit status"
expect_eq "$out" "tap-ctl: colo stop: replication is not started" "stop before start"
expect_logged_once "replication is not started" "a refused stop"

step "a spill file that cannot be created, named once"
rc=0
out=$(colo C start secondary "spill=$TEST_DIR/no/such/dir/x" 2>&1) || rc=$?
expect_eq "$rc" 2 "start with a spill file in a missing directory: exit status"
expect_eq "$out" "tap-ctl: colo start: spill=$TEST_DIR/no/such/dir/x: cannot create the file (No such file or directory)" \
	"start with a spill file in a missing directory"
expect_logged_once "no/such/dir/x: cannot create" "a spill file that cannot be created"

step "the same from xenstore"
dir=/local/domain/0/colo/1/disks/51712
xenstore-write "$dir/params" "colo:x" "$dir/pid" "$C_PID" "$dir/minor" "$C_MINOR" \
	"$dir/backend" "backend/vbd3/1/51712" || fail "writing the disk's nodes"
colo C xenstore "$dir" || fail "binding the disk to $dir"
xenstore-write /local/domain/0/colo/1/request "1 failover" || fail "writing the request"
for _ in $(seq 1000); do
	res=$(xenstore-read "$dir/result" 2>/dev/null || true)
	[ -z "$res" ] || break
	sleep 0.02
done
expect_eq "$res" "1 22 failover: replication is not started" "failover before start, in xenstore"
expect_logged_once "failover: replication is not started" "a refused failover from xenstore"
colo_destroy C
echo "PASS: a failed read, refused colo commands and a bad spill file are each logged once"
