#!/bin/bash
# Randomized, model-based test of colo replication (tests/colo_random.py): a real Primary and
# Secondary over TCP, thousands of random writes, reads, checkpoints (also racing writes in
# flight) and concurrent batches on both NBD exports, every read checked against a byte-array
# model of the Primary's disk and the Secondary VM's view; sessions end by a failover or a
# stop of the Secondary, after which its image file must equal the model byte for byte.
# SEED=n replays a run; STEPS (3000), FAILOVERS (1), STOPS (1), FULL_EVERY (250) tune it.
source "$(dirname "$0")/functions.sh"
requires_python_nbd

log_tapdisks

seed=${SEED:-$(od -An -N4 -tu4 /dev/urandom | tr -d ' ')}
echo "seed=$seed (replay with SEED=$seed)"
make_image "$TEST_DIR/base.img" 8M "$seed"

if ! "$PY" "$top_srcdir/tests/colo_random.py" "$TAPCTL" "$TEST_DIR" "$seed"; then
	echo "tapdisk log ($TEST_DIR/tapdisk.log), last lines:" >&2
	tail -n 40 "$TEST_DIR/tapdisk.log" >&2 || true
	fail "the colo model diverged (seed=$seed; replay with SEED=$seed)"
fi
echo "PASS: random colo replication matches the model (seed=$seed)"
