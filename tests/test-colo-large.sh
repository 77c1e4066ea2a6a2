#!/bin/bash
# Large requests: a 64 MiB guest write is forwarded as one frame, even with a queue limit far
# below it (a write larger than queue_limit goes alone when the queue is empty; nothing is
# ever split or dropped), and the Secondary's buffer saves all of it.
. "$(dirname "$0")/functions.sh"
log_tapdisks
requires qemu-io
requires_python_nbd

make_image "$TEST_DIR/p.img" 160M 11
cp "$TEST_DIR/p.img" "$TEST_DIR/s.img"
cp "$TEST_DIR/p.img" "$TEST_DIR/orig.img"
colo_pair "$TEST_DIR/p.img" "$TEST_DIR/s.img" queue_limit=1M

# Two 64 MiB requests in flight at once (libnbd sends each as one NBD request, the export's
# maximum): the second waits for the first's acknowledgement.
"$PY" - "$P_SOCK" <<'PYEOF' || fail "64 MiB writes on the Primary"
import nbd, sys
h = nbd.NBD()
h.connect_unix(sys.argv[1])
c1 = h.aio_pwrite(nbd.Buffer.from_bytearray(bytearray(b'\x3c' * (64 << 20))), 512)
c2 = h.aio_pwrite(nbd.Buffer.from_bytearray(bytearray(b'\x4d' * (64 << 20))), 80 << 20)
pending = {c1, c2}
while pending:
    pending = {c for c in pending if not h.aio_command_completed(c)}
    if pending:
        h.poll(-1)
h.flush()
h.shutdown()
PYEOF
st=$(colo_p status)
expect_eq "$(json_field "$st" state)" "running" "Primary state"
expect_eq "$(json_field "$st" sent_bytes)" "$((128 << 20))" "bytes forwarded"
expect_eq "$(colo_p checkpoint)" "epoch=2" "Primary checkpoint"
st=$(colo_s status)
# 512 + 64 MiB touches 16385 blocks; 80 MiB + 64 MiB exactly 16384.
expect_eq "$(json_field "$st" buffer_blocks)" "32769" "blocks saved on the Secondary"
cmp "$TEST_DIR/p.img" "$TEST_DIR/s.img" || fail "the Secondary's disk lacks the forwarded writes"
qemu-img compare -q -f raw -F raw "$TEST_DIR/orig.img" "$S_URI" ||
	fail "the Secondary's view is not the checkpoint before the writes"

# Failover before the Secondary's checkpoint: the disk goes back to the original.
colo_s failover || fail "failover"
cmp "$TEST_DIR/s.img" "$TEST_DIR/orig.img" || fail "failover did not restore the checkpoint"
echo "large writes: ok"
