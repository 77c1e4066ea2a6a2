#!/bin/bash
# Secondary VM writes in flight at a failover, a checkpoint or a stop are never lost nor
# overtaken (tests/colo_svm_inflight.py): a failover with partial-block writes whose fill reads
# are in flight, writes before, during and after the write-back, checkpoints that drop the
# buffer under a fill read, and a stop; every block size, the buffer in RAM and spilled.
# ROUNDS (1) sets the rounds per case and block size; SEED replays the choices.
source "$(dirname "$0")/functions.sh"
requires_python_nbd

log_tapdisks

if ! PYTHONPATH="$top_srcdir/tests" "$PY" "$top_srcdir/tests/colo_svm_inflight.py" "$TAPCTL" "$TEST_DIR"; then
	echo "tapdisk log ($TEST_DIR/tapdisk.log), last lines:" >&2
	tail -n 30 "$TEST_DIR/tapdisk.log" >&2 || true
	fail "a Secondary VM write in flight was lost or overtaken"
fi
