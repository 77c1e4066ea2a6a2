#!/usr/bin/env bash
# The Debian package, as an operator gets it: dpkg-buildpackage -b -us -uc on a copy of the
# source tree, lintian with no error, apt install ./blktap-colo_*.deb, then a replicated pair
# run with the installed programs only (block-colo from /etc/xen/scripts brings the disks up,
# /usr/sbin/tap-ctl spawns /usr/libexec/tapdisk, /usr/sbin/colo-controller starts,
# checkpoints and fails over; the Secondary's disk must equal the checkpoint), and at the end
# apt-get remove and purge, after which nothing the package put on the machine is left.
# Needs root (it installs the package); SKIP without the tools or when not root.
source "$(dirname "$0")/functions.sh"
source "$(dirname "$0")/xenstore-functions.sh"
requires dpkg-buildpackage
requires lintian
requires apt-get
requires git
requires qemu-io
requires xenstore-write
[ "$(id -u)" = 0 ] || {
	echo "SKIP: installing a package needs root"
	exit 77
}
git -C "$top_srcdir" rev-parse --git-dir >/dev/null 2>&1 || {
	echo "SKIP: $top_srcdir is not a git checkout"
	exit 77
}
if dpkg-query -W -f='${Status}' blktap-colo 2>/dev/null | grep -q 'installed\|config-files'; then
	fail "blktap-colo is on this machine already: this test installs and purges it"
fi
APT=(env DEBIAN_FRONTEND=noninteractive apt-get -y -q -o DPkg::Lock::Timeout=600)

step "dpkg-buildpackage -b -us -uc"
[ -f "$top_srcdir/debian/changelog" ] || fail "no debian/changelog: there is no package to build"
version=$(sed -n '1s/^blktap-colo (\([^)]*\)).*/\1/p' "$top_srcdir/debian/changelog")
src=$TEST_DIR/src/blktap-colo-$version
mkdir -p "$src"
(cd "$top_srcdir" && git ls-files -co --exclude-standard | grep -v '^build' | tar -cf - -T -) |
	tar -xf - -C "$src"
(cd "$src" && DEB_BUILD_OPTIONS="nocheck parallel=$(nproc)" dpkg-buildpackage -b -us -uc) \
	>"$TEST_DIR/build.log" 2>&1 || fail "dpkg-buildpackage: $(tail -n 30 "$TEST_DIR/build.log")"
deb=$TEST_DIR/src/blktap-colo_${version}_$(dpkg --print-architecture).deb
[ -s "$deb" ] || fail "no $deb: $(ls "$TEST_DIR/src")"

step "lintian: no error"
lintian --fail-on error "$deb" >"$TEST_DIR/lintian.log" 2>&1 ||
	fail "lintian: $(cat "$TEST_DIR/lintian.log")"
grep -v '^running with root privileges' "$TEST_DIR/lintian.log" || :

step "apt install ./$(basename "$deb")"
# What was on the machine before, to find out afterwards what the package left.
mapfile -t paths < <(dpkg-deb -c "$deb" | awk '{ print $6 }' | sed 's|^\./|/|; s|/$||' | grep .)
paths+=(/run/blktap-control/tapdisk /run/blktap-control)
before=()
for p in "${paths[@]}"; do [ -e "$p" ] && before+=("$p"); done
purge() { "${APT[@]}" purge blktap-colo >>"$TEST_DIR/apt.log" 2>&1; }
cleanup_fn purge
(cd "$TEST_DIR/src" && "${APT[@]/apt-get/apt}" install "./$(basename "$deb")") \
	>"$TEST_DIR/apt.log" 2>&1 || fail "apt install: $(tail -n 20 "$TEST_DIR/apt.log")"
for p in /usr/sbin/tap-ctl /usr/sbin/colo-controller /usr/libexec/tapdisk \
	/etc/xen/scripts/block-colo /lib/systemd/system/colo-controller@.service \
	/usr/lib/tmpfiles.d/blktap-colo.conf /usr/lib/ocf/resource.d/blktap-colo/colo; do
	[ -e "$p" ] || fail "$p is not installed"
done
for m in tapdisk.8 tap-ctl.8 colo-controller.8 block-colo.8 blktap-colo.7; do
	man -w "${m##*.}" "${m%.*}" >/dev/null || fail "man ${m%.*}(${m##*.}) is not installed"
done
[ "$(stat -c '%a %U' /run/blktap-control 2>&1)" = "700 root" ] ||
	fail "/run/blktap-control after install: $(stat -c '%a %U' /run/blktap-control 2>&1)"
out=$(systemd-analyze verify /lib/systemd/system/colo-controller@vm1.service 2>&1) ||
	fail "systemd-analyze verify of the installed unit: $out"
[ -z "$out" ] || fail "systemd-analyze verify of the installed unit: $out"

step "a replicated pair with the installed programs only"
# tap-ctl runs the tapdisk it was built for (/usr/libexec/tapdisk); block-colo runs tap-ctl
# from PATH.  Only the xenstore daemon and the NBD client are the test's.
unset TAPDISK TAP_CTL
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
export BLOCK_COLO_LOG= BLOCK_COLO_LOCK_DIR=$TEST_DIR/lock
xsd_start
make_image "$TEST_DIR/p.img" 16M 7
cp "$TEST_DIR/p.img" "$TEST_DIR/s.img"
port=$(free_port)
hotplug() { # hotplug DOMID add|remove [PARAMS]
	local be=backend/vbd3/$1/51712
	[ "$2" = add ] && xenstore-write "$be/params" "$3"
	XENBUS_PATH=$be /etc/xen/scripts/block-colo "$2" >>"$TEST_DIR/hotplug.log" 2>&1 ||
		fail "block-colo $2 for domain $1: $(tail -n 5 "$TEST_DIR/hotplug.log")"
}
hotplug 7 add "colo:127.0.0.1:$port:$TEST_DIR/s.img"
hotplug 5 add "colo:127.0.0.1:$port:$TEST_DIR/p.img"
d5=/local/domain/0/colo/5/disks/51712
puri="nbd+unix:///?socket=$BLKTAP_CONTROL_DIR/nbd$(xenstore-read $d5/pid).$(xenstore-read $d5/minor)"
[ "$(readlink "/proc/$(xenstore-read $d5/pid)/exe")" = /usr/libexec/tapdisk ] ||
	fail "the Primary's tapdisk is $(readlink "/proc/$(xenstore-read $d5/pid)/exe")"
ctl() { colo-controller --primary 5 --secondary 7 "$@" >>"$TEST_DIR/ctl.log" 2>&1 ||
	fail "colo-controller $*: $(tail -n 5 "$TEST_DIR/ctl.log")"; }
ctl --primary-args "verify=1 tls=none" --secondary-args tls=none start
qio_cmds "$puri" -- "write -P 0x11 0 1M" "write -P 0x12 5M 64k" || fail "writes: $QIO_OUT"
ctl checkpoint
cp "$TEST_DIR/p.img" "$TEST_DIR/checkpoint.img"
qio_cmds "$puri" -- "write -P 0x22 2M 1M" || fail "write after the checkpoint: $QIO_OUT"
! cmp -s "$TEST_DIR/p.img" "$TEST_DIR/checkpoint.img" || fail "the last write changed nothing"
kill -9 "$(xenstore-read $d5/pid)"
ctl failover
hotplug 5 remove
hotplug 7 remove
cmp "$TEST_DIR/s.img" "$TEST_DIR/checkpoint.img" ||
	fail "after failover the Secondary's disk is not the checkpoint"
xsd_stop

step "apt-get remove, apt-get purge: nothing left"
"${APT[@]}" remove blktap-colo >>"$TEST_DIR/apt.log" 2>&1 || fail "apt-get remove"
"${APT[@]}" purge blktap-colo >>"$TEST_DIR/apt.log" 2>&1 || fail "apt-get purge"
! dpkg-query -W -f='${Status}\n' blktap-colo 2>/dev/null | grep -q 'installed\|config-files' ||
	fail "dpkg still knows blktap-colo: $(dpkg-query -W -f='${Status}' blktap-colo)"
left=()
for p in "${paths[@]}"; do
	[ -e "$p" ] || continue
	[[ " ${before[*]} " == *" $p "* ]] || left+=("$p")
done
[ ${#left[@]} = 0 ] || fail "left behind: ${left[*]}"
echo "PASS: built, lintian-clean, installed, ran a pair, purged without a trace"
