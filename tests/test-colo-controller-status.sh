#!/bin/bash
# colo-controller status does not take a dead tapdisk's xenstore nodes for its state
# (docs/colo-controller.md): real tapdisks, bound to the test xenstored, started through the
# controller; after a kill -9 of the Primary's tapdisk its nodes still say running and up, but
# status shows alive=no state=dead, names the dead tapdisk and exits 2.
source "$(dirname "$0")/functions.sh"
source "$(dirname "$0")/xenstore-functions.sh"
requires xenstore-write

CTL="$top_builddir/colo-controller"
[ -x "$CTL" ] || {
	echo "SKIP: $CTL is not built"
	exit 77
}
log_tapdisks xenstore
xsd_start

disk_dir() { echo "/local/domain/0/colo/$1/disks/51712"; }

# ctl ARGS...: sets RC, OUT and ERR.
ctl() {
	RC=0
	"$CTL" "$@" >"$TEST_DIR/ctl.out" 2>"$TEST_DIR/ctl.err" || RC=$?
	OUT=$(cat "$TEST_DIR/ctl.out")
	ERR=$(cat "$TEST_DIR/ctl.err")
}

make_image "$TEST_DIR/p.img" 16M 4
cp "$TEST_DIR/p.img" "$TEST_DIR/s.img"
colo_pair_create "$TEST_DIR/p.img" "$TEST_DIR/s.img"
xs_bind_disk P 1
xs_bind_disk S 2
ctl --primary 1 --secondary 2 --primary-args "timeout=1000 tls=none" --secondary-args "timeout=1000 tls=none" start
expect_eq "$RC/$ERR" "0/" "start through the controller"

step "both tapdisks run"
# The Secondary's nodes follow its Primary's connection within a tick; the controller's start
# returned with the Primary's result.
for _ in $(seq 400); do
	[ "$(xenstore-read "$(disk_dir 2)/state") $(xenstore-read "$(disk_dir 2)/link")" = "running up" ] && break
	sleep 0.05
done
ctl --primary 1 --secondary 2 status
expect_eq "$RC/$ERR" "0/" "status: exit status and stderr"
expect_eq "$OUT" 'primary 1: request="1 start primary timeout=1000 tls=none" checkpoint-threshold=-
primary 1 disk 51712: result="1 0 ok" alive=yes role=primary state=running link=up epoch=1 sent-bytes=0 buffer-bytes=0 last-error=""
secondary 2: request="1 start secondary timeout=1000 tls=none" checkpoint-threshold=-
secondary 2 disk 51712: result="1 0 ok" alive=yes role=secondary state=running link=up epoch=1 sent-bytes=0 buffer-bytes=0 last-error=""' \
	"status of a running pair"

step "the Primary's tapdisk killed: its nodes are stale, and status says so"
kill -9 "$P_PID"
wait_gone "$P_PID"
expect_eq "$(xenstore-read "$(disk_dir 1)/state")/$(xenstore-read "$(disk_dir 1)/link")" \
	"running/up" "the dead Primary's own nodes"
ctl --primary 1 --secondary 2 status
echo "    exit $RC: $ERR"
expect_eq "$RC" 2 "status with a dead tapdisk: exit status"
expect_eq "$ERR" "colo-controller: primary 1 disk 51712: tapdisk $P_PID is not running: its state nodes are stale" \
	"status with a dead tapdisk: stderr"
expect_eq "$(sed -n 2p "$TEST_DIR/ctl.out")" \
	'primary 1 disk 51712: result="1 0 ok" alive=no role=primary state=dead link=- epoch=1 sent-bytes=0 buffer-bytes=0 last-error=""' \
	"the dead Primary's line"
[[ $(sed -n 4p "$TEST_DIR/ctl.out") =~ ^"secondary 2 disk 51712: result=\"1 0 ok\" alive=yes role=secondary state=" ]] ||
	fail "the Secondary's line: $(sed -n 4p "$TEST_DIR/ctl.out")"
ctl --secondary 2 status
expect_eq "$RC/$ERR" "0/" "the Secondary alone: exit status and stderr"
colo_destroy S
echo "controller status of a dead tapdisk: ok"
