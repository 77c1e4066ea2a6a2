#!/bin/bash
# End to end through xenstore only, as a Xen dom0 runs it: two hosts' xenstores (two test
# daemons), the block-colo hotplug script bringing up each disk from its backend node, and
# tools/colo-controller playing the toolstack.  A Primary domain 5 and a Secondary domain 7,
# two disks each.  The controller starts the pair and checkpoints both disks together (every
# 50 ms and whenever a Primary disk passes the threshold) while a client writes to both
# Primary disks; then a failover through xenstore.  The disks are compared byte for byte with
# the model: after the last checkpoint both sides equal what the client wrote, and after the
# failover the Secondary's disks are that checkpoint plus its own VM's writes.
source "$(dirname "$0")/functions.sh"
source "$(dirname "$0")/xenstore-functions.sh"
requires qemu-io
requires xenstore-write
requires_python_nbd

log_tapdisks
CONTROLLER=$top_builddir/colo-controller
HOTPLUG=$top_srcdir/hotplug/block-colo
[ -x "$CONTROLLER" ] || fail "$CONTROLLER is not built"
DURATION=${DURATION:-4}
SEED=${SEED:-$RANDOM}
echo "SEED=$SEED DURATION=$DURATION"

xsd_start
XS_A=$XENSTORED_PATH
xsd_host_start b
XS_B=$XSD_HOST_SOCK
PDOM=5
SDOM=7
DEVS=(51712 51728)

CTL_SIDES=(--primary $PDOM --secondary $SDOM --primary-xs "$XS_A" --secondary-xs "$XS_B")
ctl() { "$CONTROLLER" "${CTL_SIDES[@]}" "$@"; }

# hotplug HOST-SOCKET DOMID DEVID add|remove [PARAMS]: what libxl does for a disk: the backend
# node, then the script.
hotplug() {
	local be=backend/vbd3/$2/$3
	if [ "$4" = add ]; then
		XENSTORED_PATH=$1 xenstore-write "$be/params" "$5" || fail "writing $be/params"
	fi
	XENSTORED_PATH=$1 XENBUS_PATH=$be TAP_CTL=$TAPCTL BLOCK_COLO_LOG= \
		BLOCK_COLO_LOCK_DIR=$TEST_DIR/lock bash "$HOTPLUG" "$4" ||
		fail "block-colo $4 for $be: $(XENSTORED_PATH=$1 xenstore-read "$be/hotplug-error" 2>&1)"
}

# vbd_of HOST-SOCKET DOMID DEVID: "PID MINOR" from the colo directory the script wrote.
vbd_of() {
	local d=/local/domain/0/colo/$2/disks/$3
	echo "$(XENSTORED_PATH=$1 xenstore-read "$d/pid") $(XENSTORED_PATH=$1 xenstore-read "$d/minor")"
}

uri_of() {
	local pm
	read -r -a pm <<<"$(vbd_of "$@")"
	echo "nbd+unix:///?socket=$BLKTAP_CONTROL_DIR/nbd${pm[0]}.${pm[1]}"
}

step "two hosts, two disks each, brought up by block-colo"
for i in 0 1; do
	make_image "$TEST_DIR/p$i.img" 64M $((SEED + i))
	cp "$TEST_DIR/p$i.img" "$TEST_DIR/s$i.img"
	cp "$TEST_DIR/p$i.img" "$TEST_DIR/m$i.img"
	port[$i]=$(free_port)
done
for i in 0 1; do
	hotplug "$XS_B" $SDOM "${DEVS[$i]}" add "colo:127.0.0.1:${port[$i]}:$TEST_DIR/s$i.img"
	hotplug "$XS_A" $PDOM "${DEVS[$i]}" add "colo:127.0.0.1:${port[$i]}:$TEST_DIR/p$i.img"
	expect_eq "$(XENSTORED_PATH=$XS_A xenstore-read backend/vbd3/$PDOM/${DEVS[$i]}/hotplug-status)" \
		connected "hotplug-status of the Primary's disk ${DEVS[$i]}"
	puri[$i]=$(uri_of "$XS_A" $PDOM "${DEVS[$i]}")
	suri[$i]=$(uri_of "$XS_B" $SDOM "${DEVS[$i]}")
done

step "the controller starts the pair"
ctl --primary-args "timeout=3000 tls=none" --secondary-args "timeout=3000 tls=none" start ||
	fail "colo-controller start"
for i in 0 1; do
	for side in "$XS_A $PDOM primary" "$XS_B $SDOM secondary"; do
		read -r xs dom role <<<"$side"
		d=/local/domain/0/colo/$dom/disks/${DEVS[$i]}
		expect_eq "$(XENSTORED_PATH=$xs xenstore-read "$d/role")" "$role" "role of $d"
		# The Secondary runs once its Primary connected: tapdisk says so within 10 ms.
		for _ in $(seq 100); do
			[ "$(XENSTORED_PATH=$xs xenstore-read "$d/state")" = running ] && break
			sleep 0.05
		done
		expect_eq "$(XENSTORED_PATH=$xs xenstore-read "$d/state")" running "state of $d"
	done
done

step "checkpoints every 50 ms and past 2 MiB while a client writes to both disks"
# Not through ctl: $! must be the controller's own pid, for the SIGINT below.
"$CONTROLLER" "${CTL_SIDES[@]}" --interval 50 --threshold 2M run >"$TEST_DIR/run.out" \
	2>"$TEST_DIR/run.err" &
run_pid=$!
for i in 0 1; do
	"$PY" "$top_srcdir/tests/colo_writer.py" "${puri[$i]}" "$TEST_DIR/m$i.img" "$DURATION" \
		$((SEED * 2 + i)) >"$TEST_DIR/writes$i" &
	wpid[$i]=$!
done
for i in 0 1; do
	wait "${wpid[$i]}" || fail "the writer of disk ${DEVS[$i]} failed"
done
kill -INT $run_pid
rc=0
wait $run_pid || rc=$?
[ $rc = 0 ] || fail "colo-controller run ended with $rc: $(cat "$TEST_DIR/run.err")"
summary=$(cat "$TEST_DIR/run.out")
echo "$summary; writes: $(cat "$TEST_DIR/writes0") and $(cat "$TEST_DIR/writes1")"
[[ $summary =~ ^run:\ ([0-9]+)\ checkpoints,\ 0\ failures, ]] || fail "run summary: $summary"
n=${BASH_REMATCH[1]}
[ "$n" -ge 10 ] || fail "only $n checkpoints in $DURATION s"
[ "$(cat "$TEST_DIR/writes0")" -gt 0 ] && [ "$(cat "$TEST_DIR/writes1")" -gt 0 ] ||
	fail "a writer wrote nothing"

step "after a last checkpoint both sides hold exactly what the client wrote"
out=$(ctl checkpoint) || fail "colo-controller checkpoint"
[[ $out =~ ^checkpoint\ ([0-9]+)\ epoch=([0-9]+)$ ]] || fail "checkpoint printed '$out'"
id=${BASH_REMATCH[1]}
epoch=${BASH_REMATCH[2]}
[ "$epoch" -ge $((n + 1)) ] || fail "epoch $epoch after $n checkpoints of run"
for i in 0 1; do
	same "$TEST_DIR/p$i.img" "$TEST_DIR/m$i.img" "the Primary's disk ${DEVS[$i]}"
	same "$TEST_DIR/s$i.img" "$TEST_DIR/m$i.img" "the Secondary's disk ${DEVS[$i]}"
	for side in "$XS_A $PDOM" "$XS_B $SDOM"; do
		read -r xs dom <<<"$side"
		d=/local/domain/0/colo/$dom/disks/${DEVS[$i]}
		expect_eq "$(XENSTORED_PATH=$xs xenstore-read "$d/epoch")" "$epoch" "epoch of $d"
	done
done

step "failover through xenstore: the last checkpoint plus the Secondary VM's writes"
for i in 0 1; do
	cp "$TEST_DIR/m$i.img" "$TEST_DIR/f$i.img"
	"$PY" "$top_srcdir/tests/colo_writer.py" "${puri[$i]}" "$TEST_DIR/m$i.img" 0.5 \
		$((SEED * 3 + i)) >/dev/null || fail "late Primary writes"
done
qio_cmds "${suri[0]}" -- 'write -P 0x5e 1M 64k' 'write -P 0x5f 33554944 1536' ||
	fail "the Secondary VM's writes: $QIO_OUT"
qio_cmds "$TEST_DIR/f0.img" -- 'write -P 0x5e 1M 64k' 'write -P 0x5f 33554944 1536' ||
	fail "model: $QIO_OUT"
read -r p0 _ <<<"$(vbd_of "$XS_A" $PDOM 51712)"
read -r p1 _ <<<"$(vbd_of "$XS_A" $PDOM 51728)"
kill -9 "$p0" "$p1"
ctl failover || fail "colo-controller failover"
for i in 0 1; do
	same "$TEST_DIR/s$i.img" "$TEST_DIR/f$i.img" "the Secondary's disk ${DEVS[$i]} after failover"
	d=/local/domain/0/colo/$SDOM/disks/${DEVS[$i]}
	expect_eq "$(XENSTORED_PATH=$XS_B xenstore-read "$d/state")" failed-over "state of $d"
	expect_eq "$(XENSTORED_PATH=$XS_B xenstore-read "$d/result")" "$((id + 1)) 0 ok" "result of $d"
done
same_view "${suri[0]}" "$TEST_DIR/f0.img" "what the new Primary VM reads on 51712"

step "hotplug remove on both hosts (the Primary's tapdisks are dead)"
for i in 0 1; do
	hotplug "$XS_A" $PDOM "${DEVS[$i]}" remove
	hotplug "$XS_B" $SDOM "${DEVS[$i]}" remove
done
XENSTORED_PATH=$XS_A xenstore-exists /local/domain/0/colo/$PDOM && fail "domain $PDOM's colo directory is left"
XENSTORED_PATH=$XS_B xenstore-exists /local/domain/0/colo/$SDOM && fail "domain $SDOM's colo directory is left"
[ -z "$("$TAPCTL" list)" ] || fail "tapdisks are left: $("$TAPCTL" list)"
echo PASS
