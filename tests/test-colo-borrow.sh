#!/bin/bash
# The Primary sends a write's frame from the guest's own buffer and completes the write once
# the link's flush is over (docs/architecture.md, step 5b).  A frame the socket did
# not take whole must keep a copy of its data, made before the write completes and the export
# reuses the buffer for the next request.  Here the Secondary is stopped, so its receive buffer
# and the Primary's send buffer fill up (short sends, then EAGAIN) while the guest writes
# 48 MiB of distinct random data, 768 writes of 64 KiB, 16 at a time; once the Secondary
# continues and a checkpoint is taken, both disks hold exactly the data written.  Plain TCP,
# then TLS (GnuTLS holds the record it could not send; the copy must not disturb it).
. "$(dirname "$0")/functions.sh"
log_tapdisks
requires_python_nbd
requires psktool

MiB=$((1 << 20))
psktool -u primary -p "$TEST_DIR/keys.psk" >/dev/null || fail "psktool"

# borrow_case TLS-WORDS PRIMARY-WORDS
borrow_case() {
	make_image "$TEST_DIR/p.img" 64M 23
	cp "$TEST_DIR/p.img" "$TEST_DIR/s.img"
	cp "$TEST_DIR/p.img" "$TEST_DIR/ref.img"
	colo_pair_create "$TEST_DIR/p.img" "$TEST_DIR/s.img"
	# A long timeout: the stopped Secondary must not break the link.
	COLO_TLS=$1 COLO_TLS_PRIMARY=$2 colo_pair_start timeout=120000
	kill -STOP "$S_PID"
	cleanup_fn "kill -CONT $S_PID 2>/dev/null"
	"$PY" - "$P_SOCK" "$TEST_DIR/ref.img" <<'PYEOF' || fail "writes on the Primary"
import nbd, random, sys
rng = random.Random(1523)
h = nbd.NBD()
h.connect_unix(sys.argv[1])
ref = open(sys.argv[2], "r+b")
offsets = [(8 << 20) + i * 65536 for i in range(768)]
rng.shuffle(offsets)
pending = []
for off in offsets:
    data = rng.randbytes(65536)
    ref.seek(off)
    ref.write(data)
    pending.append(h.aio_pwrite(nbd.Buffer.from_bytearray(bytearray(data)), off))
    while len(pending) >= 16:
        h.poll(-1)
        pending = [c for c in pending if not h.aio_command_completed(c)]
while pending:
    h.poll(-1)
    pending = [c for c in pending if not h.aio_command_completed(c)]
h.shutdown()
ref.close()
PYEOF
	# Every write completed with the Secondary stopped: more than the sockets hold is queued.
	inflight=$(colo_field P inflight_bytes)
	echo "inflight_bytes=$inflight with the Secondary stopped"
	[ "$inflight" -eq $((48 * MiB)) ] || fail "inflight_bytes $inflight: expected $((48 * MiB))"
	expect_status P state running
	kill -CONT "$S_PID"
	checkpoint_both 2
	cmp "$TEST_DIR/p.img" "$TEST_DIR/ref.img" || fail "the Primary's disk is not what was written"
	cmp "$TEST_DIR/s.img" "$TEST_DIR/ref.img" || fail "the Secondary's disk is not what was written"
	colo_pair_destroy
}

step "plain TCP"
borrow_case tls=none ""
step "tls=psk"
borrow_case "tls=psk tls_psk=$TEST_DIR/keys.psk" tls_user=primary
echo "borrowed buffers: ok"
