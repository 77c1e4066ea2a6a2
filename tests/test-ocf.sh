#!/bin/bash
# ocf:blktap-colo:colo: ocf-tester's checks, then the agent's exit codes through a replicated
# pair on two simulated nodes (a and b: their own image, role files and loopback address):
# first start and promotion, a checkpoint, kill -9 of the Primary's tapdisk (a failed
# promoted instance, 9), promotion of the Secondary (a failover: its disk is exactly the last
# checkpoint), re-protect once a's instance is back (the disks equal after the first
# checkpoint), demote and stop.
source "$(dirname "$0")/functions.sh"
requires ocf-tester
requires qemu-io
AGENT=$top_srcdir/ocf/colo
[ -r /usr/lib/ocf/lib/heartbeat/ocf-shellfuncs ] || { echo "SKIP: no ocf-shellfuncs"; exit 77; }

step "ocf-tester"
make_image "$TEST_DIR/t.img" 1M
out=$(ocf-tester -n colo-t -o image="$TEST_DIR/t.img" \
	-o "addresses=$(uname -n)=127.0.0.1 peer=127.0.0.2" -o port="$(free_port)" \
	-o connect_timeout=500 -o tap_ctl="$TAPCTL" -o control_dir="$BLKTAP_CONTROL_DIR" \
	-o tapdisk="$TAPDISK" -o primary_options=tls=none -o secondary_options=tls=none \
	"$AGENT" 2>&1) || fail "ocf-tester: $out"
expect_eq "$(tail -n 1 <<<"$out")" "$AGENT passed all tests" "ocf-tester's verdict"

PORT=$(free_port)
export OCF_ROOT=/usr/lib/ocf OCF_RESOURCE_INSTANCE=disk OCF_RESKEY_port=$PORT \
	OCF_RESKEY_addresses="a=127.0.0.1 b=127.0.0.2" OCF_RESKEY_connect_timeout=20000 \
	OCF_RESKEY_tap_ctl=$TAPCTL OCF_RESKEY_control_dir=$BLKTAP_CONTROL_DIR \
	OCF_RESKEY_tapdisk=$TAPDISK \
	OCF_RESKEY_primary_options=tls=none OCF_RESKEY_secondary_options=tls=none
make_image "$TEST_DIR/a.img" 4M 7
cp "$TEST_DIR/a.img" "$TEST_DIR/b.img"
mkdir -p "$TEST_DIR/a.rsc" "$TEST_DIR/b.rsc"

# ra NODE ACTION [VAR=value...]: the agent's action on NODE; sets RC and ERR (stderr).
ra() {
	local node=$1 action=$2
	shift 2
	RC=0
	ERR=$(env HA_RSCTMP="$TEST_DIR/$node.rsc" OCF_RESKEY_CRM_meta_on_node="$node" \
		OCF_RESKEY_image="$TEST_DIR/$node.img" OCF_RESKEY_dirty_log="$TEST_DIR/$node.dlog" \
		"$@" "$AGENT" "$action" 2>&1 >/dev/null) ||
		RC=$?
}

# expect_rc NODE ACTION RC WHAT [VAR=value...]
expect_rc() {
	local node=$1 action=$2 rc=$3 what=$4
	shift 4
	ra "$node" "$action" "$@"
	[ "$RC" = "$rc" ] || fail "$what: $action on $node exited $RC, expected $rc: $ERR"
}

# vbd_of NODE: the pid and minor of NODE's VBD into N_PID and N_MINOR.
vbd_of() {
	local line
	line=$("$TAPCTL" list -t colo | grep -F ":$TEST_DIR/$1.img") || fail "no VBD on $1"
	N_PID=$(sed -n 's/^pid=\([0-9]*\) .*/\1/p' <<<"$line")
	N_MINOR=$(sed -n 's/.* minor=\([0-9]*\) .*/\1/p' <<<"$line")
}

# field NODE KEY
field() {
	vbd_of "$1"
	json_field "$("$TAPCTL" colo -p "$N_PID" -m "$N_MINOR" status)" "$2"
}

step "validate-all"
expect_rc a validate-all 0 "a valid configuration"
expect_rc a validate-all 6 "a bad port" OCF_RESKEY_port=70000
expect_eq "$ERR" "ocf-exit-reason:port 70000 is not in 1..65535" "a bad port"
expect_rc a validate-all 6 "a relative dirty_log" OCF_RESKEY_dirty_log=a.dlog
expect_eq "$ERR" "ocf-exit-reason:dirty_log 'a.dlog' is not an absolute path" "a relative dirty_log"
expect_rc c validate-all 6 "a node without an address"
expect_eq "$ERR" "ocf-exit-reason:addresses 'a=127.0.0.1 b=127.0.0.2' has no address for this node, c" \
	"a node without an address"

step "probe, start: two Secondaries, listening"
expect_rc a monitor 7 "probe of a" OCF_RESKEY_CRM_meta_interval=0
expect_rc b monitor 7 "probe of b" OCF_RESKEY_CRM_meta_interval=0
expect_rc a start 0 "start a"
expect_rc b start 0 "start b"
expect_rc a monitor 0 "a started"
expect_rc b monitor 0 "b started"
expect_eq "$(field b state)/$(field b link)" "connecting/listening" "b's Secondary"

step "promote a: the first Primary connects to b's Secondary"
expect_rc a promote 0 "promote a"
expect_rc a monitor 8 "a promoted"
expect_rc b monitor 0 "b unpromoted"
expect_eq "$(field a role)/$(field a state)" "primary/running" "a after promotion"
expect_eq "$(field b state)" "running" "b after a's promotion"

step "a checkpoint, then a write after it, then kill -9 of a's tapdisk"
vbd_of a
A_URI="nbd+unix:///?socket=$BLKTAP_CONTROL_DIR/nbd$N_PID.$N_MINOR"
A_PID=$N_PID A_MINOR=$N_MINOR
qio_cmds "$A_URI" -- "write -P 0x5a 1M 64k" || fail "write before the checkpoint: $QIO_OUT"
out=$("$TAPCTL" colo -p "$A_PID" -m "$A_MINOR" checkpoint) || fail "a's checkpoint"
epoch=${out#epoch=}
vbd_of b
out=$("$TAPCTL" colo -p "$N_PID" -m "$N_MINOR" checkpoint) || fail "b's checkpoint"
expect_eq "$out" "epoch=$epoch" "b's checkpoint"
cp "$TEST_DIR/a.img" "$TEST_DIR/checkpoint.model"
qio_cmds "$A_URI" -- "write -P 0xa5 2M 64k" || fail "write after the checkpoint: $QIO_OUT"
for _ in $(seq 200); do [ "$(field a inflight_bytes)" = 0 ] && break; sleep 0.05; done
kill -9 "$A_PID"
wait_gone "$A_PID"
expect_rc a monitor 9 "a's tapdisk killed"
expect_eq "$ERR" "ocf-exit-reason:no colo VBD on $TEST_DIR/a.img: its tapdisk is gone" "a's failure"
for _ in $(seq 600); do [ "$(field b state)" = broken ] && break; sleep 0.05; done
expect_eq "$(field b state)" broken "b after a's death"
expect_rc b monitor 0 "b, its link lost, keeps its checkpoint"

step "promote b: a failover to the last checkpoint"
expect_rc b promote 0 "promote b"
expect_rc b monitor 8 "b promoted"
expect_eq "$(field b state)" failed-over "b after promotion"
same "$TEST_DIR/b.img" "$TEST_DIR/checkpoint.model" "b's disk after the failover"

step "a comes back: b re-protects toward it on the same VBD"
vbd_of b
qio_cmds "nbd+unix:///?socket=$BLKTAP_CONTROL_DIR/nbd$N_PID.$N_MINOR" -- "write -P 0x3c 3M 64k" ||
	fail "write to b after the failover: $QIO_OUT"
expect_rc a stop 0 "stop of the failed a"
expect_rc a monitor 7 "a stopped"
expect_rc a start 0 "start a again"
expect_rc b notify 0 "b told of a's start" OCF_RESKEY_CRM_meta_notify_type=post \
	OCF_RESKEY_CRM_meta_notify_operation=start OCF_RESKEY_CRM_meta_notify_start_uname=a
grep -qF "re-protected after the failover" <<<"$ERR" || fail "b's notify did not re-protect: $ERR"
# a's instance read its dirty log (1M and 2M, written since its start); b wrote back 2M (the
# originals) and wrote 3M: exactly those three extents are copied.
expect_eq "$(field b role)/$(field b state)/$(field b reprotect)" "primary/running/exact" "b after the notify"
expect_eq "$(field b sync_total_bytes)" $((3 << 20)) "the bytes b's re-protect copied"
expect_rc b monitor 8 "b, re-protected, promoted"
expect_rc a monitor 0 "a, its Secondary"
vbd_of b
out=$("$TAPCTL" colo -p "$N_PID" -m "$N_MINOR" checkpoint) || fail "b's checkpoint"
epoch=${out#epoch=}
vbd_of a
out=$("$TAPCTL" colo -p "$N_PID" -m "$N_MINOR" checkpoint) || fail "a's checkpoint"
expect_eq "$out" "epoch=$epoch" "a's checkpoint"
same "$TEST_DIR/a.img" "$TEST_DIR/b.img" "the disks after the re-protect and its first checkpoint"

step "demote b, stop both"
expect_rc b demote 0 "demote b"
expect_rc b monitor 0 "b demoted"
expect_rc b stop 0 "stop b"
expect_rc a stop 0 "stop a"
expect_rc a monitor 7 "a stopped"
expect_rc b monitor 7 "b stopped"
expect_rc b stop 0 "stop of a stopped b"
echo "PASS: ocf-tester, and the agent's exit codes through promotion, failure and failover"
