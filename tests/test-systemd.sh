#!/usr/bin/env bash
# The systemd units: colo-controller@.service and the tmpfiles.d entry, as make builds them.
# systemd-analyze verify loads an instance of the unit (the template, its man pages, its
# executable); systemd-tmpfiles creates the control directory in a scratch root; and the
# unit runs colo-controller run with the instance's options and restarts it on a crash only.
# That a restarted run never takes a checkpoint twice is tests/test-colo-controller.sh's
# last step.  No systemd runs as PID 1 in a test container, so the unit is not started.
source "$(dirname "$0")/functions.sh"
requires systemd-analyze
requires systemd-tmpfiles

UNIT=$top_builddir/systemd/colo-controller@.service
TMPFILES=$top_builddir/systemd/blktap-colo.conf
# configure --with-control-dir, which make wrote into the entry (not built with tmpfiles=no)
controldir=$(sed -n 's|^controldir = ||p' "$top_builddir/Makefile")
make -s -C "$top_builddir" systemd/blktap-colo.conf >/dev/null || fail "make $TMPFILES failed"
[ -s "$UNIT" ] || fail "$UNIT was not built"
[ -s "$TMPFILES" ] || fail "$TMPFILES is missing"

# verify checks that ExecStart's program exists: point it at the one just built.  Its man
# pages are looked up with man(1), so they go on MANPATH the way man wants them.
mkdir -p "$TEST_DIR/units" "$TEST_DIR/man/man7" "$TEST_DIR/man/man8"
sed "s|^ExecStart=[^ ]*/colo-controller |ExecStart=$top_builddir/colo-controller |" "$UNIT" \
	>"$TEST_DIR/units/colo-controller@.service"
grep -q "^ExecStart=$top_builddir/colo-controller \\\$COLO_CONTROLLER_OPTIONS run\$" \
	"$TEST_DIR/units/colo-controller@.service" || fail "ExecStart is not colo-controller ... run"
for p in "$top_builddir"/man/*.[78]; do
	[ -e "$p" ] || continue
	ln -s "$p" "$TEST_DIR/man/man${p##*.}/"
done
out=$(MANPATH=$TEST_DIR/man systemd-analyze verify --man=yes \
	"$TEST_DIR/units/colo-controller@vm1.service" 2>&1) || fail "systemd-analyze verify: $out"
[ -z "$out" ] || fail "systemd-analyze verify printed: $out"

# The restart policy and the options file, as the unit says them.
expect_line() {
	local got
	got=$(sed -n "s/^$1=//p" "$UNIT")
	[ "$got" = "$2" ] || fail "$1 is '$got', expected '$2'"
}
expect_line Restart on-failure
expect_line RestartPreventExitStatus "2 3"
expect_line EnvironmentFile "/etc/blktap-colo/%i.conf"
expect_line ConditionPathExists "/etc/blktap-colo/%i.conf"

# tmpfiles.d: the control directory, 0700 root, in a scratch root.
root=$TEST_DIR/root
mkdir -p "$root/run"
out=$(systemd-tmpfiles --create --root="$root" "$TMPFILES" 2>&1) ||
	fail "systemd-tmpfiles --create: $out"
for d in "$controldir" "$controldir/tapdisk"; do
	got=$(stat -c '%a %U %F' "$root$d" 2>&1) || fail "$d was not created: $got"
	[ "$got" = "700 root directory" ] || fail "$d: $got"
done

# The instance's options: the EnvironmentFile is what ExecStart expands.  Run the command
# line the way systemd would, against no xenstored: colo-controller must get its options and
# fail at connecting (exit 1, restarted by the unit), not at parsing them.
cat >"$TEST_DIR/vm1.conf" <<CONF
COLO_CONTROLLER_OPTIONS="--primary 5 --secondary 7 --primary-xs $TEST_DIR/none.sock --secondary-xs $TEST_DIR/none.sock --count 1"
CONF
(
	set -a
	source "$TEST_DIR/vm1.conf"
	set +a
	# shellcheck disable=SC2086
	"$top_builddir/colo-controller" $COLO_CONTROLLER_OPTIONS run
) >"$TEST_DIR/run.out" 2>"$TEST_DIR/run.err" && rc=0 || rc=$?
[ "$rc" = 1 ] || fail "colo-controller with vm1.conf: exit $rc: $(cat "$TEST_DIR/run.err")"
grep -q "^colo-controller: primary 5: cannot connect to xenstore at $TEST_DIR/none.sock: " \
	"$TEST_DIR/run.err" || fail "colo-controller with vm1.conf: $(cat "$TEST_DIR/run.err")"
echo "PASS: systemd-analyze verify and systemd-tmpfiles accept the units"
