#!/bin/bash
# verify=1 reads both whole disks (in tapdisk's loop) for the checksum comparison.  With a
# heartbeat timeout far shorter than that takes, neither side may take the other's silence
# meanwhile for a lost link.
. "$(dirname "$0")/functions.sh"
log_tapdisks
requires qemu-io

truncate -s 768M "$TEST_DIR/p.img"
truncate -s 768M "$TEST_DIR/s.img"
start=$(date +%s%N)
colo_pair "$TEST_DIR/p.img" "$TEST_DIR/s.img" verify=1 timeout=100
ms=$((($(date +%s%N) - start) / 1000000))
echo "start with verify=1 took $ms ms (heartbeat timeout 100 ms)"
sleep 0.3
expect_status P state running
expect_status S state running
expect_status P link up
qemu-io -f raw "$P_URI" -c 'write -P 0x42 700M 1M' >/dev/null || fail "primary write"
expect_eq "$(colo_p checkpoint)" "epoch=2" "Primary checkpoint"
expect_eq "$(colo_s checkpoint)" "epoch=2" "Secondary checkpoint"
cmp "$TEST_DIR/p.img" "$TEST_DIR/s.img" || fail "disks differ after the checkpoint"
echo "verify with a short timeout: ok"
