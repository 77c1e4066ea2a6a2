#!/usr/bin/env bash
# make install DESTDIR=D writes every file under D + the configured prefix (the hotplug script
# too: --with-xen-scripts-dir defaults to $sysconfdir/xen/scripts), the programs run from
# there, and make uninstall removes every file it wrote.
source "$(dirname "$0")/functions.sh"

mk() { make -s -C "$top_builddir" "$@" >"$TEST_DIR/make.log" 2>&1 || fail "make $*: $(tail -n 5 "$TEST_DIR/make.log")"; }
var() { sed -n "s|^$1 = ||p" "$top_builddir/Makefile"; }

prefix=$(var prefix)
[ "${prefix#/}" != "$prefix" ] || fail "prefix '$prefix' is not absolute"
dest=$TEST_DIR/dest

step "make install DESTDIR=$dest (prefix $prefix)"
mk install DESTDIR="$dest"
outside=$(cd "$dest" && find . ! -type d | sed 's|^\.||' | grep -v "^$prefix/" || true)
[ -z "$outside" ] || fail "installed outside the prefix $prefix: $outside"
# What an operator looks for, where configure's defaults put it.
for f in sbin/tap-ctl sbin/colo-controller libexec/tapdisk lib/libblktapctl.a \
	include/blktap/tap-ctl.h include/blktap/colo.h etc/xen/scripts/block-colo; do
	[ -f "$dest$prefix/$f" ] || fail "$prefix/$f was not installed"
done
[ -x "$dest$prefix/etc/xen/scripts/block-colo" ] || fail "block-colo is not executable"
for p in sbin/tap-ctl sbin/colo-controller libexec/tapdisk; do
	"$dest$prefix/$p" --help >/dev/null || fail "the installed $p --help failed"
done

step "make uninstall DESTDIR=$dest leaves no file"
mk uninstall DESTDIR="$dest"
left=$(cd "$dest" && find . ! -type d)
[ -z "$left" ] || fail "left after uninstall: $left"
echo PASS
