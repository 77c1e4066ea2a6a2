#!/bin/bash
# colo-controller protect against real tapdisks bound to the test xenstored: the Primary's
# start copies what the Secondary lacks (sync=full, bounded by sync_rate so that the copy
# outlasts --timeout several times: the controller waits while sync-progress moves), the
# Primary's VBD writes sync-progress and the sync-done event, then the first checkpoint makes
# the Secondary's disk the Primary's, byte for byte.
source "$(dirname "$0")/functions.sh"
source "$(dirname "$0")/xenstore-functions.sh"
requires xenstore-write
requires xenstore-read

CTL="$top_builddir/colo-controller"
[ -x "$CTL" ] || {
	echo "SKIP: $CTL is not built"
	exit 77
}
log_tapdisks xenstore
xsd_start

disk_dir() { echo "/local/domain/0/colo/$1/disks/51712"; }
MiB=$((1 << 20))

make_image "$TEST_DIR/p.img" 16M 5
make_image "$TEST_DIR/s.img" 16M 6
colo_pair_create "$TEST_DIR/p.img" "$TEST_DIR/s.img"
xs_bind_disk P 1
xs_bind_disk S 2

step "protect: 16 MiB at 4 MiB/s (about 4 s) with --timeout 1000"
rc=0
"$CTL" --primary 1 --secondary 2 --timeout 1000 --primary-args 'sync=full sync_rate=4M tls=none' \
	--secondary-args 'timeout=5000 tls=none' -v protect >"$TEST_DIR/ctl.out" 2>"$TEST_DIR/ctl.err" || rc=$?
cat "$TEST_DIR/ctl.err"
expect_eq "$rc" 0 "protect: exit status ($(cat "$TEST_DIR/ctl.out"))"
grep -q "sync-progress" "$TEST_DIR/ctl.err" || fail "protect did not follow sync-progress"
expect_eq "$(tail -n 1 "$TEST_DIR/ctl.out")" "protected: checkpoint 2 epoch=2" "protect's output"
expect_eq "$(xenstore-read "$(disk_dir 1)/sync-done")" "$((16 * MiB)) $((16 * MiB))" \
	"the Primary's sync-done"
progress=$(xenstore-read "$(disk_dir 1)/sync-progress")
[[ "$progress" =~ ^"$((16 * MiB)) $((16 * MiB)) $((16 * MiB)) "[0-9]+$ ]] ||
	fail "the Primary's sync-progress: '$progress'"
expect_eq "$(xenstore-read "$(disk_dir 1)/state")" running "the Primary's state"
expect_eq "$(xenstore-read "$(disk_dir 1)/epoch")" 2 "the Primary's epoch"
expect_status S epoch 2
same "$TEST_DIR/s.img" "$TEST_DIR/p.img" "the Secondary's disk after protect"

step "reprotect after a failover: domain 2 (failed over) Primary, domain 1 Secondary"
qio_cmds "$P_URI" -- "write -P 0x71 $((3 * MiB)) 64k" || fail "write to P: $QIO_OUT"
wait_status P inflight_bytes 0 10
qio_cmds "$S_URI" -- "write -P 0x72 $((9 * MiB)) 64k" || fail "write to S: $QIO_OUT"
"$CTL" --secondary 2 failover || fail "failover"
wait_status P state broken 10
qio_cmds "$S_URI" -- "write -P 0x73 $((12 * MiB)) 64k" || fail "write to S: $QIO_OUT"
NEW_PORT=$(free_port)
rc=0
"$CTL" --primary 2 --secondary 1 --primary-args 'tls=none' --secondary-args 'tls=none' \
	reprotect >"$TEST_DIR/ctl.out" 2>"$TEST_DIR/ctl.err" || rc=$?
expect_eq "$rc" 1 "reprotect without address=: exit status"
expect_eq "$(cat "$TEST_DIR/ctl.err")" "colo-controller: reprotect: --primary-args and --secondary-args must both name address=HOST:PORT, where the new Secondary listens: the roles swapped, the disks' names did not" \
	"reprotect without address="
rc=0
"$CTL" --primary 2 --secondary 1 --timeout 5000 --primary-args "address=127.0.0.1:$NEW_PORT tls=none" \
	--secondary-args "address=127.0.0.1:$NEW_PORT tls=none" -v reprotect \
	>"$TEST_DIR/ctl.out" 2>"$TEST_DIR/ctl.err" || rc=$?
cat "$TEST_DIR/ctl.err"
expect_eq "$rc" 0 "reprotect: exit status ($(cat "$TEST_DIR/ctl.out"))"
[[ "$(tail -n 1 "$TEST_DIR/ctl.out")" =~ ^"re-protected: checkpoint "[0-9]+" epoch=2"$ ]] ||
	fail "reprotect's output: $(cat "$TEST_DIR/ctl.out")"
# S: 9 (its VM's write, written back) and 12; P: 3, written after the last checkpoint.
expect_status S reprotect exact
expect_status S sync_total_bytes $((3 * MiB))
expect_eq "$(xenstore-read "$(disk_dir 2)/state")" running "the new Primary's state"
same "$TEST_DIR/s.img" "$TEST_DIR/p.img" "the disks after reprotect"
echo PASS
