#!/bin/bash
# Pausing a replicating VBD ends its replication, safely: a paused Secondary writes its buffer
# back first (its disk then holds the last checkpoint plus its VM's writes, as after a
# failover), and a paused Primary keeps every acknowledged guest write. After unpause both are
# plain disks.
. "$(dirname "$0")/functions.sh"
log_tapdisks
requires qemu-io

make_image "$TEST_DIR/p.img" 16M 3
cp "$TEST_DIR/p.img" "$TEST_DIR/s.img"
colo_pair "$TEST_DIR/p.img" "$TEST_DIR/s.img" timeout=1000

qemu-io -f raw "$P_URI" -c 'write -P 0x21 0 1M' >/dev/null || fail "primary write"
expect_eq "$(colo_p checkpoint)" "epoch=2" "Primary checkpoint"
expect_eq "$(colo_s checkpoint)" "epoch=2" "Secondary checkpoint"
cp "$TEST_DIR/p.img" "$TEST_DIR/ckpt.img"
# After the checkpoint: a Primary write (saved old contents in the buffer) and a Secondary VM
# write of a partial block.
qemu-io -f raw "$P_URI" -c 'write -P 0x42 2M 1M' >/dev/null || fail "primary write 2"
qemu-io -f raw "$S_URI" -c 'write -P 0x63 5120 1000' >/dev/null || fail "secondary write"
"$PY" - "$TEST_DIR/ckpt.img" <<'PYEOF'
import sys
with open(sys.argv[1], 'r+b') as f:
    f.seek(5120); f.write(b'\x63' * 1000)
PYEOF
# Wait until the forwarded write is applied (the Primary's queue is empty).
for _ in $(seq 50); do
	[ "$(json_field "$(colo_p status)" inflight_bytes)" = 0 ] && break
	sleep 0.1
done

"$TAPCTL" pause -p "$S_PID" -m "$S_MINOR" || fail "pause the Secondary"
cmp "$TEST_DIR/s.img" "$TEST_DIR/ckpt.img" ||
	fail "a paused Secondary's disk is not the checkpoint plus its VM's write"
out=$(colo_s status 2>&1) && fail "colo status answered on a paused VBD: $out"
expect_eq "$out" "tap-ctl: colo status: VBD $S_MINOR is paused" "colo status while paused"
"$TAPCTL" unpause -p "$S_PID" -m "$S_MINOR" || fail "unpause the Secondary"
st=$(colo_s status)
expect_eq "$(json_field "$st" role)" "none" "the Secondary's role after unpause"
qemu-io -f raw "$S_URI" -c 'read -P 0x63 5120 1000' -c 'read -P 0x21 8192 1040384' >/dev/null ||
	fail "the unpaused Secondary does not serve its disk"

# The Primary notices the lost Secondary and keeps serving; a pause keeps its data.
for _ in $(seq 50); do
	[ "$(json_field "$(colo_p status)" state)" = broken ] && break
	sleep 0.1
done
expect_eq "$(json_field "$(colo_p status)" state)" "broken" "the Primary after the Secondary left"
qemu-io -f raw "$P_URI" -c 'write -P 0x7e 8M 64k' >/dev/null || fail "primary write while broken"
"$TAPCTL" pause -p "$P_PID" -m "$P_MINOR" || fail "pause the Primary"
"$TAPCTL" unpause -p "$P_PID" -m "$P_MINOR" || fail "unpause the Primary"
qemu-io -f raw "$P_URI" -c 'read -P 0x7e 8M 64k' -c 'read -P 0x42 2M 1M' >/dev/null ||
	fail "the Primary lost writes over a pause"
echo "pause: ok"
