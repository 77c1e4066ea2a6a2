# shellcheck shell=bash disable=SC2154
# (top_builddir and the helpers come from functions.sh)
# Helpers for tests that need a xenstore: source after functions.sh.
#
# xsd_start runs colo-test-xenstored (a xenstore daemon for tests, without a hypervisor) on
# $TEST_DIR/xenstored.sock with its tree kept in $TEST_DIR/xenstored.state, and exports
# XENSTORED_PATH so that libxenstore and the xenstore-* tools talk to it.  Its stderr goes to
# $XSD_LOG and its one-line-per-message trace to $XSD_TRACE, both kept with a failed test.

XSD_BIN="$top_builddir/colo-test-xenstored"
XSD_SOCK="$TEST_DIR/xenstored.sock"
XSD_STATE="$TEST_DIR/xenstored.state"
XSD_LOG="$TEST_DIR/xenstored.log"
XSD_TRACE="$TEST_DIR/xenstored.trace"
XSD_PID=
_xsd_cleanup_registered=0

_xsd_cleanup() {
	[ -n "$XSD_PID" ] || return 0
	kill -9 "$XSD_PID" 2>/dev/null
	wait "$XSD_PID" 2>/dev/null
	XSD_PID=
}

# xsd_start [daemon options...]: starts the daemon and waits (up to 10 s) for its socket.
xsd_start() {
	[ -x "$XSD_BIN" ] || fail "$XSD_BIN is not built"
	[ -z "$XSD_PID" ] || fail "xsd_start: the daemon already runs (pid $XSD_PID)"
	rm -f "$XSD_SOCK"
	"$XSD_BIN" --socket "$XSD_SOCK" --state "$XSD_STATE" --trace "$XSD_TRACE" "$@" \
		2>>"$XSD_LOG" &
	XSD_PID=$!
	if [ "$_xsd_cleanup_registered" = 0 ]; then
		cleanup_fn _xsd_cleanup
		_xsd_cleanup_registered=1
	fi
	for _ in $(seq 1000); do
		[ -S "$XSD_SOCK" ] && break
		kill -0 "$XSD_PID" 2>/dev/null || {
			XSD_PID=
			fail "colo-test-xenstored exited at start: $(tail -n 5 "$XSD_LOG")"
		}
		sleep 0.01
	done
	[ -S "$XSD_SOCK" ] || fail "colo-test-xenstored made no socket within 10 s"
	export XENSTORED_PATH="$XSD_SOCK"
}

# xsd_stop: SIGTERM; the daemon must exit with status 0 and remove its socket.
xsd_stop() {
	local rc=0
	[ -n "$XSD_PID" ] || fail "xsd_stop: the daemon does not run"
	kill -TERM "$XSD_PID"
	wait "$XSD_PID" || rc=$?
	XSD_PID=
	[ "$rc" = 0 ] || fail "colo-test-xenstored exited with status $rc: $(tail -n 5 "$XSD_LOG")"
	[ ! -e "$XSD_SOCK" ] || fail "colo-test-xenstored left its socket behind"
}

# xsd_kill9: kills the daemon without a chance to clean up.
xsd_kill9() {
	[ -n "$XSD_PID" ] || fail "xsd_kill9: the daemon does not run"
	kill -9 "$XSD_PID"
	wait "$XSD_PID" 2>/dev/null || true
	XSD_PID=
}

# xsd_restart [daemon options...]: stops the daemon if it runs and starts it again on the
# same socket and state.
xsd_restart() {
	[ -z "$XSD_PID" ] || xsd_stop
	xsd_start "$@"
}

# xsd_host_start NAME: a second daemon, for a second host (the Secondary's, say), on
# $TEST_DIR/xsd-NAME.sock; prints nothing and sets XSD_HOST_SOCK.  It is killed at exit.
xsd_host_start() {
	local sock=$TEST_DIR/xsd-$1.sock pid
	"$XSD_BIN" --socket "$sock" --state "$TEST_DIR/xsd-$1.state" \
		--trace "$TEST_DIR/xsd-$1.trace" 2>>"$TEST_DIR/xsd-$1.log" &
	pid=$!
	cleanup_fn "kill -9 $pid 2>/dev/null"
	for _ in $(seq 1000); do
		[ -S "$sock" ] && break
		kill -0 "$pid" 2>/dev/null || fail "colo-test-xenstored $1 exited at start"
		sleep 0.01
	done
	[ -S "$sock" ] || fail "colo-test-xenstored $1 made no socket within 10 s"
	# shellcheck disable=SC2034 # for the caller
	XSD_HOST_SOCK=$sock
}

# xs_bind_disk NAME DOMID: what the hotplug script does for the colo VBD NAME (colo_vbd) as
# disk 51712 of domain DOMID: its nodes, then the bind.
xs_bind_disk() {
	local name=$1 dir=/local/domain/0/colo/$2/disks/51712 pid minor
	pid=${name}_PID
	minor=${name}_MINOR
	xenstore-write "$dir/params" "colo:x" "$dir/pid" "${!pid}" "$dir/minor" "${!minor}" \
		"$dir/backend" "backend/vbd3/$2/51712" || fail "writing the nodes of $name"
	colo "$name" xenstore "$dir" || fail "binding $name to $dir"
}
