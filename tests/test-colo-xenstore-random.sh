#!/bin/bash
# Randomized, model-based: a two-disk Primary domain and its Secondary driven through xenstore
# only, with guest writes on both sides, checkpoints, replayed, stale, malformed and coalesced
# requests, and xenstored killed and restarted at random steps, then a failover; every disk's
# result and epoch, and the Secondary's files, are compared with a model after each step
# (tests/colo_xs_random.py).  Secondary VM writes of every shape race the Secondary's
# checkpoints and the failover.  The seed picks the block size and whether the Secondary's
# buffer spills.  SEED=n replays a run; STEPS=n sets its length (150).
source "$(dirname "$0")/functions.sh"
source "$(dirname "$0")/xenstore-functions.sh"
requires xenstore-write
requires_python_nbd

SEED=${SEED:-$RANDOM}
STEPS=${STEPS:-150}
BS_CHOICES=(512 4096 65536 1048576)
BS=${BS_CHOICES[$((SEED % 4))]}
SOPTS="block_size=$BS"
# One request starts both disks: a spill directory gives each a file of its own.
mkdir "$TEST_DIR/spill"
(( SEED / 4 % 2 )) && SOPTS+=" ram_limit=1M spill=$TEST_DIR/spill"
echo "SEED=$SEED STEPS=$STEPS secondary options: $SOPTS"
log_tapdisks xenstore
xsd_start
echo "$XSD_PID" >"$TEST_DIR/xsd.pid"
# The script restarts the daemon; the one running at the end is in the pid file.
cleanup_fn 'kill -9 "$(cat "$TEST_DIR/xsd.pid")" 2>/dev/null'

DEVS=(51712 51728)
for i in 0 1; do
	make_image "$TEST_DIR/p$i.img" 16M $((SEED + i))
	cp "$TEST_DIR/p$i.img" "$TEST_DIR/s$i.img"
done
for i in 0 1; do
	port=$(free_port)
	colo_vbd "S$i" "colo:127.0.0.1:$port:$TEST_DIR/s$i.img"
	colo_vbd "P$i" "colo:127.0.0.1:$port:$TEST_DIR/p$i.img"
	colo "S$i" xenstore "/local/domain/0/colo/2/disks/${DEVS[$i]}" || fail "binding S$i"
	colo "P$i" xenstore "/local/domain/0/colo/1/disks/${DEVS[$i]}" || fail "binding P$i"
done

xenstore-write /local/domain/0/colo/2/request "1 start secondary $SOPTS tls=none"
for dev in "${DEVS[@]}"; do
	for _ in $(seq 500); do
		[ "$(xenstore-read /local/domain/0/colo/2/disks/$dev/result 2>/dev/null)" = "1 0 ok" ] && break
		sleep 0.01
	done
done
xenstore-write /local/domain/0/colo/1/request "1 start primary block_size=$BS tls=none"
for d in 1 2; do
	for dev in "${DEVS[@]}"; do
		for _ in $(seq 500); do
			[ "$(xenstore-read /local/domain/0/colo/$d/disks/$dev/result 2>/dev/null)" = "1 0 ok" ] &&
				[ "$(xenstore-read /local/domain/0/colo/$d/disks/$dev/state)" = running ] && break
			sleep 0.01
		done
		[ "$(xenstore-read /local/domain/0/colo/$d/disks/$dev/state)" = running ] ||
			fail "domain $d disk $dev did not start: $(xenstore-read /local/domain/0/colo/$d/disks/$dev/result)"
	done
done

"$PY" - "$TEST_DIR/state.json" <<PYEOF
import json, sys
json.dump({
    "size": 16 << 20,
    "block_size": $BS,
    "pimg": ["$TEST_DIR/p0.img", "$TEST_DIR/p1.img"],
    "simg": ["$TEST_DIR/s0.img", "$TEST_DIR/s1.img"],
    "puri": ["$P0_URI", "$P1_URI"],
    "suri": ["$S0_URI", "$S1_URI"],
    "ppid": [$P0_PID, $P1_PID],
    "xs_sock": "$XSD_SOCK",
    "xs_pidfile": "$TEST_DIR/xsd.pid",
    "xs_log": "$XSD_LOG",
    "xs_cmd": ["$XSD_BIN", "--socket", "$XSD_SOCK", "--state", "$XSD_STATE"],
}, open(sys.argv[1], "w"))
PYEOF
"$PY" "$top_srcdir/tests/colo_xs_random.py" "$SEED" "$STEPS" "$TEST_DIR/state.json" ||
	fail "the randomized run failed (SEED=$SEED)"
colo_destroy S0
colo_destroy S1
echo PASS
