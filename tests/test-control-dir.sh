#!/usr/bin/env bash
# A relative BLKTAP_CONTROL_DIR is refused by every tool, with the value in the error, and
# nothing is done: it is never replaced by the production default /run/blktap-control.
# Unset or empty means the default; a trailing '/' is dropped.  docs/tap-ctl.md.
source "$(dirname "$0")/functions.sh"
source "$(dirname "$0")/xenstore-functions.sh"
requires xenstore-write
requires xenstore-read

img=$TEST_DIR/disk.img
make_image "$img" 1M
ABS_DIR=$BLKTAP_CONTROL_DIR
# Run from a directory of our own, so that anything made relative to it would be seen.
mkdir "$TEST_DIR/cwd"
cd "$TEST_DIR/cwd"

# run_rel VALUE CMD...: runs CMD with BLKTAP_CONTROL_DIR=VALUE; RC, OUT, ERR.
run_rel() {
	local value=$1
	shift
	RC=0
	BLKTAP_CONTROL_DIR=$value "$@" >"$TEST_DIR/out" 2>"$TEST_DIR/err" || RC=$?
	OUT=$(cat "$TEST_DIR/out")
	ERR=$(cat "$TEST_DIR/err")
}

# expect_refused WHAT RC ERR
expect_refused() {
	expect_eq "$RC" "$2" "$1: exit status"
	expect_eq "$ERR" "$3" "$1: stderr"
	expect_eq "$OUT" "" "$1: stdout"
}

for rel in ctl ./ctl rel/dir; do
	step "BLKTAP_CONTROL_DIR=$rel"
	for cmd in "list" "allocate" "spawn" "create -a aio:$img" "free -m 0" \
		"attach -p 1 -m 0" "stats -p 1" "colo -p 1 -m 0 status"; do
		# shellcheck disable=SC2086 # the words of cmd are its arguments
		run_rel "$rel" "$TAPCTL" $cmd
		expect_refused "tap-ctl $cmd" 22 \
			"tap-ctl: BLKTAP_CONTROL_DIR='$rel' is not an absolute path"
	done
	run_rel "$rel" "$top_builddir/tapdisk" -D
	expect_refused "tapdisk -D" 2 "tapdisk: BLKTAP_CONTROL_DIR='$rel' is not an absolute path"
	run_rel "$rel" "$top_builddir/tapdisk"
	expect_refused "tapdisk" 2 "tapdisk: BLKTAP_CONTROL_DIR='$rel' is not an absolute path"
	[ -z "$(ls -A)" ] || fail "made in the working directory: $(ls -A)"
	[ -z "$(ls -A "$ABS_DIR")" ] || fail "made in $ABS_DIR: $(ls -A "$ABS_DIR")"
done

step "block-colo add with a relative BLKTAP_CONTROL_DIR: refused, reported in hotplug-error"
xsd_start
be=backend/vbd3/3/51712
xenstore-write "$be/params" "colo:127.0.0.1:$(free_port):$img" "$be/online" 1 ||
	fail "writing $be"
RC=0
ERR=$(BLKTAP_CONTROL_DIR=ctl XENBUS_PATH=$be TAP_CTL=$TAPCTL BLOCK_COLO_LOG= \
	BLOCK_COLO_LOCK_DIR=$TEST_DIR/lock "$top_srcdir/hotplug/block-colo" add 2>&1) || RC=$?
expect_eq "$RC" 1 "block-colo add: exit status"
expect_eq "$ERR" "block-colo: BLKTAP_CONTROL_DIR='ctl' is not an absolute path" \
	"block-colo add: stderr"
expect_eq "$(xenstore-read "$be/hotplug-status")" error "hotplug-status"
expect_eq "$(xenstore-read "$be/hotplug-error")" \
	"BLKTAP_CONTROL_DIR='ctl' is not an absolute path" "hotplug-error"
[ -z "$(ls -A)" ] || fail "made in the working directory: $(ls -A)"
[ -z "$(ls -A "$ABS_DIR")" ] || fail "made in $ABS_DIR: $(ls -A "$ABS_DIR")"

step "an absolute directory with a trailing '/' works, and names its sockets without '//'"
export BLKTAP_CONTROL_DIR=$ABS_DIR/
dev=$("$TAPCTL" allocate) || fail "allocate"
expect_eq "$dev" "$ABS_DIR/tapdisk/tapdisk-0" "allocate's device name"
"$TAPCTL" free -m 0 || fail "free"
echo PASS
