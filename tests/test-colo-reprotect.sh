#!/bin/bash
# The whole HA cycle on the same two VBDs (docs/colo.md, "Re-protect and failback"):
# protect, failover, re-protect in the other direction with address=, failback; the bytes a
# re-protect will send equal the expected set exactly; a stopped VBD starts again.
. "$(dirname "$0")/functions.sh"
log_tapdisks
requires_python_nbd
requires ss

MiB=$((1 << 20))

# ckpt PRIMARY SECONDARY EPOCH: the Primary's checkpoint, then the Secondary's, each epoch=EPOCH.
ckpt() {
	local out
	out=$(colo "$1" checkpoint 2>&1) || fail "checkpoint on the Primary $1: $out"
	expect_eq "$out" "epoch=$3" "the Primary $1's checkpoint"
	out=$(colo "$2" checkpoint 2>&1) || fail "checkpoint on the Secondary $2: $out"
	expect_eq "$out" "epoch=$3" "the Secondary $2's checkpoint"
}

step "address=: the Secondary listens there, the Primary connects there; bad values refused"
make_image "$TEST_DIR/a.img" 16M 1
cp "$TEST_DIR/a.img" "$TEST_DIR/b.img"
NAME_PORT=$(free_port)
# Both VBDs named after a port nobody listens on: only address= can pair them.
colo_vbd A "colo:127.0.0.1:$NAME_PORT:$TEST_DIR/a.img"
colo_vbd B "colo:127.0.0.1:$NAME_PORT:$TEST_DIR/b.img"
for bad in "127.0.0.1|not HOST:PORT (an IPv6 HOST goes in brackets: [::1]:PORT)" \
	"::1:9000|not HOST:PORT (an IPv6 HOST goes in brackets: [::1]:PORT)" \
	"[::1]9000|not [IPv6]:PORT (a ']' then ':' must follow)" \
	":9000|the HOST is empty" \
	"127.0.0.1:0|the PORT must be a number from 1 to 65535" \
	"127.0.0.1:65536|the PORT must be a number from 1 to 65535"; do
	expect_error B 22 "tap-ctl: colo start: address=${bad%%|*}: ${bad#*|}" start secondary \
		"address=${bad%%|*}"
done
expect_status B state idle
B_PORT=$(free_port)
colo B start secondary address=127.0.0.1:$B_PORT || fail "start secondary address="
expect_status B link listening
colo A start primary address=127.0.0.1:$B_PORT sync=diff connect_timeout=10000 ||
	fail "start primary address=127.0.0.1:$B_PORT"
expect_status A state running
expect_status B state running
ckpt A B 2
colo A stop || fail "stop A"
colo B stop || fail "stop B"
if ip -6 addr show lo 2>/dev/null | grep -q "inet6 ::1/"; then
	step "address=[::1]:PORT: the same stopped VBDs started again over IPv6"
	colo B start secondary "address=[::1]:$B_PORT" || fail "start secondary address=[::1]"
	colo A start primary "address=[::1]:$B_PORT" || fail "start primary address=[::1]"
	expect_status A state running
	grep -q "colo ::1:$B_PORT: replicating to the Secondary" "$TAPLOG" ||
		fail "the Primary did not replicate to [::1]:$B_PORT"
	ckpt A B 2
fi
colo_destroy A
colo_destroy B

# wait_applied_on NAME: every write the Primary NAME forwarded is acknowledged.
wait_applied_on() {
	for _ in $(seq 200); do
		[ "$(colo_field "$1" inflight_bytes)" = 0 ] && return 0
		sleep 0.05
	done
	fail "the Secondary did not acknowledge $1's writes within 10 s: $(colo "$1" status)"
}

# wr NAME PATTERN EXTENT...: the VBD's guest writes 64 KiB (PATTERN) into each 1 MiB EXTENT.
wr() {
	local name=$1 pat=$2 uri e cmds=()
	uri=${name}_URI
	shift 2
	for e in "$@"; do cmds+=("write -P $pat $((e * MiB + 8192)) 64k"); done
	qio_cmds "${!uri}" -- "${cmds[@]}" || fail "writes to $name: $QIO_OUT"
}

# reprotect NEW_PRIMARY NEW_SECONDARY PORT KIND BYTES [secondary options...]: the Secondary
# listens on PORT, the Primary (a failed-over Secondary) starts toward it; while it copies,
# status says KIND (exact|diff) and sync_total_bytes BYTES before the copy ends (a slow
# sync_rate keeps it going), and the new Primary's guest writes meanwhile (extents 10 and 30,
# forwarded as the copy goes: the copy must not undo them); then the first checkpoint, and
# the disks are compared.
reprotect() {
	local np=$1 ns=$2 port=$3 kind=$4 bytes=$5 spid rc=0
	shift 5
	colo "$ns" start secondary "address=127.0.0.1:$port" "$@" ||
		fail "start secondary on $ns: $(colo "$ns" status)"
	"$TAPCTL" colo -p "$(eval echo \$${np}_PID)" -m "$(eval echo \$${np}_MINOR)" start primary \
		"address=127.0.0.1:$port" sync_rate=2M $(colo_tls_words start primary) \
		>"$TEST_DIR/start.out" 2>&1 &
	spid=$!
	wait_status "$np" reprotect "$kind" 30
	expect_status "$np" sync_total_bytes "$bytes"
	wr "$np" 0x6e 10 30
	wait "$spid" || rc=$?
	[ "$rc" = 0 ] || fail "start primary on $np (re-protect): $(cat "$TEST_DIR/start.out")"
	expect_status "$np" state running
	expect_status "$np" sync_total_bytes "$bytes"
	expect_status "$np" reprotect "$kind"
	[ "$kind" = diff ] || expect_status "$np" sync_sent_bytes "$bytes"
	echo "re-protect $np -> $ns: $kind, $bytes bytes to send, $(colo_field "$np" sync_sent_bytes) sent"
}

step "protect A -> B, checkpoints, A writes after the last one, B's VM writes, B fails over"
# 32 MiB: 32 extents of 1 MiB, the sync's and the exact set's unit.
make_image "$TEST_DIR/a.img" 32M 2
cp "$TEST_DIR/a.img" "$TEST_DIR/b.img"
colo_vbd A "colo:127.0.0.1:$NAME_PORT:$TEST_DIR/a.img"
colo_vbd B "colo:127.0.0.1:$NAME_PORT:$TEST_DIR/b.img"
A_PORT=$(free_port)
B_PORT=$(free_port)
colo B start secondary address=127.0.0.1:$B_PORT || fail "start secondary B"
colo A start primary address=127.0.0.1:$B_PORT || fail "start primary A"
ckpt A B 2
wr A 0x11 1 2 # epoch 2
ckpt A B 3
wr A 0x12 3 4 # epoch 3: B has it (its checkpoint 3)
ckpt A B 4
wr A 0x13 5 # epoch 4: after the last checkpoint, only in A's map (B saved the originals)
wait_applied_on A
wr B 0x14 10 # B's VM, in B's buffer
colo B failover || fail "failover B"
expect_status B state failed-over
wait_status A state broken 10
wr A 0x15 6  # A, cut off, writes on (after the last checkpoint too)
wr B 0x16 12 # B serves the guest
# B's own set: its buffer written back (5: the originals, 10) and 12; A's after checkpoint 3
# (B's last): 5 and 6.  Not 1-4: both have them.
reprotect B A "$A_PORT" exact $((4 * MiB))
ckpt B A 2
same "$TEST_DIR/a.img" "$TEST_DIR/b.img" "re-protect B -> A: the disks after the first checkpoint"
# A's old set is cleared by its checkpoint; B's map holds only the two 64 KiB writes of its
# epoch 1 (a Primary keeps one epoch more): what it wrote since the failover was copied.
expect_status A dirty_bytes 0
expect_status B dirty_bytes $((128 << 10))

step "failback: B -> A the same way (A fails over, B re-protected from A)"
wr B 0x21 7
ckpt B A 3
wr B 0x22 8 # after the last checkpoint
wait_applied_on B
wr A 0x23 20 # A's VM
colo A failover || fail "failover A"
wait_status B state broken 10
wr A 0x24 21
wr B 0x25 22
# A: 8 (originals written back), 20, 21; B after checkpoint 2 (A's last): 8 and 22.
reprotect A B "$B_PORT" exact $((4 * MiB))
ckpt A B 2
same "$TEST_DIR/a.img" "$TEST_DIR/b.img" "failback A -> B: the disks after the first checkpoint"

# rand_extents N: N random extents of the 32 (with repeats), on one line.
rand_extents() {
	local i out=()
	for ((i = 0; i < $1; i++)); do out+=($((RANDOM % 32))); done
	echo "${out[@]}"
}

# count_extents EXTENT...: how many distinct extents.
count_extents() {
	printf '%s\n' "$@" | sort -un | wc -l
}

SEED=${COLO_REPROTECT_SEED:-$(date +%s%N | cut -c10-18)}
RANDOM=$SEED
step "6 random cycles of failover and re-protect, each copying exactly its set (seed=$SEED)"
np=A ns=B
for cycle in 1 2 3 4 5 6; do
	x1=$(rand_extents 3) x2=$(rand_extents 2) y=$(rand_extents 2) z=$(rand_extents 2)
	w=$(rand_extents 1)
	# shellcheck disable=SC2086
	{
		wr "$np" $((0x80 + cycle)) $x1
		ckpt "$np" "$ns" 3
		wr "$np" $((0x90 + cycle)) $x2 # after the last checkpoint
		wait_applied_on "$np"
		wr "$ns" $((0xa0 + cycle)) $y # the Secondary's VM
		colo "$ns" failover || fail "cycle $cycle: failover $ns"
		wait_status "$np" state broken 10
		wr "$ns" $((0xb0 + cycle)) $z # the new Primary serves the guest
		wr "$np" $((0xc0 + cycle)) $w # the old one, cut off, writes on
		n=$(count_extents $x2 $y $z $w)
	}
	echo "cycle $cycle: $np -> $ns; after the checkpoint [$x2], VM [$y], after the failover [$z] and [$w]: $n MiB"
	port=A_PORT
	[ "$np" = A ] || port=B_PORT
	reprotect "$ns" "$np" "${!port}" exact $((n * MiB))
	ckpt "$ns" "$np" 2
	same "$TEST_DIR/a.img" "$TEST_DIR/b.img" "cycle $cycle (seed=$SEED): the disks after the first checkpoint"
	t=$np np=$ns ns=$t
done

step "kill -9 of the Primary A, restarted with its dirty_log: the log's extents are sent"
colo A failover || fail "failover A (Primary)"
colo B stop || fail "stop B"
make_image "$TEST_DIR/a.img" 32M 3
cp "$TEST_DIR/a.img" "$TEST_DIR/b.img"
colo_destroy A
colo_destroy B
colo_vbd A "colo:127.0.0.1:$NAME_PORT:$TEST_DIR/a.img"
colo_vbd B "colo:127.0.0.1:$NAME_PORT:$TEST_DIR/b.img"
colo B start secondary address=127.0.0.1:$B_PORT || fail "start secondary B"
colo A start primary address=127.0.0.1:$B_PORT dirty_log="$TEST_DIR/a.dlog" || fail "start primary A"
ckpt A B 2
wr A 0x41 1 # epoch 2
ckpt A B 3  # A knows checkpoint 1 complete on both: its log keeps 1
wr A 0x42 3 # epoch 3, after the last checkpoint
wait_applied_on A
wr B 0x43 10
kill -9 "$A_PID"
wait_gone "$A_PID"
wait_status B state broken 10
colo B failover || fail "failover B after kill -9 of A"
wr B 0x44 12
colo_vbd A "colo:127.0.0.1:$NAME_PORT:$TEST_DIR/a.img"
expect_error A 2 "tap-ctl: colo start: dirty_log=$TEST_DIR/none.dlog: No such file or directory (a Secondary only reads an existing log)" \
	start secondary address=127.0.0.1:$A_PORT dirty_log="$TEST_DIR/none.dlog"
# The log: 1 and 3 (it cannot tell that B has 1); B: 3 (originals), 10, 12.
reprotect B A "$A_PORT" exact $((4 * MiB)) dirty_log="$TEST_DIR/a.dlog"
expect_status A dirty_log "$TEST_DIR/a.dlog"
ckpt B A 2
same "$TEST_DIR/a.img" "$TEST_DIR/b.img" "re-protect from A's dirty log: the disks after the first checkpoint"
expect_status A dirty_log ""

step "kill -9 of the Primary B, restarted without a log: the re-protect falls back to diff"
wr B 0x51 13 # after the last checkpoint
wait_applied_on B
wr A 0x52 25
kill -9 "$B_PID"
wait_gone "$B_PID"
wait_status A state broken 10
colo A failover || fail "failover A after kill -9 of B"
wr A 0x53 26
colo_vbd B "colo:127.0.0.1:$NAME_PORT:$TEST_DIR/b.img"
# Every extent examined; those that differ sent: 13 (B's write, undone), 25, 26.
reprotect A B "$B_PORT" diff $((32 * MiB))
expect_status A sync_sent_bytes $((3 * MiB))
grep -q "re-protect: the old Primary does not know what it wrote after checkpoint 1 (no dirty map, no dirty_log=): diff of the whole disk" "$TAPLOG" ||
	fail "the fallback to diff is not logged"
ckpt A B 2
same "$TEST_DIR/a.img" "$TEST_DIR/b.img" "re-protect by diff: the disks after the first checkpoint"

step "a stopped pair starts again, in the same roles"
colo A stop || fail "stop A"
colo B stop || fail "stop B"
expect_status A state stopped
expect_status B state stopped
wr A 0x31 15
colo B start secondary address=127.0.0.1:$B_PORT || fail "start secondary B again"
colo A start primary address=127.0.0.1:$B_PORT || fail "start primary A again"
expect_status A reprotect ""
expect_status A sync_sent_bytes $((1 * MiB))
ckpt A B 2
same "$TEST_DIR/a.img" "$TEST_DIR/b.img" "stopped and started again: the disks"

step "a broken Secondary starts as Primary (its buffer dropped), the stopped Primary as Secondary"
wr A 0x61 16
wait_applied_on A
wr B 0x62 17 # B's VM: in B's buffer, dropped below
colo A stop || fail "stop A"
wait_status B state broken 10
expect_status B buffer_blocks 32
colo A start secondary address=127.0.0.1:$A_PORT || fail "start secondary on the stopped A"
colo B start primary address=127.0.0.1:$A_PORT || fail "start primary on the broken Secondary B"
expect_status B reprotect ""
expect_status B buffer_blocks 0
# B's disk has A's write to 16 (applied), not its VM's to 17 (in the dropped buffer): it
# equals A's, and the diff sends nothing.
expect_status B sync_sent_bytes 0
ckpt B A 2
same "$TEST_DIR/a.img" "$TEST_DIR/b.img" "broken Secondary started as Primary: the disks"

step "A's dirty log, cleared by its re-protect as Secondary, serves its next run as Primary: a cut resyncs from the last checkpoint"
# a.dlog was A's log as the old Primary; A's first checkpoint of the re-protect from it
# (above) cleared it, and its epoch must go back to none: with the commit's UINT64_MAX left
# in it, every resync of a run from it found no common checkpoint (a diff of the whole disk).
colo A failover || fail "failover A"
wait_status B state broken 10
colo B start secondary address=127.0.0.1:$B_PORT || fail "start secondary B"
colo A start primary address=127.0.0.1:$B_PORT dirty_log="$TEST_DIR/a.dlog" ||
	fail "start primary A with dirty_log=a.dlog"
ckpt A B 2
wr A 0x71 18
ckpt A B 3
ckpt A B 4
wr A 0x72 19 # after the last checkpoint: the only extent the resync copies
wait_applied_on A
for f in "dport = :$B_PORT" "sport = :$B_PORT"; do
	# shellcheck disable=SC2086
	ss -K -t $f >/dev/null 2>&1 || true
done
wait_status A state broken 30
wait_status B state broken 30
colo B start secondary address=127.0.0.1:$B_PORT || fail "start secondary B again"
colo A start primary address=127.0.0.1:$B_PORT dirty_log="$TEST_DIR/a.dlog" ||
	fail "start primary A again (resync)"
echo "resync from a.dlog: $(colo_field A sync_total_bytes) bytes examined, $(colo_field A sync_sent_bytes) sent"
expect_status A sync_total_bytes $((1 * MiB))
expect_status A sync_sent_bytes $((1 * MiB))
ckpt A B 5
same "$TEST_DIR/a.img" "$TEST_DIR/b.img" "the resync after the cut: the disks"

step "the new Primary killed during a re-protect's copy, made again with its log: no resync is granted from the cut copy"
# Fresh VBDs: D's first start as Primary (the re-protect) takes the pair's identity from its
# new log, so D made again from that log asks for a resync of the same pair.  The old Primary
# C holds a write D never got (extent 20, after D's failover); D's set is extent 1, copied
# first.  D is killed once extent 1 is copied: C must not grant a resync since "checkpoint 0"
# of the cut re-protect, or extent 20 would never be copied.
make_image "$TEST_DIR/c.img" 24M 7
cp "$TEST_DIR/c.img" "$TEST_DIR/d.img"
colo_vbd C "colo:127.0.0.1:$NAME_PORT:$TEST_DIR/c.img"
colo_vbd D "colo:127.0.0.1:$NAME_PORT:$TEST_DIR/d.img"
C_PORT=$(free_port)
D_PORT=$(free_port)
colo D start secondary address=127.0.0.1:$D_PORT || fail "start secondary D"
colo C start primary address=127.0.0.1:$D_PORT sync=none || fail "start primary C"
ckpt C D 2
colo D failover || fail "failover D (Secondary)"
wait_status C state broken 10
wr C 0x61 20
wr D 0x62 1
colo C start secondary address=127.0.0.1:$C_PORT || fail "start secondary C"
"$TAPCTL" colo -p "$D_PID" -m "$D_MINOR" start primary address=127.0.0.1:$C_PORT sync_rate=256K \
	dirty_log="$TEST_DIR/d.dlog" $(colo_tls_words start primary) >"$TEST_DIR/start.out" 2>&1 &
spid=$!
wait_status D sync_done_bytes $MiB 30
kill -9 "$D_PID"
wait_gone "$D_PID"
rc=0
wait "$spid" || rc=$?
[ "$rc" != 0 ] || fail "the re-protect succeeded though its tapdisk was killed"
"$TAPCTL" destroy -p "$D_PID" -m "$D_MINOR" >/dev/null 2>&1 || true # tap-ctl forgets it
"$TAPCTL" free -m "$D_MINOR" >/dev/null 2>&1 || true
wait_status C state idle 30
cmp -s -i $((20 * MiB)):$((20 * MiB)) -n $MiB "$TEST_DIR/c.img" "$TEST_DIR/d.img" &&
	fail "extent 20 was copied before the kill: the test proves nothing"
colo_vbd D "colo:127.0.0.1:$NAME_PORT:$TEST_DIR/d.img"
colo C start secondary address=127.0.0.1:$C_PORT || fail "start secondary C again"
nocommon="resync: the Secondary has no checkpoint in common with us"
n=$(grep -c "$nocommon" "$TAPLOG" || true)
colo D start primary address=127.0.0.1:$C_PORT dirty_log="$TEST_DIR/d.dlog" ||
	fail "start primary D, made again with its log"
[ "$(grep -c "$nocommon" "$TAPLOG")" -gt "$n" ] ||
	fail "the Secondary of a cut re-protect granted a resync: $(grep "resync" "$TAPLOG" | tail -n 2)"
expect_status D sync_total_bytes $((24 * MiB))
ckpt D C 2
same "$TEST_DIR/c.img" "$TEST_DIR/d.img" "a re-protect cut by kill -9 of the new Primary, started again: the disks after the first checkpoint"
colo_destroy C
colo_destroy D

step "an old Primary that heartbeats but never ends its set: the re-protect fails within timeout"
make_image "$TEST_DIR/x.img" 4M 9
cp "$TEST_DIR/x.img" "$TEST_DIR/y.img"
colo_vbd X "colo:127.0.0.1:$NAME_PORT:$TEST_DIR/x.img"
colo_vbd Y "colo:127.0.0.1:$NAME_PORT:$TEST_DIR/y.img"
X_PORT=$(free_port)
colo X start secondary address=127.0.0.1:$X_PORT || fail "start secondary X"
colo Y start primary address=127.0.0.1:$X_PORT sync=none || fail "start primary Y"
colo X failover || fail "failover X"
colo_destroy Y
FAKE_PORT=$(free_port)
# A Secondary that accepts the hello, then only heartbeats (a frame: docs/colo-protocol.md).
"$PY" - "$FAKE_PORT" >"$TEST_DIR/fake.out" 2>&1 <<'PYEOF' &
import socket, struct, sys, time
srv = socket.socket()
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("127.0.0.1", int(sys.argv[1])))
srv.listen(1)
s, _ = srv.accept()
hello = b""
while len(hello) < 80:
    hello += s.recv(80 - len(hello))
version, flags, sid = struct.unpack(">I", hello[8:12])[0], struct.unpack(">I", hello[12:16])[0], hello[32:48]
print("hello version %d flags 0x%x" % (version, flags))
s.sendall(struct.pack(">QIi16sIIQ112s", 0x424c4b434f4c4f31, version, 0, sid, 0, 0, 0, b""))
# HEARTBEAT: magic "COLF", type 4, all else 0, and the header's CRC32C.
beat = bytes.fromhex("434f4c46000400000000000000000000000000000000000000000000000000000000000000000000620915cb00000000")
s.setblocking(False)
end = time.time() + 8
while time.time() < end:
    try:
        s.sendall(beat)
        while s.recv(65536):
            pass
    except (BlockingIOError, InterruptedError):
        pass
    except OSError:
        break
    time.sleep(0.1)
PYEOF
FAKE=$!
for _ in $(seq 100); do ss -ltn | grep -q ":$FAKE_PORT " && break; sleep 0.05; done
expect_error X 110 "tap-ctl: colo start: re-protect: the old Primary sent no DIRTY_END within 1000 ms" \
	start primary address=127.0.0.1:$FAKE_PORT timeout=1000
kill "$FAKE" 2>/dev/null || true
wait "$FAKE" 2>/dev/null || true
grep -q "^hello version [0-9]* flags 0x10$" "$TEST_DIR/fake.out" ||
	fail "the hello did not ask for a re-protect alone: $(cat "$TEST_DIR/fake.out")"
expect_status X state idle
colo_destroy X

echo PASS
