#!/usr/bin/env bash
# Opening a bad image fails with a message that says why, and leaves nothing behind.
source "$(dirname "$0")/functions.sh"

expect_fail() { # expect_fail PATTERN tap-ctl-args...
	local pattern=$1 out
	shift
	if out=$("$TAPCTL" "$@" 2>&1); then
		fail "tap-ctl $* succeeded"
	fi
	grep -qi -- "$pattern" <<<"$out" || fail "tap-ctl $*: expected '$pattern' in: $out"
	[ "$(wc -l <<<"$out")" -eq 1 ] || fail "tap-ctl $*: more than one line of error: $out"
}

# expect_line LINE tap-ctl-args...: fails with exactly LINE, and nothing else, on stderr.
expect_line() {
	local line=$1 out
	shift
	if out=$("$TAPCTL" "$@" 2>&1); then
		fail "tap-ctl $* succeeded"
	fi
	[ "$out" = "$line" ] || fail "tap-ctl $*: expected '$line', got: $out"
}

expect_fail "No such file or directory" create -a "aio:$TEST_DIR/missing.img"
# A filter names the image below it and the reason, as aio does, not its own close.
expect_line "tap-ctl: open: $TEST_DIR/missing.img: cannot open for writing: No such file or directory" \
	create -a "colo:127.0.0.1:9:$TEST_DIR/missing.img"
head -c 100 /dev/zero >"$TEST_DIR/tiny.img"
expect_fail "too small" create -a "aio:$TEST_DIR/tiny.img"
mkdir "$TEST_DIR/dir.img"
expect_fail "Is a directory" create -a "aio:$TEST_DIR/dir.img"
expect_fail "unknown disk type" create -a "qcow9:$TEST_DIR/x.img"
expect_fail "type:/path" create -a "no-colon-here"

ro=$TEST_DIR/ro.img
make_image "$ro" 1M
if chattr +i "$ro" 2>/dev/null; then
	cleanup_fn chattr -i "$ro"
	expect_fail "for writing: Operation not permitted" create -a "aio:$ro"
	# Read-only use of the same image works.
	vbd_create "$ro" -R
	vbd_destroy "$VBD_PID" "$VBD_MINOR"
	chattr -i "$ro"
else
	echo "note: chattr +i unsupported here, the not-writable case is not covered"
fi

# Failed creates leave no tapdisk and no allocated minor behind.
list=$("$TAPCTL" list)
[ -z "$list" ] || fail "failed creates left something behind: $list"
ls "$BLKTAP_CONTROL_DIR"/ctl* >/dev/null 2>&1 && fail "control socket left behind"
echo "PASS: missing (aio and colo), tiny, directory, unknown-type, malformed and immutable images refused"
