#!/bin/bash
# The colo driver driven through xenstore only (docs/xenstore.md), the toolstack's part played
# with Debian's xenstore-write/-read/-exists against the test xenstore daemon.
#
# A Primary domain 1 and a Secondary domain 2, each with two disks (51712 and 51728), each
# disk in a tapdisk process of its own, as Xen runs them.  Checked exactly: requests written
# before the bind are history; start and checkpoint reach every disk of a domain; a request
# runs once however often its watch fires, and of requests coalesced while a disk could not
# read them only the last runs; malformed requests get their error and change nothing;
# checkpoint-wanted past the threshold; xenstored stopped, and killed and restarted, mid-run;
# failover through xenstore, with the disks compared with the model afterwards.
source "$(dirname "$0")/functions.sh"
source "$(dirname "$0")/xenstore-functions.sh"
requires qemu-io
requires xenstore-write
requires_python_nbd

log_tapdisks xenstore
xsd_start

MiB=$((1 << 20))
DEVS=(51712 51728)
# Disk names: P1 P2 (domain 1), S1 S2 (domain 2).

dom_dir() { echo "/local/domain/0/colo/$1"; }
disk_dir() { echo "/local/domain/0/colo/$1/disks/$2"; }

# node DOMID DEVID NAME: a node of the disk's directory ("<absent>" if it is not there).
node() {
	xenstore-read "$(disk_dir "$1" "$2")/$3" 2>/dev/null || echo "<absent>"
}

# request DOMID TEXT
request() {
	xenstore-write -- "$(dom_dir "$1")/request" "$2" || fail "writing request '$2' in domain $1"
}

# wait_node DOMID DEVID NAME VALUE [SECONDS]
wait_node() {
	local end=$(($(date +%s) + ${5:-10})) got
	while :; do
		got=$(node "$1" "$2" "$3")
		[ "$got" = "$4" ] && return 0
		[ "$(date +%s)" -lt "$end" ] ||
			fail "domain $1 disk $2: $3 is '$got', expected '$4'"
		sleep 0.02
	done
}

# wait_results DOMID VALUE: every disk of the domain answers VALUE.
wait_results() {
	local dev
	for dev in "${DEVS[@]}"; do
		wait_node "$1" "$dev" result "$2"
	done
}

# expect_node DOMID DEVID NAME VALUE: the node holds VALUE now.
expect_node() {
	local got
	got=$(node "$1" "$2" "$3")
	[ "$got" = "$4" ] || fail "domain $1 disk $2: $3 is '$got', expected '$4'"
}

# expect_epochs EPOCH: every disk's tapdisk says EPOCH (tap-ctl, not xenstore), so a request
# run twice cannot hide behind a stale node.
expect_epochs() {
	local name
	for name in P1 P2 S1 S2; do
		expect_status "$name" epoch "$1"
	done
}

# bind NAME DOMID DEVID: what the hotplug script writes, then the bind.
bind() {
	local name=$1 dir pid minor
	dir=$(disk_dir "$2" "$3")
	pid=${name}_PID
	minor=${name}_MINOR
	xenstore-write "$dir/params" "colo:127.0.0.1:$PORT_BASE:x" "$dir/pid" "${!pid}" \
		"$dir/minor" "${!minor}" "$dir/backend" "backend/vbd3/$2/$3" ||
		fail "writing the nodes of $name"
	colo "$name" xenstore "$dir" || fail "binding $name to $dir"
}

for i in 1 2; do
	make_image "$TEST_DIR/p$i.img" 64M $((10 + i))
	cp "$TEST_DIR/p$i.img" "$TEST_DIR/s$i.img"
	cp "$TEST_DIR/p$i.img" "$TEST_DIR/m$i.img"
done
port1=$(free_port)
port2=$(free_port)
PORT_BASE=$port1
colo_vbd S1 "colo:127.0.0.1:$port1:$TEST_DIR/s1.img"
colo_vbd S2 "colo:127.0.0.1:$port2:$TEST_DIR/s2.img"
colo_vbd P1 "colo:127.0.0.1:$port1:$TEST_DIR/p1.img"
colo_vbd P2 "colo:127.0.0.1:$port2:$TEST_DIR/p2.img"
[ "$P1_PID" != "$P2_PID" ] || fail "both Primary disks are in one tapdisk"

# pwrite NAME WHAT qemu-io-commands...: through the disk's NBD export and, for a Primary
# disk, into its model too.
pwrite() {
	local uri=${1}_URI
	qio_cmds "${!uri}" -- "${@:3}" || fail "$2: $QIO_OUT"
	grep -qi 'error\|failed' <<<"$QIO_OUT" && fail "$2: $QIO_OUT"
	case $1 in
	P1) qio_cmds "$TEST_DIR/m1.img" -- "${@:3}" || fail "model: $QIO_OUT" ;;
	P2) qio_cmds "$TEST_DIR/m2.img" -- "${@:3}" || fail "model: $QIO_OUT" ;;
	esac
}

##############################################################################################
step "binding: requests written before it are history; state nodes appear"
request 1 "5 start primary"
request 2 "5 start secondary"
bind P1 1 51712
bind P2 1 51728
bind S1 2 51712
bind S2 2 51728
for d in 1 2; do
	for dev in "${DEVS[@]}"; do
		wait_node $d $dev role none
		expect_node $d $dev state idle
		expect_node $d $dev link none
		expect_node $d $dev epoch 0
		expect_node $d $dev last-error ""
	done
done
sleep 0.3
expect_node 1 51712 result "<absent>"
expect_status P1 role none
expect_status S2 role none

step "binding errors"
err=$(colo P1 xenstore "$(disk_dir 1 51712)" 2>&1) && fail "a second bind was accepted"
expect_eq "$err" "tap-ctl: colo xenstore: VBD $P1_MINOR is already bound; unbind it first (xenstore off)" "second bind"
err=$(colo P1 xenstore /local/domain/0/colo/1/disk/9 2>&1) && fail "a bad path was accepted"
expect_eq "$err" "tap-ctl: colo xenstore: xenstore path '/local/domain/0/colo/1/disk/9' does not end in /disks/NAME (see docs/xenstore.md)" "bad path"
(
	export XENSTORED_PATH=$TEST_DIR/no-such-socket
	colo_vbd X "colo:127.0.0.1:1:$TEST_DIR/m1.img"
	rc=0
	err=$(colo X xenstore /local/domain/0/colo/9/disks/1 2>&1) || rc=$?
	expect_eq "$rc" 2 "exit status of a bind without xenstore (ENOENT)"
	expect_eq "$err" "tap-ctl: colo xenstore: cannot connect to xenstore at $TEST_DIR/no-such-socket: No such file or directory" "bind without xenstore"
	rc=0
	err=$(colo X xenstore off 2>&1) || rc=$?
	expect_eq "$err" "tap-ctl: colo xenstore: VBD $X_MINOR is not bound to xenstore" "unbind of an unbound VBD"
	expect_eq "$rc" 2 "exit status of unbinding an unbound VBD (ENOENT)"
	# Without xenstore the disk works as before.
	colo X status >/dev/null || fail "status of an unbound VBD"
	colo_destroy X
) || exit 1

##############################################################################################
step "start through xenstore: every disk of each domain"
request 2 "6 start secondary timeout=2000 tls=none"
wait_results 2 "6 0 ok"
request 1 "6 start primary timeout=2000 tls=none"
wait_results 1 "6 0 ok"
for dev in "${DEVS[@]}"; do
	wait_node 1 $dev link up
	wait_node 1 $dev state running
	expect_node 1 $dev role primary
	expect_node 1 $dev epoch 1
	wait_node 2 $dev link up
	expect_node 2 $dev role secondary
done
expect_epochs 1

step "a checkpoint of both disks together"
pwrite P1 "P1 writes" 'write -P 0x11 1M 256k' 'write -P 0x12 12345 6789'
pwrite P2 "P2 writes" 'write -P 0x21 3M 64k' 'write -P 0x22 67108352 512'
# 12345+6789 is forwarded as the sectors it covers, [12288, 19456).
wait_node 1 51712 sent-bytes $((256 * 1024 + 7168)) 5
request 1 "7 checkpoint"
wait_results 1 "7 0 epoch=2"
request 2 "7 checkpoint"
wait_results 2 "7 0 epoch=2"
expect_epochs 2
same "$TEST_DIR/s1.img" "$TEST_DIR/m1.img" "disk 51712 of the Secondary after checkpoint 7"
same "$TEST_DIR/s2.img" "$TEST_DIR/m2.img" "disk 51728 of the Secondary after checkpoint 7"
wait_node 1 51712 sent-bytes 0
wait_node 2 51712 buffer-bytes 0

##############################################################################################
step "replayed and stale requests run no more"
for _ in 1 2 3; do
	request 1 "7 checkpoint"
	request 2 "7 checkpoint"
done
request 1 "6 checkpoint"
request 2 "3 failover"
# Other nodes of the domain directory changing fire no request either.
xenstore-write "$(dom_dir 1)/unrelated" x "$(dom_dir 2)/unrelated" y
sleep 0.5
wait_results 1 "7 0 epoch=2"
wait_results 2 "7 0 epoch=2"
expect_epochs 2
expect_status S1 state running

step "coalesced watch events: of three requests written while the disks are stopped, only the last runs"
kill -STOP "$P1_PID" "$P2_PID"
# SIGSTOP takes effect on each thread on its own time: wait until every one is stopped.
for pid in "$P1_PID" "$P2_PID"; do
	for _ in $(seq 200); do
		grep -qv '^[0-9]* ([^)]*) T' /proc/"$pid"/task/*/stat || break
		sleep 0.01
	done
	grep -qv '^[0-9]* ([^)]*) T' /proc/"$pid"/task/*/stat && fail "tapdisk $pid did not stop"
done
request 1 "8 checkpoint"
request 1 "9 chekpoint"
request 1 "10 checkpoint"
sleep 0.2
kill -CONT "$P1_PID" "$P2_PID"
wait_results 1 "10 0 epoch=3"
request 2 "10 checkpoint"
wait_results 2 "10 0 epoch=3"
sleep 0.3
expect_epochs 3
grep -q "request 8:\|request 9:" "$TAPLOG" && fail "a coalesced request ran: $(grep 'request [89]:' "$TAPLOG")"

step "malformed requests get their error and change nothing"
request 1 "x1 checkpoint"
wait_results 1 "0 22 malformed request 'x1 checkpoint': bad id 'x1'"
request 1 "-3 checkpoint"
wait_results 1 "0 22 malformed request '-3 checkpoint': bad id '-3'"
request 1 "9223372036854775808 checkpoint"
wait_results 1 "0 22 malformed request '9223372036854775808 checkpoint': bad id '9223372036854775808'"
request 1 ""
wait_results 1 "0 22 malformed request '': bad id ''"
request 1 "11 chekpoint"
wait_results 1 "11 22 unknown colo command 'chekpoint' (start, checkpoint, failover, stop, status, xenstore)"
request 1 "12 status"
wait_results 1 "12 22 'status' is not a request (start, checkpoint, failover, stop)"
request 1 "13 xenstore off"
wait_results 1 "13 22 'xenstore' is not a request (start, checkpoint, failover, stop)"
request 1 "14 checkpoint now"
wait_results 1 "14 22 checkpoint takes no arguments (got 'now')"
request 1 "15 start primary bogus=1"
wait_results 1 "15 22 unknown option 'bogus'"
request 2 "15 start secondary"
wait_results 2 "15 16 start: already started as secondary (running)"
expect_epochs 3
for name in P1 P2 S1 S2; do expect_status $name state running; done

step "after the errors, the next request runs"
pwrite P1 "P1 writes of epoch 3" 'write -P 0x13 5M 128k'
request 1 "16 checkpoint"
wait_results 1 "16 0 epoch=4"
request 2 "16 checkpoint"
wait_results 2 "16 0 epoch=4"
expect_epochs 4
same "$TEST_DIR/s1.img" "$TEST_DIR/m1.img" "disk 51712 of the Secondary after checkpoint 13"

##############################################################################################
step "the Primary asks for a checkpoint past the threshold"
xenstore-write "$(dom_dir 1)/checkpoint-threshold" $((1 * MiB))
sleep 0.1
pwrite P1 "P1 writes 512 KiB" 'write -P 0x14 8M 512k'
sleep 0.3
expect_node 1 51712 checkpoint-wanted "<absent>"
pwrite P1 "P1 writes 2 MiB" 'write -P 0x15 16M 2M'
wait_node 1 51712 checkpoint-wanted "4 $((2 * MiB + 512 * 1024))"
expect_node 1 51728 checkpoint-wanted "<absent>"
# Once per epoch.
pwrite P1 "P1 writes 1 MiB more" 'write -P 0x16 20M 1M'
sleep 0.3
expect_node 1 51712 checkpoint-wanted "4 $((2 * MiB + 512 * 1024))"
request 1 "17 checkpoint"
wait_results 1 "17 0 epoch=5"
request 2 "17 checkpoint"
wait_results 2 "17 0 epoch=5"
pwrite P2 "P2 writes 1 MiB" 'write -P 0x23 4M 1M'
wait_node 1 51728 checkpoint-wanted "5 $MiB"
expect_node 1 51712 checkpoint-wanted "4 $((2 * MiB + 512 * 1024))"
xenstore-write "$(dom_dir 1)/checkpoint-threshold" 0
sleep 0.1
request 1 "18 checkpoint"
wait_results 1 "18 0 epoch=6"
request 2 "18 checkpoint"
wait_results 2 "18 0 epoch=6"
pwrite P2 "P2 writes 2 MiB with no threshold" 'write -P 0x24 6M 2M'
sleep 0.3
expect_node 1 51728 checkpoint-wanted "5 $MiB"

##############################################################################################
step "xenstored killed and restarted: guest I/O goes on, nothing runs twice"
xsd_kill9
pwrite P1 "P1 writes while xenstored is down" 'write -P 0x17 24M 64k'
pwrite S2 "S2 (Secondary VM) reads while xenstored is down" 'read -P 0x21 3M 64k'
sleep 1.2
xsd_restart
# The watches fire again on reconnection with request 15: already done.
sleep 2
expect_epochs 6
wait_results 1 "18 0 epoch=6"
grep -q "colo xenstore: lost the connection to $XENSTORED_PATH" "$TAPLOG" ||
	fail "no tapdisk logged the lost connection"
grep -q "colo xenstore: reconnected to $XENSTORED_PATH" "$TAPLOG" ||
	fail "no tapdisk logged the reconnection"

step "xenstored stopped (SIGSTOP): guest I/O, replication and tap-ctl go on; state catches up"
sent=$(colo_field P2 sent_bytes)
kill -STOP "$XSD_PID"
pwrite P2 "P2 writes while xenstored is stopped" 'write -P 0x26 8M 256k'
pwrite S1 "S1 (Secondary VM) reads while xenstored is stopped" 'read -P 0x13 5M 128k'
# The Primary's replication goes on: its write is applied on the Secondary meanwhile.
for _ in $(seq 100); do
	[ "$(colo_field P2 inflight_bytes)" = 0 ] && [ "$(colo_field P2 sent_bytes)" != "$sent" ] && break
	sleep 0.05
done
expect_status P2 inflight_bytes 0
expect_status P2 sent_bytes $((sent + 256 * 1024))
expect_status P2 link up
kill -CONT "$XSD_PID"
wait_node 1 51728 sent-bytes $((sent + 256 * 1024))

step "a request written before the tapdisks are back runs once they are"
xsd_kill9
xsd_restart
request 1 "19 checkpoint"
wait_results 1 "19 0 epoch=7"
request 2 "19 checkpoint"
wait_results 2 "19 0 epoch=7"
expect_epochs 7
same "$TEST_DIR/s1.img" "$TEST_DIR/m1.img" "disk 51712 of the Secondary after checkpoint 16"
same "$TEST_DIR/s2.img" "$TEST_DIR/m2.img" "disk 51728 of the Secondary after checkpoint 16"

##############################################################################################
step "failover through xenstore: the disks are the last checkpoint plus the Secondary VM's writes"
cp "$TEST_DIR/m1.img" "$TEST_DIR/f1.img"
cp "$TEST_DIR/m2.img" "$TEST_DIR/f2.img"
pwrite S1 "Secondary VM writes" 'write -P 0x31 1M 4k' 'write -P 0x32 40M 100k'
qio_cmds "$TEST_DIR/f1.img" -- 'write -P 0x31 1M 4k' 'write -P 0x32 40M 100k' || fail "$QIO_OUT"
pwrite P1 "P1 writes after the last checkpoint" 'write -P 0x18 1M 1M'
pwrite P2 "P2 writes after the last checkpoint" 'write -P 0x25 2M 1M'
wait_node 1 51712 sent-bytes $MiB
kill -9 "$P1_PID" "$P2_PID"
request 2 "20 failover"
wait_results 2 "20 0 ok"
for dev in "${DEVS[@]}"; do
	wait_node 2 $dev state failed-over
done
same "$TEST_DIR/s1.img" "$TEST_DIR/f1.img" "disk 51712 after failover"
same "$TEST_DIR/s2.img" "$TEST_DIR/f2.img" "disk 51728 after failover"
same_view "$S1_URI" "$TEST_DIR/f1.img" "what the new Primary VM reads on 51712"

step "after failover: errors from the driver, and an unbound disk hears nothing"
request 2 "21 checkpoint"
wait_results 2 "21 108 checkpoint: do_checkpoint: replication has ended (failed-over); the disk is a plain disk"
colo S1 xenstore off || fail "unbinding S1"
request 2 "22 stop"
wait_node 2 51728 result "22 108 stop: replication has already failed over"
sleep 0.3
expect_node 2 51712 result "21 108 checkpoint: do_checkpoint: replication has ended (failed-over); the disk is a plain disk"
step "a request in flight when its VBD is paused: the driver's error is the result"
port3=$(free_port)
make_image "$TEST_DIR/s3.img" 8M 3
cp "$TEST_DIR/s3.img" "$TEST_DIR/p3.img"
colo_vbd S3 "colo:127.0.0.1:$port3:$TEST_DIR/s3.img"
colo_vbd P3 "colo:127.0.0.1:$port3:$TEST_DIR/p3.img"
for n in S3:4 P3:3; do
	colo "${n%:*}" xenstore "$(disk_dir "${n#*:}" 1)" || fail "binding ${n%:*}"
done
request 4 "1 start secondary tls=none"
wait_node 4 1 result "1 0 ok"
request 3 "1 start primary tls=none"
wait_node 3 1 result "1 0 ok"
# The Secondary's checkpoint waits for the Primary's epoch marker, which never comes.
request 4 "2 checkpoint"
sleep 0.3
expect_node 4 1 result "1 0 ok"
"$TAPCTL" pause -p "$S3_PID" -m "$S3_MINOR" || fail "pausing S3"
wait_node 4 1 result "2 19 checkpoint: the VBD was closed"
request 4 "3 checkpoint"
wait_node 4 1 result "3 22 checkpoint: VBD $S3_MINOR is paused"
"$TAPCTL" unpause -p "$S3_PID" -m "$S3_MINOR" || fail "unpausing S3"
colo_destroy P3
colo_destroy S3

colo_destroy S1
colo_destroy S2
echo PASS
