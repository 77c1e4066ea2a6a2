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
		if [ -n "${TAPLOG_WORD:-}" ]; then
			echo "--- last $TAPLOG_WORD lines of $TAPLOG ---" >&2
			grep -i "$TAPLOG_WORD" "$TAPLOG" | tail -25 >&2
		else
			echo "--- last lines of $TAPLOG:" >&2
			tail -n 25 "$TAPLOG" >&2
		fi
	fi
	exit 1
}

# A failed check ends the test with fail.  A test that sets SOFT_CHECKS=1 wants one run to
# show every mismatch: check_fail then reports it, counts it in FAILED_CHECKS and goes on, and
# the test must fail at its end when FAILED_CHECKS is not 0.
SOFT_CHECKS=0
FAILED_CHECKS=0
check_fail() {
	[ "$SOFT_CHECKS" = 1 ] || fail "$@"
	echo "FAIL: $*" >&2
	FAILED_CHECKS=$((FAILED_CHECKS + 1))
}

step() { echo "--- $*"; }

# log_tapdisks [WORD]: every tapdisk started from now on runs in the foreground (tapdisk -D,
# detached with setsid) with its log appended to $TAPLOG, which $TEST_DIR keeps and fail
# shows: its last 25 lines, or with WORD the last 25 that contain it (any case).  A daemonised
# tapdisk logs to syslog, which a test machine may not have.
log_tapdisks() {
	TAPLOG=$TEST_DIR/tapdisk.log
	TAPLOG_WORD=${1:-}
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

# A colo VBD has a NAME (P and S for colo_pair's): colo_vbd sets NAME_PID, NAME_MINOR,
# NAME_URI and NAME_SOCK, by which the helpers below find it.

# colo_vbd NAME TYPE:PARAMS: vbd_create_spec, for the VBD NAME.
colo_vbd() {
	vbd_create_spec "$2"
	printf -v "${1}_PID" %s "$VBD_PID"
	printf -v "${1}_MINOR" %s "$VBD_MINOR"
	printf -v "${1}_URI" %s "$VBD_URI"
	printf -v "${1}_SOCK" %s "$VBD_SOCK"
}

# colo_tls_words COMMAND...: the TLS options a start without tls= gets.  The link is TLS
# unless tls=none is given (docs/colo.md "Securing the link"), so tests that are not about
# TLS say tls=none here; a TLS test sets COLO_TLS (both sides) and COLO_TLS_PRIMARY (the
# Primary's own: tls_user=, tls_name=), and all the helpers below replicate over TLS.
colo_tls_words() {
	[ "${1:-}" = start ] || return 0
	case " $* " in *" tls="*) return 0 ;; esac
	echo "${COLO_TLS:-tls=none}"
	[ "${2:-}" != primary ] || echo "${COLO_TLS_PRIMARY:-}"
}

# colo NAME COMMAND...: tap-ctl colo on the VBD NAME (a start with colo_tls_words).
colo() {
	local pid=${1}_PID minor=${1}_MINOR
	shift
	# shellcheck disable=SC2046 # the words are options without blanks
	"$TAPCTL" colo -p "${!pid}" -m "${!minor}" "$@" $(colo_tls_words "$@")
}

colo_destroy() {
	local pid=${1}_PID minor=${1}_MINOR
	vbd_destroy "${!pid}" "${!minor}" || fail "destroying $1"
}

# colo_pair_create PRIMARY_IMG SECONDARY_IMG: a Secondary S and a Primary P colo VBD that
# replicate over 127.0.0.1:COLO_PORT once started.
colo_pair_create() {
	COLO_PORT=$(free_port)
	colo_vbd S "colo:127.0.0.1:$COLO_PORT:$2"
	colo_vbd P "colo:127.0.0.1:$COLO_PORT:$1"
}

# colo_pair_start [start options...]: starts colo_pair_create's S, then P, with the options
# (the Primary's own, sync= and sync_rate=, to P only).  The tests that use it start from
# disks they made identical (or whose difference they test without a copy), so P gets
# sync=none unless the options name a sync: the driver's default (diff) would copy first, and
# leave the Secondary without a failover until the first checkpoint.
colo_pair_start() {
	local o sopts=() popts=(sync=none)
	for o in "$@"; do
		case $o in
		sync=*) popts=() ;;
		sync_rate=*) ;;
		*) sopts+=("$o") ;;
		esac
	done
	colo S start secondary "${sopts[@]}" || fail "start secondary ${sopts[*]}"
	colo P start primary "${popts[@]}" "$@" || fail "start primary $*"
}

# colo_pair PRIMARY_IMG SECONDARY_IMG [start options...]: both, created and started.
colo_pair() {
	local pimg=$1 simg=$2
	shift 2
	colo_pair_create "$pimg" "$simg"
	colo_pair_start "$@"
}

colo_pair_destroy() {
	colo_destroy P
	colo_destroy S
}

# colo_p / colo_s COMMAND...: tap-ctl colo on the Primary / the Secondary of colo_pair.
colo_p() { colo P "$@"; }
colo_s() { colo S "$@"; }

# json_field JSON KEY: one field of a status line.
json_field() {
	"$PY" -c 'import json, sys; print(json.loads(sys.argv[1])[sys.argv[2]])' "$1" "$2"
}

# colo_field NAME KEY: one field of the VBD's colo status.
colo_field() {
	local st
	st=$(colo "$1" status) || fail "colo status of $1 failed"
	json_field "$st" "$2"
}

# expect_status NAME KEY VALUE
expect_status() {
	local got
	got=$(colo_field "$1" "$2")
	[ "$got" = "$3" ] || fail "$1 status $2: expected '$3', got '$got' ($(colo "$1" status))"
}

# wait_status NAME KEY VALUE SECONDS: polls until the field has the value; sets WAITED_MS.
wait_status() {
	local start end
	start=$(date +%s%N)
	end=$((start + $4 * 1000000000))
	while [ "$(colo_field "$1" "$2")" != "$3" ]; do
		[ "$(date +%s%N)" -lt "$end" ] ||
			fail "$1 status $2 did not become '$3' within $4 s: $(colo "$1" status)"
		sleep 0.02
	done
	WAITED_MS=$((($(date +%s%N) - start) / 1000000))
}

# wait_applied: every write P forwarded is acknowledged, i.e. applied on the Secondary.
wait_applied() {
	for _ in $(seq 200); do
		[ "$(colo_field P inflight_bytes)" = 0 ] && return 0
		sleep 0.05
	done
	fail "the Secondary did not acknowledge the Primary's writes within 10 s: $(colo P status)"
}

# checkpoint_both EPOCH [PRIMARY SECONDARY]: the Primary's checkpoint (P's unless named), then
# the Secondary's (S's), each printing epoch=EPOCH.
checkpoint_both() {
	local out
	out=$(colo "${2:-P}" checkpoint) || fail "checkpoint on the Primary"
	expect_eq "$out" "epoch=$1" "the Primary's checkpoint"
	out=$(colo "${3:-S}" checkpoint) || fail "checkpoint on the Secondary"
	expect_eq "$out" "epoch=$1" "the Secondary's checkpoint"
}

# expect_error NAME RC LINE COMMAND...: tap-ctl colo COMMAND on the VBD NAME fails with exit
# status RC and exactly the line LINE (check_fail otherwise).
expect_error() {
	local name=$1 rc=$2 line=$3 got_rc=0 err
	shift 3
	err=$(colo "$name" "$@" 2>&1 >/dev/null) || got_rc=$?
	[ "$got_rc" = "$rc" ] || check_fail "colo $* on $name: exit $got_rc, expected $rc ($err)"
	[ "$err" = "$line" ] || check_fail "colo $* on $name: expected the line
    '$line'
got '$err'"
}

# qio_cmds QEMU-IO-OPTION... -- COMMAND...: qemu-io -f raw with the options (the last one
# names the file or URI) and each COMMAND as a -c; sets QIO_OUT to all it printed and returns
# its exit status.
qio_cmds() {
	local args=() c
	while [ "$1" != -- ]; do
		args+=("$1")
		shift
	done
	shift
	for c in "$@"; do args+=(-c "$c"); done
	QIO_OUT=$(qemu-io -f raw "${args[@]}" 2>&1)
}

# same A B WHAT: the two files are byte-identical; otherwise says where they differ.
same() {
	local msg
	msg=$("$PY" - "$1" "$2" <<'PYEOF'
import sys
a, b = open(sys.argv[1], "rb").read(), open(sys.argv[2], "rb").read()
if len(a) != len(b):
    print("sizes %d and %d" % (len(a), len(b)))
    sys.exit(1)
if a == b:
    sys.exit(0)
diff = [i for i in range(0, len(a), 512) if a[i:i + 512] != b[i:i + 512]]
first = diff[0] + next(k for k in range(512) if a[diff[0] + k] != b[diff[0] + k])
print("%d sectors differ, first at byte %d (got 0x%02x, expected 0x%02x), last sector at %d"
      % (len(diff), first, a[first], b[first], diff[-1]))
sys.exit(1)
PYEOF
	) || fail "$3: $msg"
}

# dump_view URI OUT: the whole export into a file.
dump_view() {
	"$PY" - "$1" "$2" <<'PYEOF' || fail "cannot read the export $1"
import nbd, sys
h = nbd.NBD()
h.connect_uri(sys.argv[1])
size = h.get_size()
with open(sys.argv[2], "wb") as f:
    off = 0
    while off < size:
        n = min(8 << 20, size - off)
        f.write(h.pread(n, off))
        off += n
h.shutdown()
PYEOF
}

# same_view URI MODEL WHAT: the export reads exactly as the model file.
same_view() {
	dump_view "$1" "$TEST_DIR/view.dump"
	same "$TEST_DIR/view.dump" "$2" "$3"
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
