#!/bin/bash
# pause_target=: with a Secondary slower than the guest (a 80 Mbit/s link between two network
# namespaces, tc tbf), the Primary bounds the bytes not yet acknowledged to the Secondary's
# measured apply rate times the target, so that a checkpoint's prepare waits about that long;
# without it the backlog grows to queue_limit.  Checks, from status while the guest writes
# 1 MiB at a time as fast as it may: the bound in force is the formula of the rate shown
# (at least 1M, at most queue_limit), the rate is what the link can carry, the backlog never
# passes the bound, and the disks are equal after the checkpoint.  Needs root, network
# namespaces and tbf: SKIP otherwise.
. "$(dirname "$0")/functions.sh"
source "$(dirname "$0")/netns-functions.sh"
log_tapdisks
requires qemu-io
requires tc

netns_pair pace$$ 10.198.0
# 80 Mbit/s from the Primary: 10 MB/s, the Secondary's apply rate as the Primary sees it.
if ! tc -n "$nsp" qdisc add dev "$devp" root tbf rate 80mbit burst 32kb latency 400ms; then
	echo "SKIP: this kernel has no tbf"
	exit 77
fi
LINK_RATE=10000000

# pair N: a Secondary in its namespace and a Primary in its own, on equal images pN.img and
# sN.img, over a port of their own (netns_colo_pair).
pair() {
	make_image "$TEST_DIR/p$1.img" 64M 5
	cp "$TEST_DIR/p$1.img" "$TEST_DIR/s$1.img"
	netns_colo_pair "$TEST_DIR/p$1.img" "$TEST_DIR/s$1.img"
}

# run PATTERN TARGET_MS: 24 MiB written 1 MiB at a time from 8M on, while status is sampled;
# sets MAX_INFLIGHT, MAX_LIMIT, RATE (the last measured) and checks every sample.
run() {
	local pat=$1 target=$2 cmds=() st inflight limit rate want writer samples=0 done=0
	for i in $(seq 0 23); do cmds+=(-c "write -P $pat $((8 + i))M 1M"); done
	qemu-io -f raw "$P_URI" "${cmds[@]}" >/dev/null &
	writer=$!
	MAX_INFLIGHT=0 MAX_LIMIT=0 RATE=0
	# Sampled while the guest writes, and once after: what it left to the link.
	while :; do
		kill -0 "$writer" 2>/dev/null || done=1
		st=$(colo_p status) || fail "status of the Primary"
		read -r inflight limit rate <<<"$("$PY" -c '
import json, sys
s = json.loads(sys.argv[1])
print(s["inflight_bytes"], s["inflight_limit"], s["apply_rate"])' "$st")"
		samples=$((samples + 1))
		if [ "$target" = 0 ]; then
			want=$((64 << 20))
		else
			want=$((rate / 1000 * target))
			[ "$want" -lt $((1 << 20)) ] && want=$((1 << 20))
			[ "$want" -gt $((64 << 20)) ] && want=$((64 << 20))
		fi
		[ "$limit" = "$want" ] ||
			fail "inflight_limit $limit with apply_rate $rate and pause_target=$target: want $want ($st)"
		[ "$inflight" -le "$limit" ] || fail "inflight_bytes $inflight over inflight_limit $limit ($st)"
		[ "$inflight" -gt "$MAX_INFLIGHT" ] && MAX_INFLIGHT=$inflight
		[ "$limit" -gt "$MAX_LIMIT" ] && MAX_LIMIT=$limit
		[ "$rate" -gt 0 ] && RATE=$rate
		[ "$done" = 1 ] && break
		sleep 0.1
	done
	wait "$writer" || fail "the guest's writes failed"
	echo "pause_target=$target: $samples samples, backlog at most $MAX_INFLIGHT, bound at most $MAX_LIMIT, apply_rate $RATE"
}

pair 1
colo_s start secondary timeout=30000 peer=10.198.0.1 || fail "start secondary"
colo_p start primary timeout=30000 sync=none pause_target=200 || fail "start primary"
expect_eq "$(colo_field P inflight_limit) $(colo_field P apply_rate)" "1048576 0" \
	"before any measure, the bound is the floor"

step "pause_target=200: the backlog follows the Secondary's rate"
run 0x31 200
[ "$RATE" -gt 0 ] || fail "no apply rate was measured in 24 MiB over a 10 MB/s link"
# What the link carries, and a window's jitter on a loaded machine: no more than twice that.
[ "$RATE" -le $((2 * LINK_RATE)) ] || fail "apply_rate $RATE: more than the link can carry"
[ "$MAX_LIMIT" -le $((2 * LINK_RATE / 1000 * 200)) ] ||
	fail "the bound reached $MAX_LIMIT, over 2 x 10 MB/s x 200 ms"
t0=$(date +%s%N)
expect_eq "$(colo_p checkpoint)" "epoch=2" "Primary checkpoint"
echo "prepare after the stream: $((($(date +%s%N) - t0) / 1000000)) ms"
expect_eq "$(colo_s checkpoint)" "epoch=2" "Secondary checkpoint"
cmp "$TEST_DIR/p1.img" "$TEST_DIR/s1.img" || fail "disks differ after the paced checkpoint"

step "pause_target=0 (off): the backlog grows toward queue_limit"
pair 2
colo_s start secondary timeout=30000 peer=10.198.0.1 || fail "start secondary 2"
colo_p start primary timeout=30000 sync=none || fail "start primary 2"
run 0x32 0
[ "$MAX_INFLIGHT" -ge $((8 << 20)) ] ||
	fail "without pause_target the backlog stayed at $MAX_INFLIGHT (expected it to pass 8 MiB)"
t0=$(date +%s%N)
expect_eq "$(colo_p checkpoint)" "epoch=2" "Primary checkpoint, unpaced"
echo "prepare after the stream: $((($(date +%s%N) - t0) / 1000000)) ms"
expect_eq "$(colo_s checkpoint)" "epoch=2" "Secondary checkpoint, unpaced"
cmp "$TEST_DIR/p2.img" "$TEST_DIR/s2.img" || fail "disks differ after the unpaced checkpoint"

step "pause_target=200 during a start's copy: the guest shares queue_limit with the copy"
# The copy (64 MiB over 10 MB/s: several seconds) keeps megabytes unacknowledged all along: a
# bound of rate x 200 ms would hold the guest's writes until it ended.
pair 3
"$PY" -c 'import sys; f = open(sys.argv[1], "r+b"); f.write(b"\x77" * (64 << 20))' "$TEST_DIR/s3.img"
colo_s start secondary timeout=30000 peer=10.198.0.1 || fail "start secondary 3"
colo_p start primary timeout=30000 sync=full pause_target=200 >"$TEST_DIR/start3.out" 2>&1 &
starter=$!
wait_status P state syncing 30
while [ "$(colo_field P sync_done_bytes)" -lt $((4 << 20)) ]; do sleep 0.05; done
qemu-io -f raw "$P_URI" -c 'write -P 0x33 60M 1M' >/dev/null || fail "guest write during the copy"
st=$(colo_p status)
[ "$(json_field "$st" state)" = syncing ] && [ "$(json_field "$st" sync_done_bytes)" -lt $((48 << 20)) ] ||
	fail "the guest's write waited for the copy: it completed at $st"
echo "a guest write during the copy completed at $(json_field "$st" sync_done_bytes) bytes of $((64 << 20)) copied"
wait "$starter" || fail "start primary 3: $(cat "$TEST_DIR/start3.out")"
expect_eq "$(colo_p checkpoint)" "epoch=2" "Primary checkpoint after the copy"
expect_eq "$(colo_s checkpoint)" "epoch=2" "Secondary checkpoint after the copy"
cmp "$TEST_DIR/p3.img" "$TEST_DIR/s3.img" || fail "disks differ after the copy"
echo "PASS"
