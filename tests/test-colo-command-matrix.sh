#!/bin/bash
# Every colo control command in every state of either side (idle, connecting, syncing,
# running, a checkpoint pending, broken with the link lost or closed, failing over, failed
# over, stopped), with guest writes in flight on both sides: the exact exit status and line
# of each refusal, the exact effect of each command that succeeds, `status` answered after
# each, the images byte for byte against the model, and the pair protected again afterwards
# (tests/colo_matrix.py; the table it checks is docs/colo.md, "Commands in each state").
# SEED=n replays the writes' sizes and places; SCENARIOS="a b" runs only those.
source "$(dirname "$0")/functions.sh"
requires_python_nbd

log_tapdisks colo

seed=${SEED:-$(od -An -N4 -tu4 /dev/urandom | tr -d ' ')}
echo "seed=$seed (replay with SEED=$seed)"
# shellcheck disable=SC2086 # SCENARIOS is a list of names
"$PY" "$top_srcdir/tests/colo_matrix.py" "$TAPCTL" "$TEST_DIR" "$seed" ${SCENARIOS:-} ||
	fail "a command in some state did not do what docs/colo.md says (replay with SEED=$seed); table: $TEST_DIR/matrix.txt"
echo "PASS: every colo command in every state of either side"
