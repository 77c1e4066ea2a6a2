#!/bin/bash
# colo failures: exact error lines and exit codes of a refused handshake, a connect timeout
# and a failed verify; a lost link seen from either side; backpressure; a failover during a
# checkpoint on either side; malformed frames from a scripted Primary; a spilled and a full
# disk buffer.  After each, the disks hold exactly what the model says.
source "$(dirname "$0")/functions.sh"
requires qemu-io
requires_python_nbd

MiB=$((1 << 20))
SIZE=$((64 * MiB))

# Every tapdisk runs in the foreground with its log in $TAPLOG, whose colo lines are shown
# when a check fails; $TEST_DIR keeps it.
log_tapdisks colo

# A wrong message is reported and the test goes on, so that one run shows every mismatch;
# the test still fails at the end.
SOFT_CHECKS=1

expect_eq_soft() {
	[ "$1" = "$2" ] || check_fail "$3: expected '$2', got '$1'"
}

expect_match() {
	[[ "$1" =~ $2 ]] || check_fail "$3: '$1' does not match /$2/"
}

# qio_ok URI WHAT qemu-io-commands...: writes or reads with read -P checks, all must pass.
qio_ok() {
	qio_cmds "$1" -- "${@:3}" || fail "$2: $QIO_OUT"
	if grep -qi 'Pattern verification failed\|error' <<<"$QIO_OUT"; then
		fail "$2: $QIO_OUT"
	fi
}

# spill_pair SEED PATTERN SECONDARY-OPTION...: fresh images (and $ref), a pair whose Secondary
# starts with the options, then the Primary's guest writes 3 MiB of PATTERN from 8 MiB on, in
# 48 writes of 64 KiB.
spill_pair() {
	local seed=$1 pattern=$2 cmds=() i
	shift 2
	make_image "$pimg" 64M "$seed"
	cp "$pimg" "$simg"
	cp "$pimg" "$ref"
	colo_pair_create "$pimg" "$simg"
	colo S start secondary "$@" || fail "start secondary with a spill file"
	colo P start primary sync=none || fail "start primary"  # identical copies
	for i in $(seq 0 47); do cmds+=(-c "write -P $pattern $((8 * MiB + i * 65536)) 64k"); done
	qemu-io -f raw "$P_URI" "${cmds[@]}" >"$TEST_DIR/spill.out" 2>&1 ||
		fail "the Primary's writes failed: $(cat "$TEST_DIR/spill.out")"
}

now_ms() { echo $(($(date +%s%N) / 1000000)); }

pimg=$TEST_DIR/p.img
simg=$TEST_DIR/s.img
ref=$TEST_DIR/ref.img

##############################################################################################
step "handshake: disk size mismatch is refused, and the Secondary keeps listening"
make_image "$simg" 64M 1
cp "$simg" "$pimg"
make_image "$TEST_DIR/p32.img" 32M 1
COLO_PORT=$(free_port)
colo_vbd S "colo:127.0.0.1:$COLO_PORT:$simg"
colo_vbd P32 "colo:127.0.0.1:$COLO_PORT:$TEST_DIR/p32.img"
colo S start secondary || fail "start secondary"
expect_status S state connecting
expect_status S link listening
msg="disk size mismatch: the Primary's disk is 33554432 bytes, the Secondary's 67108864"
expect_error P32 22 "tap-ctl: colo start: the Secondary refused: $msg" start primary
expect_eq_soft "$(colo_field P32 last_error)" "start: the Secondary refused: $msg" "the Primary's last_error"
expect_status P32 state idle
expect_status P32 role none
expect_status P32 link none
expect_match "$(colo_field S last_error)" "^refused the Primary at 127\.0\.0\.1:[0-9]+: $msg\$" \
	"the Secondary's last_error"
expect_status S state connecting
expect_status S link listening
# A correct Primary connects to the same Secondary.
colo_vbd P "colo:127.0.0.1:$COLO_PORT:$pimg"
colo P start primary || fail "a correct Primary cannot connect after a refused one"
expect_status P state running
expect_status S state running
expect_status S last_error ""
qio_ok "$P_URI" "write" 'write -P 0x71 1M 64k'
checkpoint_both 2
same "$simg" "$pimg" "after the first checkpoint"
colo_destroy P
colo_destroy P32
colo_destroy S

step "handshake: block size mismatch is refused, and the same VBDs then start"
colo_pair_create "$pimg" "$simg"
colo S start secondary block_size=8192 || fail "start secondary"
msg="block size mismatch: the Primary uses 4096 bytes, the Secondary 8192"
expect_error P 22 "tap-ctl: colo start: the Secondary refused: $msg" start primary block_size=4096
expect_match "$(colo_field S last_error)" "^refused the Primary at 127\.0\.0\.1:[0-9]+: $msg\$" \
	"the Secondary's last_error"
expect_status S link listening
expect_status P state idle
colo P start primary block_size=8192 || fail "start primary block_size=8192 after a refusal"
expect_status P state running
expect_status P block_size 8192
expect_status S state running
colo_pair_destroy

step "connect_timeout=500 with nobody listening"
COLO_PORT=$(free_port)
colo_vbd P "colo:127.0.0.1:$COLO_PORT:$pimg"
t0=$(now_ms)
expect_error P 110 \
	"tap-ctl: colo start: no Secondary at 127.0.0.1:$COLO_PORT within 500 ms (connect to 127.0.0.1:$COLO_PORT: Connection refused)" \
	start primary connect_timeout=500
elapsed=$(($(now_ms) - t0))
[ "$elapsed" -ge 450 ] && [ "$elapsed" -le 3000 ] ||
	check_fail "start with connect_timeout=500 took $elapsed ms (expected 0.5 to 3 s)"
echo "    gave up after $elapsed ms"
expect_status P state idle
expect_status P role none

step "the Primary retries until the Secondary listens"
colo_vbd S "colo:127.0.0.1:$COLO_PORT:$simg"
colo P start primary connect_timeout=10000 >"$TEST_DIR/start.out" 2>&1 &
spid=$!
sleep 0.5
expect_status P state connecting
expect_status P link connecting
colo S start secondary || fail "start secondary"
wait "$spid" || fail "start primary while the Secondary came up late: $(cat "$TEST_DIR/start.out")"
expect_status P state running
expect_status P link up
# Refused attempts before the Secondary listened are no error of the running link.
expect_eq_soft "$(colo_field P last_error)" "" "the running Primary's last_error"
colo_pair_destroy

##############################################################################################
step "verify=1 on identical disks"
make_image "$pimg" 64M 2
cp "$pimg" "$simg"
colo_pair "$pimg" "$simg" verify=1
expect_status P state running
expect_status S state running
qio_ok "$P_URI" "write after verify" 'write -P 0x72 9M 64k'
checkpoint_both 2
same "$simg" "$pimg" "after verify and a checkpoint"
colo_pair_destroy

step "verify=1 on disks differing in one byte at 5 MiB + 3"
"$PY" -c 'import sys; f = open(sys.argv[1], "r+b"); f.seek(5 * 2**20 + 3); b = f.read(1); f.seek(-1, 1); f.write(bytes([b[0] ^ 0xff]))' "$simg"
cp "$simg" "$ref"
cp "$pimg" "$TEST_DIR/pref.img"
colo_pair_create "$pimg" "$simg"
colo S start secondary verify=1 || fail "start secondary"
rc=0
err=$(colo P start primary verify=1 2>&1) || rc=$?
[ "$rc" != 0 ] || fail "start primary verify=1 succeeded on differing disks"
expect_eq_soft "$rc" 84 "exit status of a failed verify (EILSEQ)"
expect_match "$err" "^tap-ctl: colo start: .*the disks differ in the 1048576-byte chunk at byte offset 5242880" \
	"the Primary's error line"
expect_status P state idle
expect_status P role none
expect_eq_soft "$(colo_field S last_error)" \
	"verify: the disks differ in the 1048576-byte chunk at byte offset 5242880" "the Secondary's last_error"
# A failed start: the Secondary is idle again too (tests/test-colo-verify-retry.sh retries).
wait_status S state idle 20
expect_status S link none
same "$simg" "$ref" "the Secondary's disk after a failed verify"
same "$pimg" "$TEST_DIR/pref.img" "the Primary's disk after a failed verify"
colo_pair_destroy

##############################################################################################
step "link loss: kill -9 the Secondary; the Primary goes on alone"
make_image "$pimg" 64M 3
cp "$pimg" "$simg"
colo_pair "$pimg" "$simg" timeout=1000
qio_ok "$P_URI" "epoch 1 writes" 'write -P 0x21 0 64k'
checkpoint_both 2
# An empty epoch: the dirty count below is then the same whether it covers the last epoch or
# the last two (the scenarios test pins down which).
checkpoint_both 3
# Epoch 3: [1M, 1M+48k) = 12 blocks, in two overlapping writes.
qio_ok "$P_URI" "epoch 3 writes" 'write -P 0x22 1M 32k' 'write -P 0x23 1064960 32k'
wait_applied
kill -9 "$S_PID"
wait_status P state broken 3
echo "    the Primary was broken after $WAITED_MS ms"
expect_status P link lost
expect_match "$(colo_field P last_error)" "^replication link to 127\.0\.0\.1:$COLO_PORT lost: ." "the Primary's last_error"
expect_status P inflight_bytes 0
# It keeps serving: 2 more blocks and 1 block (3M+100..3M+1100, RMW to [3M, 3M+1536)).
qio_ok "$P_URI" "writes while broken" 'write -P 0x24 2M 8k' 'write -P 0x25 3145828 1000' \
	'read -P 0x24 2M 8k' 'read -P 0x25 3145828 1000' 'read -P 0x22 1M 16k' 'read -P 0x23 1064960 32k'
expect_error P 107 "tap-ctl: colo checkpoint: prepare_checkpoint: not replicating (broken, link lost)" checkpoint
colo P failover || fail "failover on the broken Primary"
expect_status P state failed-over
expect_status P dirty_blocks $((12 + 2 + 1))
qio_ok "$P_URI" "write after failover" 'write -P 0x26 2M 4k' 'read -P 0x26 2M 4k'
expect_status P dirty_blocks $((12 + 2 + 1))
colo_destroy P

##############################################################################################
step "link loss: kill -STOP the Primary; the Secondary notices and keeps its buffer"
make_image "$pimg" 64M 4
cp "$pimg" "$simg"
cp "$pimg" "$ref"
colo_pair "$pimg" "$simg" timeout=1000
qio_ok "$P_URI" "epoch 1" 'write -P 0x31 4M 64k'
qemu-io -f raw "$ref" -c 'write -P 0x31 4M 64k' >/dev/null
checkpoint_both 2
# Epoch 2: the Primary saves 16 + 1 blocks, the Secondary VM writes 2 + 1 others.
qio_ok "$P_URI" "epoch 2, Primary" 'write -P 0x32 4227072 64k' 'write -P 0x33 10M 4k'
qio_ok "$S_URI" "epoch 2, Secondary VM" 'write -P 0x41 4M 8k' 'write -P 0x42 20971530 100'
qemu-io -f raw "$ref" -c 'write -P 0x41 4M 8k' -c 'write -P 0x42 20971530 100' >/dev/null
wait_applied
expect_status S buffer_blocks 20
same_view "$S_URI" "$ref" "the Secondary's view before the Primary stops"
kill -STOP "$P_PID"
cleanup_fn "kill -CONT $P_PID 2>/dev/null"
sleep 0.3
expect_status S state running
wait_status S state broken 3
echo "    the Secondary was broken $((WAITED_MS + 300)) ms after the Primary stopped"
expect_status S link lost
expect_match "$(colo_field S last_error)" "nothing heard for [0-9]+ ms \(timeout 1000 ms\)" "the Secondary's last_error"
expect_status S buffer_blocks 20
same_view "$S_URI" "$ref" "the Secondary's view once broken"
colo S failover || fail "failover on the broken Secondary"
expect_status S state failed-over
same "$simg" "$ref" "the Secondary's file after failover (last checkpoint + its writes)"
kill -CONT "$P_PID"
wait_status P link lost 5
colo_pair_destroy

##############################################################################################
step "backpressure: queue_limit=1M holds the Primary's writes while the Secondary is stopped"
make_image "$pimg" 64M 5
cp "$pimg" "$simg"
colo_pair "$pimg" "$simg" queue_limit=1M timeout=10000
kill -STOP "$S_PID"
cleanup_fn "kill -CONT $S_PID 2>/dev/null"
cmds=()
for i in $(seq 0 63); do cmds+=(-c "write -P 0x51 $((i * 65536)) 64k"); done
qemu-io -f raw "$P_URI" "${cmds[@]}" >"$TEST_DIR/bg.out" 2>&1 &
qpid=$!
sleep 1
kill -0 "$qpid" 2>/dev/null || check_fail "4 MiB of writes finished while the Secondary was stopped"
inflight=$(colo_field P inflight_bytes)
echo "    inflight_bytes=$inflight after 1 s"
[ "$inflight" -gt 0 ] && [ "$inflight" -le $((MiB + 65536)) ] ||
	check_fail "inflight_bytes $inflight: expected 1..$((MiB + 65536))"
expect_status P state running
kill -CONT "$S_PID"
wait "$qpid" || fail "the writes failed: $(cat "$TEST_DIR/bg.out")"
grep -q 'error\|fail' "$TEST_DIR/bg.out" && fail "the writes failed: $(cat "$TEST_DIR/bg.out")"
checkpoint_both 2
same "$simg" "$pimg" "both files after backpressure and a checkpoint"
qio_ok "$P_URI" "read back" 'read -P 0x51 0 4M'

step "failover on the Primary cancels a checkpoint waiting for the Secondary"
kill -STOP "$S_PID"
qio_ok "$P_URI" "write" 'write -P 0x52 5M 64k'
colo P checkpoint >"$TEST_DIR/ckpt.out" 2>&1 &
cpid=$!
sleep 0.3
kill -0 "$cpid" 2>/dev/null || fail "the checkpoint ended without the Secondary: $(cat "$TEST_DIR/ckpt.out")"
colo P failover || fail "failover on the Primary during a checkpoint"
rc=0
wait "$cpid" || rc=$?
expect_eq_soft "$rc" 125 "exit status of the cancelled checkpoint"
expect_eq_soft "$(cat "$TEST_DIR/ckpt.out")" \
	"tap-ctl: colo checkpoint: prepare_checkpoint: cancelled by failover" "the cancelled checkpoint's line"
expect_status P state failed-over
expect_status P inflight_bytes 0
qio_ok "$P_URI" "the Primary serves after failover" 'write -P 0x53 6M 4k' 'read -P 0x53 6M 4k'
kill -CONT "$S_PID"
# The Primary's GOODBYE went out behind what the stopped Secondary had not read: it sees the
# link closed, or lost if the GOODBYE did not fit before the Primary closed.
for _ in $(seq 100); do
	case $(colo_field S link) in closed | lost) break ;; esac
	sleep 0.05
done
expect_match "$(colo_field S link)" '^(closed|lost)$' "the Secondary's link after the Primary's failover"
colo_pair_destroy

##############################################################################################
step "failover on the Secondary while its checkpoint waits for a marker that does not come"
# The Primary is alive (its tapdisk heartbeats) but never checkpoints, as when its VM hung.
# tap-ctl.md: the driver bounds every colo command with its own timeouts.  The failover must
# end: the pending checkpoint fails, and the disk holds the last checkpoint plus the Secondary
# VM's writes.
make_image "$pimg" 64M 10
cp "$pimg" "$simg"
cp "$pimg" "$ref"
colo_pair "$pimg" "$simg" timeout=1000
qio_ok "$P_URI" "epoch 1 write" 'write -P 0x54 7M 64k'
qio_ok "$S_URI" "Secondary VM write" 'write -P 0x55 9M 8k'
qemu-io -f raw "$ref" -c 'write -P 0x55 9M 8k' >/dev/null
wait_applied
timeout 20 "$TAPCTL" colo -p "$S_PID" -m "$S_MINOR" checkpoint >"$TEST_DIR/ckpt.out" 2>&1 &
cpid=$!
sleep 0.3
kill -0 "$cpid" 2>/dev/null || fail "the Secondary's checkpoint ended without a marker: $(cat "$TEST_DIR/ckpt.out")"
t0=$(now_ms)
rc=0
out=$(timeout 6 "$TAPCTL" colo -p "$S_PID" -m "$S_MINOR" failover 2>&1) || rc=$?
elapsed=$(($(now_ms) - t0))
if [ "$rc" = 124 ]; then
	check_fail "failover on the Secondary did not end within 6 s while a checkpoint waited (status: $(colo S status))"
	kill -9 "$S_PID" "$P_PID"
	wait "$cpid" 2>/dev/null || true
else
	[ "$rc" = 0 ] || fail "failover on the Secondary: exit $rc: $out"
	echo "    failover took $elapsed ms"
	rc=0
	wait "$cpid" || rc=$?
	[ "$rc" != 0 ] || check_fail "the Secondary's checkpoint succeeded without the Primary's marker: $(cat "$TEST_DIR/ckpt.out")"
	expect_status S state failed-over
	same "$simg" "$ref" "the Secondary's file after failover (last checkpoint + its writes)"
	colo_pair_destroy
fi

step "a failover queued behind the Secondary's checkpoint runs once the marker comes"
# colo.h: a failover asked for during do_checkpoint runs after it.  The Secondary applies
# the marker, so the Primary's checkpoint is acknowledged before the link closes.
make_image "$pimg" 64M 12
cp "$pimg" "$simg"
colo_pair "$pimg" "$simg" timeout=1000
qio_ok "$P_URI" "epoch 1 write" 'write -P 0x56 7M 64k'
qio_ok "$S_URI" "Secondary VM write" 'write -P 0x57 9M 8k'
wait_applied
timeout 20 "$TAPCTL" colo -p "$S_PID" -m "$S_MINOR" checkpoint >"$TEST_DIR/ckpt.out" 2>&1 &
cpid=$!
sleep 0.3
timeout 20 "$TAPCTL" colo -p "$S_PID" -m "$S_MINOR" failover >"$TEST_DIR/failover.out" 2>&1 &
fpid=$!
sleep 0.3
kill -0 "$fpid" 2>/dev/null || fail "the failover did not wait for the checkpoint: $(cat "$TEST_DIR/failover.out")"
rc=0
out=$(timeout 20 "$TAPCTL" colo -p "$P_PID" -m "$P_MINOR" checkpoint 2>&1) || rc=$?
[ "$rc" = 0 ] && [ "$out" = epoch=2 ] ||
	check_fail "the Primary's checkpoint, which the Secondary applied before its failover: exit $rc: $out"
rc=0
wait "$cpid" || rc=$?
[ "$rc" = 0 ] || fail "the Secondary's checkpoint: exit $rc: $(cat "$TEST_DIR/ckpt.out")"
expect_eq "$(cat "$TEST_DIR/ckpt.out")" epoch=2 "the Secondary's checkpoint"
rc=0
wait "$fpid" || rc=$?
[ "$rc" = 0 ] || fail "the queued failover: exit $rc: $(cat "$TEST_DIR/failover.out")"
expect_status S state failed-over
expect_status S epoch 2
# The checkpoint dropped the Secondary VM's write: the disk is the Primary's.
same "$simg" "$pimg" "the Secondary's file after the checkpoint and failover"
wait_status P link closed 3  # the failover said GOODBYE
colo_pair_destroy

##############################################################################################
# A python Primary speaks the wire protocol (include/colo-protocol.h) to a real Secondary.
cat >"$TEST_DIR/fakeprimary.py" <<'PYEOF'
import os, socket, struct, sys, time

def table():
    t = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        t.append(c)
    return t
T = table()

def crc32c(data, crc=0):
    crc ^= 0xffffffff
    for b in data:
        crc = T[(crc ^ b) & 0xff] ^ (crc >> 8)
    return crc ^ 0xffffffff

assert crc32c(b"123456789") == 0xE3069283

MAGIC, FRAME_MAGIC = 0x424c4b434f4c4f31, 0x434f4c46
WRITE, EPOCH, ACK, HEARTBEAT, ERROR = 1, 2, 3, 4, 5

def hello(size, version=5, block_size=4096):
    sid = os.urandom(16)
    h = struct.pack(">QIIQII16sI16sQI", MAGIC, version, 0, size, block_size, 0, sid, 0,
                    bytes(16), 0, 0)
    assert len(h) == 80
    return h, sid

def frame(ftype, seq, epoch, offset, payload=b"", magic=FRAME_MAGIC, data_crc=None):
    if data_crc is None:
        data_crc = crc32c(payload) if payload else 0
    hdr = struct.pack(">IHHQQQII", magic, ftype, 0, seq, epoch, offset, len(payload), data_crc)
    return hdr + struct.pack(">II", crc32c(hdr), 0) + payload

def recv_exact(s, n):
    out = b""
    while len(out) < n:
        b = s.recv(n - len(out))
        if not b:
            raise EOFError("closed after %d of %d bytes" % (len(out), n))
        out += b
    return out

def connect(port, size, version=5):
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    h, sid = hello(size, version)
    s.sendall(h)
    r = recv_exact(s, 160)
    magic, ver, status, rsid, rflags, _, repoch, msg = struct.unpack(">QIi16sIIQ112s", r)
    assert magic == MAGIC, hex(magic)
    assert rsid == sid, "the reply names another session"
    return s, status, msg.split(b"\0")[0].decode()

def read_error_frame(s):
    """Frames until the Secondary closes; returns the ERROR frame's (errno, message)."""
    while True:
        hdr = recv_exact(s, 48)
        magic, ftype, flags, seq, epoch, offset, length, dcrc, hcrc, res = \
            struct.unpack(">IHHQQQIIII", hdr)
        assert magic == FRAME_MAGIC and hcrc == crc32c(hdr[:40]), "bad frame from the Secondary"
        payload = recv_exact(s, length)
        assert crc32c(payload) == dcrc if length else dcrc == 0
        if ftype == ERROR:
            return offset, payload.decode()
        assert ftype == HEARTBEAT, "unexpected frame type %d" % ftype

port, size, case = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
if case == "version4":
    s, status, msg = connect(port, size, version=4)
    assert status != 0, "a version 4 hello was accepted"
    print("status=%d message=%s" % (status, msg))
    s.close()
    sys.exit(0)
if case == "drip":
    # A valid hello, one byte every 250 ms: the whole of it would take 20 s.
    s = socket.create_connection(("127.0.0.1", port), timeout=60)
    h, _ = hello(size)
    sent = 0
    try:
        for b in h:
            s.sendall(bytes([b]))
            sent += 1
            time.sleep(0.25)
            s.setblocking(False)
            try:
                if s.recv(1) == b"":
                    break
            except BlockingIOError:
                pass
            finally:
                s.setblocking(True)
    except (BrokenPipeError, ConnectionResetError):
        pass
    print("closed after %d of %d bytes" % (sent, len(h)))
    s.close()
    sys.exit(0)
if case == "hello":
    s, status, msg = connect(port, size)
    assert status == 0, "a correct hello after a refused one: %d %s" % (status, msg)
    print("status=0")
    s.close()
    sys.exit(0)

s, status, msg = connect(port, size)
assert status == 0, (status, msg)
data = bytes([0x99]) * 4096
if case == "badmagic":
    s.sendall(frame(WRITE, 1, 1, 1 << 20, data, magic=0x12345678))
elif case == "badcrc":
    s.sendall(frame(WRITE, 1, 1, 1 << 20, data, data_crc=crc32c(data) ^ 1))
elif case == "pastend":
    s.sendall(frame(WRITE, 1, 1, size - 2048, data))
elif case == "truncated":
    s.sendall(frame(WRITE, 1, 1, 1 << 20, data)[:20])
    s.close()
    print("sent 20 bytes and closed")
    sys.exit(0)
err, msg = read_error_frame(s)
print("ERROR frame: errno %d, %s" % (err, msg))
s.close()
PYEOF

# malformed CASE EXPECTED_ERRNO LAST_ERROR_SUFFIX
malformed() {
	local case=$1 errno=${2:-} suffix=${3:-} out
	step "malformed frames from a scripted Primary: $case"
	make_image "$simg" 64M 6
	cp "$simg" "$ref"
	COLO_PORT=$(free_port)
	colo_vbd S "colo:127.0.0.1:$COLO_PORT:$simg"
	colo S start secondary || fail "start secondary"
	out=$("$PY" "$TEST_DIR/fakeprimary.py" "$COLO_PORT" "$SIZE" "$case" 2>&1) ||
		fail "$case: the scripted Primary failed: $out"
	echo "    $out"
	if [ "$case" = version4 ]; then
		expect_match "$out" "^status=93 message=protocol version 4, expected 5" "$case: the hello reply"
		expect_match "$(colo_field S last_error)" \
			"^refused the Primary at 127\.0\.0\.1:[0-9]+: protocol version 4, expected 5\$" \
			"$case: the Secondary's last_error"
		expect_status S state connecting
		expect_status S link listening
		# Still listening: a correct hello is accepted (then the script hangs up).
		out=$("$PY" "$TEST_DIR/fakeprimary.py" "$COLO_PORT" "$SIZE" hello 2>&1) ||
			fail "a correct hello after a refused one: $out"
		wait_status S link lost 3
		expect_match "$(colo_field S last_error)" \
			"^replication link to 127\.0\.0\.1:[0-9]+ lost: the Primary closed the connection\$" \
			"$case: the Secondary's last_error after the correct hello"
	else
		[ -z "$errno" ] || expect_match "$out" "^ERROR frame: errno $errno, " "$case: the ERROR frame"
		wait_status S link lost 3
		expect_match "$(colo_field S last_error)" \
			"^replication link to 127\.0\.0\.1:[0-9]+ lost: $suffix\$" "$case: the Secondary's last_error"
	fi
	expect_status S state broken
	expect_status S buffer_blocks 0
	same "$simg" "$ref" "$case: the Secondary's image"
	same_view "$S_URI" "$ref" "$case: reads through the Secondary"
	colo_destroy S
}
malformed badmagic 71 "bad frame: bad frame magic 0x12345678"
malformed badcrc 74 "bad frame: WRITE of 4096 bytes at 1048576: payload checksum mismatch"
malformed pastend 34 "bad frame: WRITE of 4096 bytes at 67106816: past the end of the 67108864-byte disk"
malformed truncated "" "the Primary closed the connection"
malformed version4

step "a Primary that drips its hello is dropped once timeout has passed since it connected"
COLO_PORT=$(free_port)
colo_vbd S "colo:127.0.0.1:$COLO_PORT:$simg"
colo S start secondary timeout=1000 || fail "start secondary"
out=$("$PY" "$TEST_DIR/fakeprimary.py" "$COLO_PORT" "$SIZE" drip 2>&1) || fail "drip: $out"
echo "    $out"
n=$(sed -n 's/^closed after \([0-9]*\) of 80 bytes$/\1/p' <<<"$out")
# Without an overall deadline each byte restarted the wait: all 80 went in, over 20 s.
[ -n "$n" ] && [ "$n" -lt 80 ] || fail "the dripping Primary was not dropped before its hello was whole: $out"
expect_status S state connecting
expect_status S link listening
out=$("$PY" "$TEST_DIR/fakeprimary.py" "$COLO_PORT" "$SIZE" hello 2>&1) ||
	fail "a correct hello after the dripping one: $out"
colo_destroy S

##############################################################################################
step "spill: a buffer larger than ram_limit goes on in the spill file"
spill_pair 8 0x62 ram_limit=1M "spill=$TEST_DIR/spill" spill_limit=4M
wait_applied
expect_status S buffer_blocks 768
expect_status S buffer_bytes $((3 * MiB))
spilled=$(stat -c %s "$TEST_DIR/spill")
[ "$spilled" -ge $((2 * MiB)) ] || check_fail "the spill file holds $spilled bytes, expected 2 MiB"
same_view "$S_URI" "$ref" "the Secondary's view with 2 MiB of its buffer spilled"
# The Secondary VM writes over saved blocks, in RAM and in the spill file, unaligned too.
sw=('write -P 0x63 8392804 5000' 'write -P 0x64 10M 64k' 'write -P 0x65 11468700 1000')
qio_ok "$S_URI" "Secondary VM writes" "${sw[@]}"
qemu-io -f raw "$ref" -c "${sw[0]}" -c "${sw[1]}" -c "${sw[2]}" >/dev/null
same_view "$S_URI" "$ref" "the Secondary's view after its writes over spilled blocks"
expect_status S state running
expect_status P state running
colo S failover || fail "failover on the Secondary"
same "$simg" "$ref" "the Secondary's file after failover from a spilled buffer"
colo_pair_destroy

##############################################################################################
step "spill: a full disk buffer breaks replication before the disk loses saved contents"
# 3 MiB of new data; the buffer holds 2 MiB.
spill_pair 7 0x61 ram_limit=1M "spill=$TEST_DIR/spill" spill_limit=1M timeout=5000
wait_status P state broken 10
expect_status P link lost
expect_match "$(colo_field P last_error)" "disk buffer" "the Primary's last_error"
echo "    the Primary: $(colo_field P last_error)"
wait_status S state broken 5
expect_match "$(colo_field S last_error)" "disk buffer" "the Secondary's last_error"
[ "$(colo_field S buffer_blocks)" -le 512 ] || check_fail "buffer_blocks $(colo_field S buffer_blocks) > 512"
colo S failover || fail "failover on the Secondary"
same "$simg" "$ref" "the Secondary's file after failover (no checkpoint was taken)"
same_view "$S_URI" "$ref" "the Secondary's view after failover"
qio_ok "$P_URI" "the Primary still reads its writes" "read -P 0x61 8M 3M"
colo_pair_destroy

[ "$FAILED_CHECKS" = 0 ] || fail "$FAILED_CHECKS checks failed (see above)"
echo "PASS: colo handshake refusals, connect timeout, verify, lost links, backpressure, bad frames, full buffer"
