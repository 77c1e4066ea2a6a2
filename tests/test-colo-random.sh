#!/bin/bash
# Randomized, model-based test of colo replication (tests/colo_random.py): a real Primary and
# Secondary over TCP, thousands of random writes, reads, checkpoints (also racing writes in
# flight on either side) and concurrent batches on both NBD exports, every read checked
# against a byte-array model of the Primary's disk and the Secondary VM's view; sessions end
# by a failover (at times after a kill -9 of the Primary) or a stop of the Secondary, with
# Secondary VM writes in flight, after which its image file must equal the model byte for byte.
#
# Without SEED it runs a slice of the soak with fresh seeds: COLO mode (the Secondary VM
# writes) and FT mode (it does not), each with and without a kill -9 of the Primary before
# the failover.  SEED=n replays one run (with the MODE and KILL9 it printed); STEPS (1500),
# FAILOVERS (1), STOPS (1), FULL_EVERY (250), MODE (colo|ft), KILL9 (random|always|never).
source "$(dirname "$0")/functions.sh"
requires_python_nbd

log_tapdisks
: "${STEPS:=1500}"
export STEPS

run_one() { # SEED MODE KILL9
	echo "seed=$1 MODE=$2 KILL9=$3 (replay with SEED=$1 MODE=$2 KILL9=$3)"
	make_image "$TEST_DIR/base.img" 8M "$1"
	if ! MODE=$2 KILL9=$3 "$PY" "$top_srcdir/tests/colo_random.py" "$TAPCTL" "$TEST_DIR" "$1"; then
		echo "tapdisk log ($TEST_DIR/tapdisk.log), last lines:" >&2
		tail -n 40 "$TEST_DIR/tapdisk.log" >&2 || true
		fail "the colo model diverged (replay with SEED=$1 MODE=$2 KILL9=$3)"
	fi
}

if [ -n "${SEED:-}" ]; then
	run_one "$SEED" "${MODE:-colo}" "${KILL9:-random}"
else
	for cfg in "colo never" "colo always" "ft never" "ft always"; do
		run_one "$(od -An -N4 -tu4 /dev/urandom | tr -d ' ')" $cfg
	done
fi
echo "PASS: random colo replication matches the model"
