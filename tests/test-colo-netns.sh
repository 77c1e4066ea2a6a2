#!/bin/bash
# Two hosts on one machine: the Primary and the Secondary tapdisk each in a network namespace
# of its own, joined by a veth pair.  Over a lossy, slow link (tc netem) replication stays
# exact; when the link goes down (ip link set down) both sides notice within the timeout, the
# Primary keeps serving; when it comes back up, both started again resync exactly the extents
# written since the last common checkpoint; down again, the Secondary's failover gives exactly
# the last checkpoint plus its VM's writes.  Needs root and network namespaces: SKIP otherwise.
. "$(dirname "$0")/functions.sh"
source "$(dirname "$0")/netns-functions.sh"
log_tapdisks
requires qemu-io
requires tc

netns_pair colo$$ 10.199.0

# A lossy, slow path from the Primary: 5 ms of delay with jitter, 2 % loss, some reordering;
# where the kernel has no netem, a narrow one (tbf, 200 Mbit/s), so queues fill on the way.
if tc -n "$nsp" qdisc add dev "$devp" root netem delay 5ms 2ms loss 2% reorder 5% 50% \
	2>/dev/null; then
	link="netem: 5 ms delay, 2 % loss, reordering"
else
	if tc -n "$nsp" qdisc add dev "$devp" root tbf rate 200mbit burst 64kb latency 100ms; then
		link="tbf: 200 Mbit/s (this kernel has no netem)"
	else
		link="veth, unshaped (this kernel has neither netem nor tbf)"
	fi
fi
echo "link: $link"

make_image "$TEST_DIR/p.img" 32M 5
cp "$TEST_DIR/p.img" "$TEST_DIR/s.img"
netns_colo_pair "$TEST_DIR/p.img" "$TEST_DIR/s.img"

colo_s start secondary timeout=1500 peer=10.199.0.1 || fail "start secondary"
colo_p start primary timeout=1500 verify=1 || fail "start primary"

# Writes over that link, checkpoints, a Secondary VM write: exact at every checkpoint.
for i in 1 2 3; do
	qemu-io -f raw "$P_URI" -c "write -P 0x1$i $((i * 3))M 2M" -c "write -P 0x2$i $((i * 3 + 1))M 512k" \
		>/dev/null || fail "primary writes, round $i"
	expect_eq "$(colo_p checkpoint)" "epoch=$((i + 1))" "Primary checkpoint $i"
	expect_eq "$(colo_s checkpoint)" "epoch=$((i + 1))" "Secondary checkpoint $i"
	cmp "$TEST_DIR/p.img" "$TEST_DIR/s.img" || fail "disks differ after checkpoint $i ($link)"
done
echo "exact over the link ($link)"

# The link goes down, with writes since the last checkpoint; both sides notice within the
# timeout, the Primary keeps serving.
qemu-io -f raw "$P_URI" -c 'write -P 0x6f 24M 1M' >/dev/null || fail "primary write after the checkpoint"
ip -n "$nsp" link set "$devp" down
wait_status P state broken 10 || fail "the Primary did not notice the link going down"
wait_status S state broken 10 || fail "the Secondary did not notice the link going down"
expect_eq "$(json_field "$(colo_p status)" link)" "lost" "the Primary's link"
qemu-io -f raw "$P_URI" -c 'write -P 0x70 26M 64k' -c 'read -P 0x70 26M 64k' >/dev/null ||
	fail "the Primary stopped serving"
echo "link down: both sides noticed"

# The link comes back (ip link set up): both sides started again, the resync sends exactly the
# extents written since the last checkpoint both completed (3): 24M and 26M, 2 MiB.
ip -n "$nsp" link set "$devp" up
for _ in $(seq 100); do # EBUSY while the last run's writes finish
	out=$(colo_s start secondary timeout=1500 peer=10.199.0.1 2>&1) && break
	case $out in *"in flight"*) sleep 0.1 ;; *) fail "start secondary again: $out" ;; esac
done
colo_p start primary timeout=1500 || fail "start primary again"
expect_eq "$(colo_field P sync_total_bytes) $(colo_field P sync_sent_bytes)" "2097152 2097152" \
	"the resync's bytes (the extents at 24M and 26M)"
expect_eq "$(colo_p checkpoint)" "epoch=5" "Primary checkpoint after the resync"
expect_eq "$(colo_s checkpoint)" "epoch=5" "Secondary checkpoint after the resync"
cmp "$TEST_DIR/p.img" "$TEST_DIR/s.img" || fail "disks differ after the resync ($link)"
echo "link up: the resync sent exactly the 2 MiB written since checkpoint 3"

# Down again, after a Secondary VM write and a Primary write past the checkpoint: the
# Secondary's failover gives exactly the checkpoint plus its VM's write.
cp "$TEST_DIR/p.img" "$TEST_DIR/expected.img"
qemu-io -f raw "$S_URI" -c 'write -P 0x5e 20M 100k' >/dev/null || fail "secondary write"
"$PY" -c 'import sys; f = open(sys.argv[1], "r+b"); f.seek(20 << 20); f.write(b"\x5e" * 102400)' \
	"$TEST_DIR/expected.img"
qemu-io -f raw "$P_URI" -c 'write -P 0x71 28M 1M' >/dev/null || fail "primary write after the checkpoint"
ip -n "$nsp" link set "$devp" down
wait_status P state broken 10 || fail "the Primary did not notice the link going down again"
wait_status S state broken 10 || fail "the Secondary did not notice the link going down again"
colo_s failover || fail "failover"
cmp "$TEST_DIR/s.img" "$TEST_DIR/expected.img" ||
	fail "after failover the Secondary's disk is not the checkpoint plus its VM's write"
echo "link down again: failover exact"
