#!/bin/bash
# The whole HA cycle on the same two VBDs, randomized against a model (tests/colo_lifecycle.py):
# protect with an online sync while the guest writes, checkpoints, link cuts and resyncs,
# failover (the Primary alive, cut off or killed with kill -9), re-protect in the other
# direction with address=, failback, CYCLES times (20); kill -9 of the Secondary (guest writes
# in flight, or during a copy) and of the Primary during a copy, the killed VBD made again
# and the pair protected again (KILLS=0 leaves them out).  After every sync and checkpoint the
# Secondary's image equals the guest's disk byte for byte; after every failover, the last
# checkpoint plus the Secondary VM's writes.  SEED=n replays a run (with the BS and MODE it
# printed); without SEED, a fresh seed.
source "$(dirname "$0")/functions.sh"
requires_python_nbd
requires ss

log_tapdisks
# A psktool key for the runs that secure the link (tls=psk; the others use tls=none).
if command -v psktool >/dev/null; then
	psktool -u primary -p "$TEST_DIR/keys.psk" >/dev/null || fail "psktool"
	chmod 600 "$TEST_DIR/keys.psk"
	export TLS_PSK=$TEST_DIR/keys.psk
fi
run_one() {
	local dir=$TEST_DIR/seed-$1 # images, dirty logs and the model's log of this run
	mkdir -p "$dir"
	echo "seed=$1 (replay with SEED=$1${BS:+ BS=$BS}${MODE:+ MODE=$MODE}${TLS:+ TLS=$TLS}${KILLS:+ KILLS=$KILLS})"
	if ! "$PY" "$top_srcdir/tests/colo_lifecycle.py" "$TAPCTL" "$dir" "$1"; then
		echo "tapdisk log ($TEST_DIR/tapdisk.log), last lines:" >&2
		tail -n 40 "$TEST_DIR/tapdisk.log" >&2 || true
		echo "the model's log: $dir/lifecycle.log" >&2
		fail "the HA cycle diverged from the model (replay with SEED=$1)"
	fi
}
if [ -n "${SEED:-}" ]; then
	run_one "$SEED"
else
	# Two fresh seeds (each draws its block size, disk size, mode and link security).
	for _ in 1 2; do
		run_one "$(od -An -N4 -tu4 /dev/urandom | tr -d ' ')"
	done
fi
echo "PASS: protect, resync, failover, re-protect and failback match the model"
