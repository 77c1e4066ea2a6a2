#!/usr/bin/env bash
# configure --with-control-dir: the programs (with $BLKTAP_CONTROL_DIR unset), the installed
# hotplug script, the tmpfiles.d entry and the man pages all use the configured directory, and
# configure refuses a directory that is not a plain absolute path.
source "$(dirname "$0")/functions.sh"

# The configured directory is the one this test's cleanup already watches for tapdisks.
ctl=$BLKTAP_CONTROL_DIR
b=$TEST_DIR/build
mkdir -p "$b"

step "configure refuses a relative or an unquotable control directory"
for bad in run/blktap 'has space' '/run/a$b'; do
	out=$(cd "$b" && "$top_srcdir/configure" -q --with-control-dir="$bad" 2>&1) &&
		fail "configure --with-control-dir='$bad' succeeded"
	echo "$out" | grep -qF "configure: error: --with-control-dir=$bad: not an absolute path of letters, digits and / . _ + -" ||
		fail "configure --with-control-dir='$bad': $out"
done

step "configure --with-control-dir=$ctl and build the programs"
(cd "$b" && "$top_srcdir/configure" -q --prefix=/usr --sysconfdir=/etc \
	--with-control-dir="$ctl" --disable-integration-tests) >"$TEST_DIR/configure.log" 2>&1 ||
	fail "configure: $(tail -n 5 "$TEST_DIR/configure.log")"
targets="tapdisk tap-ctl hotplug-build/block-colo systemd/blktap-colo.conf"
[ -n "$(sed -n 's|^SCDOC = ||p' "$b/Makefile")" ] && targets="$targets man/tapdisk.8 man/tap-ctl.8"
make -s -C "$b" -j2 $targets >"$TEST_DIR/make.log" 2>&1 || fail "make: $(tail -n 5 "$TEST_DIR/make.log")"

step "tapdisk and tap-ctl use it with BLKTAP_CONTROL_DIR unset"
help=$(env -u BLKTAP_CONTROL_DIR "$b/tapdisk" --help 2>&1 || true)
echo "$help" | grep -qF "(default \$BLKTAP_CONTROL_DIR or $ctl)" || fail "tapdisk --help does not name $ctl: $help"
truncate -s 8M "$TEST_DIR/disk.img"
out=$(env -u BLKTAP_CONTROL_DIR TAPDISK="$b/tapdisk" "$b/tap-ctl" create -a "aio:$TEST_DIR/disk.img" 2>&1) ||
	fail "tap-ctl create: $out"
[ "$out" = "$ctl/tapdisk/tapdisk-0" ] || fail "tap-ctl create printed '$out', expected $ctl/tapdisk/tapdisk-0"
pid=$(env -u BLKTAP_CONTROL_DIR "$b/tap-ctl" list | awk '/minor=0/ { sub("pid=", "", $1); print $1 }')
[ -n "$pid" ] && [ -S "$ctl/ctl$pid" ] || fail "no control socket ctl<pid> in $ctl: $(ls "$ctl")"
out=$(env -u BLKTAP_CONTROL_DIR "$b/tap-ctl" destroy -p "$pid" -m 0 2>&1) || fail "tap-ctl destroy: $out"

step "the hotplug script, the tmpfiles.d entry and the man pages name it"
grep -qx "DEFAULT_CONTROL_DIR=$ctl" "$b/hotplug-build/block-colo" ||
	fail "the installed block-colo's default: $(grep '^DEFAULT_CONTROL_DIR=' "$b/hotplug-build/block-colo")"
out=$(env -u BLKTAP_CONTROL_DIR -u XENBUS_PATH bash "$b/hotplug-build/block-colo" --help 2>&1 || true)
echo "$out" | grep -qF "BLKTAP_CONTROL_DIR   tapdisk's control directory, absolute (default $ctl)" ||
	fail "block-colo --help: $out"
[ "$(grep -v '^#' "$b/systemd/blktap-colo.conf")" = "d $ctl 0700 root root -
d $ctl/tapdisk 0700 root root -" ] || fail "tmpfiles.d entry: $(cat "$b/systemd/blktap-colo.conf")"
if [ -f "$b/man/tapdisk.8" ]; then
	# scdoc writes a '.' as '.\&' (roff's zero-width escape after it)
	grep -qF "$(printf '%s' "$ctl" | sed 's/\./.\\\&/g')" "$b/man/tapdisk.8" ||
		fail "tapdisk(8) does not name $ctl"
	! grep -q "blktap-control" "$b/man/tapdisk.8" "$b/man/tap-ctl.8" ||
		fail "a man page still names /run/blktap-control: $(grep -n blktap-control "$b"/man/*.8)"
fi
echo "PASS: --with-control-dir reaches the programs, the hotplug script, tmpfiles.d and man pages"
