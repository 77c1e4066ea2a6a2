# Shared helpers for the integration tests.  Source it, then call the helpers.
#
# Every test runs against its own control directory, so tests and several tapdisks can
# run side by side, and cleans up (tapdisks killed, files removed) even when it fails.
# A missing client gives SKIP (exit 77), never PASS.

set -euo pipefail

: "${top_builddir:=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}"
: "${top_srcdir:=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}"
TAPCTL="$top_builddir/tap-ctl"
export TAPDISK="$top_builddir/tapdisk"
# Debian's python modules (nbd) belong to /usr/bin/python3.
PY=/usr/bin/python3
export PATH="/usr/bin:$PATH"

TEST_DIR=$(mktemp -d "${TMPDIR:-/tmp}/blktap-test.XXXXXX")
export BLKTAP_CONTROL_DIR="$TEST_DIR/ctl"
mkdir -p "$BLKTAP_CONTROL_DIR"

# Sanitizer reports of daemonised tapdisks would vanish with their stderr: send them to
# files, and fail the test when any appears.
export ASAN_OPTIONS="log_path=$TEST_DIR/sanitizer:detect_leaks=1:abort_on_error=0${ASAN_OPTIONS:+:$ASAN_OPTIONS}"
export UBSAN_OPTIONS="log_path=$TEST_DIR/sanitizer:print_stacktrace=1:halt_on_error=1${UBSAN_OPTIONS:+:$UBSAN_OPTIONS}"

_cleanup_fns=()
cleanup_fn() { _cleanup_fns+=("$*"); }

_cleanup() {
	local rc=$?
	set +e
	for ((i = ${#_cleanup_fns[@]} - 1; i >= 0; i--)); do
		eval "${_cleanup_fns[$i]}"
	done
	# Any tapdisk of this test that is still alive is killed.
	for sock in "$BLKTAP_CONTROL_DIR"/ctl*; do
		[ -S "$sock" ] || continue
		kill -9 "${sock##*/ctl}" 2>/dev/null
	done
	# Give tapdisks that are on their way out the time to write their reports.
	sleep 0.2
	if ls "$TEST_DIR"/sanitizer.* >/dev/null 2>&1; then
		echo "FAIL: sanitizer reports:" >&2
		cat "$TEST_DIR"/sanitizer.* >&2
		rc=1
	fi
	if [ $rc -ne 0 ] && [ $rc -ne 77 ]; then
		echo "FAILED (exit $rc); logs under $TEST_DIR kept" >&2
	else
		rm -rf "$TEST_DIR"
	fi
	exit $rc
}
trap _cleanup EXIT

requires() {
	if ! command -v "$1" >/dev/null 2>&1; then
		echo "SKIP: $1 is not installed"
		exit 77
	fi
}

requires_python_nbd() {
	if ! "$PY" -c 'import nbd' 2>/dev/null; then
		echo "SKIP: python3-libnbd is not installed"
		exit 77
	fi
}

fail() {
	echo "FAIL: $*" >&2
	if [ -n "${TAPLOG:-}" ] && [ -s "$TAPLOG" ]; then
		echo "--- last lines of $TAPLOG:" >&2
		tail -n 25 "$TAPLOG" >&2
	fi
	exit 1
}

# log_tapdisks: every tapdisk started from now on runs in the foreground (tapdisk -D,
# detached with setsid) with its log appended to $TAPLOG, which fail shows and $TEST_DIR
# keeps: a daemonised tapdisk logs to syslog, which a test machine may not have.
log_tapdisks() {
	TAPLOG=$TEST_DIR/tapdisk.log
	cat >"$TEST_DIR/tapdisk-logged" <<EOF
#!/bin/bash
setsid "$TAPDISK" -D </dev/null 2>>"$TAPLOG" &
EOF
	chmod +x "$TEST_DIR/tapdisk-logged"
	export TAPDISK="$TEST_DIR/tapdisk-logged"
}

# expect_eq ACTUAL EXPECTED WHAT
expect_eq() {
	[ "$1" = "$2" ] || fail "$3: expected '$2', got '$1'"
}

# make_image PATH SIZE [pattern-seed]: a raw image of SIZE (e.g. 64M), zeros, or
# pseudo-random bytes when a seed is given.
make_image() {
	if [ $# -ge 3 ]; then
		"$PY" - "$1" "$2" "$3" <<'PYEOF'
import random, sys
path, size, seed = sys.argv[1], sys.argv[2], int(sys.argv[3])
mult = {'K': 1 << 10, 'M': 1 << 20, 'G': 1 << 30}
n = int(size[:-1]) * mult[size[-1]] if size[-1] in mult else int(size)
rng = random.Random(seed)
with open(path, 'wb') as f:
    left = n
    while left:
        chunk = min(left, 1 << 20)
        f.write(rng.randbytes(chunk))
        left -= chunk
PYEOF
	else
		truncate -s "$2" "$1"
	fi
}

# vbd_create IMAGE [tap-ctl create flags...]: starts a tapdisk serving IMAGE and sets
# VBD_PID, VBD_MINOR, VBD_SOCK and VBD_URI.
vbd_create() {
	local img=$1
	shift
	vbd_create_spec "aio:$img" "$@"
}

# vbd_create_spec TYPE:PARAMS [flags...]: the same for any disk type (colo:HOST:PORT:/img).
vbd_create_spec() {
	local spec=$1
	shift
	local dev line
	dev=$("$TAPCTL" create -a "$spec" "$@") || fail "tap-ctl create $spec failed"
	VBD_MINOR=${dev##*-}
	line=$("$TAPCTL" list -m "$VBD_MINOR") || fail "tap-ctl list -m $VBD_MINOR failed"
	VBD_PID=$(sed -n 's/^pid=\([0-9]*\) .*/\1/p' <<<"$line")
	[ -n "$VBD_PID" ] || fail "no pid for minor $VBD_MINOR in: $line"
	VBD_SOCK="$BLKTAP_CONTROL_DIR/nbd$VBD_PID.$VBD_MINOR"
	VBD_URI="nbd+unix:///?socket=$VBD_SOCK"
	[ -S "$VBD_SOCK" ] || fail "no NBD socket at $VBD_SOCK"
}

# free_port: a TCP port on 127.0.0.1 that nothing listens on now.
free_port() {
	"$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# colo_pair PRIMARY_IMG SECONDARY_IMG [start options...]: a Secondary and a Primary colo VBD
# replicating over 127.0.0.1, started with the options.  Sets COLO_PORT, and P_PID, P_MINOR,
# P_URI, P_SOCK, S_PID, S_MINOR, S_URI, S_SOCK.
colo_pair() {
	local pimg=$1 simg=$2
	shift 2
	COLO_PORT=$(free_port)
	vbd_create_spec "colo:127.0.0.1:$COLO_PORT:$simg"
	S_PID=$VBD_PID S_MINOR=$VBD_MINOR S_URI=$VBD_URI S_SOCK=$VBD_SOCK
	vbd_create_spec "colo:127.0.0.1:$COLO_PORT:$pimg"
	P_PID=$VBD_PID P_MINOR=$VBD_MINOR P_URI=$VBD_URI P_SOCK=$VBD_SOCK
	"$TAPCTL" colo -p "$S_PID" -m "$S_MINOR" start secondary "$@" ||
		fail "start secondary failed"
	"$TAPCTL" colo -p "$P_PID" -m "$P_MINOR" start primary "$@" || fail "start primary failed"
}

# colo_p / colo_s COMMAND...: tap-ctl colo on the Primary / the Secondary of colo_pair.
colo_p() { "$TAPCTL" colo -p "$P_PID" -m "$P_MINOR" "$@"; }
colo_s() { "$TAPCTL" colo -p "$S_PID" -m "$S_MINOR" "$@"; }

# json_field JSON KEY: one field of a status line.
json_field() {
	"$PY" -c 'import json, sys; print(json.loads(sys.argv[1])[sys.argv[2]])' "$1" "$2"
}

vbd_destroy() {
	"$TAPCTL" destroy -p "$1" -m "$2"
}

# wait_gone PID: waits up to 10 s for a process to exit.
wait_gone() {
	for _ in $(seq 100); do
		kill -0 "$1" 2>/dev/null || return 0
		sleep 0.1
	done
	fail "process $1 did not exit"
}

qio() {
	qemu-io -f raw "$VBD_URI" "$@"
}
