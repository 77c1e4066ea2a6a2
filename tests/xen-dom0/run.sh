#!/bin/bash
# tests/xen-dom0/run.sh BUILD_DIR: our stack in a REAL Xen 4.17 dom0, against the REAL C xenstored.
#
# A manual, optional job: not part of `make check` or CI.  It boots Debian's Xen 4.17 hypervisor
# and Debian's dom0 kernel under `qemu-system-x86_64 -accel tcg -cpu qemu64` (no KVM needed),
# with an initramfs holding busybox, Xen's xenstored / xen-init-dom0 / xenstore-* tools, bash,
# flock, qemu-io, and our tapdisk, tap-ctl, colo-controller and hotplug/block-colo (plus all
# their ldd libraries and libgcc_s).  Its /init (dom0-init) brings up a Secondary "domain 7" and
# a Primary "domain 5" with two colo disks each over 127.0.0.1, as scripts/demo.sh does, drives
# them with colo-controller (start, checkpoint, run, guest writes with qemu-io, checkpoint, cmp,
# kill -9 of the Primary, failover, remove) and prints DOM0-PASS / DOM0-FAIL / DOM0-INFO lines
# and DOM0-DONE on the serial console.  No guest domain is created: the backend nodes libxl
# would write are written with xenstore-write.
#
# Needs (Debian 12, as root):
#   apt-get install --no-install-recommends qemu-system-x86 xen-hypervisor-4.17-amd64 \
#       linux-image-amd64 busybox-static xen-utils-4.17 xenstore-utils cpio kmod
#   qemu-utils (qemu-io makes the guest writes); installing linux-image-amd64
#   regenerates the host's /boot/initrd.img, which does no harm, and installs no GRUB.
# and a build:  mkdir -p /tmp/bx && cd /tmp/bx && /path/to/configure -q && make -j2
#
# Run:  tests/xen-dom0/run.sh /tmp/bx
# Env:  WORK (scratch dir, default a new /tmp/xen-dom0.XXXXXX, kept), TMO (QEMU timeout,
#       default 600 s), MEM (QEMU -m, 1024), SMP (2), DOM0MEM (512M), PROBES (1: also run
#       probes.sh in dom0 and against our tests/xenstored daemon on the host, and diff them).
# Exit: 0 only if DOM0-DONE appeared and there is no DOM0-FAIL; the serial log is
#       $WORK/serial.log.  QEMU needs ~1.3 GB of RAM and one host core; a run takes ~1-2 min.
set -euo pipefail

BUILD=${1:?usage: $0 BUILD_DIR}
BUILD=$(cd "$BUILD" && pwd)
HERE=$(cd "$(dirname "$0")" && pwd)
SRC=$(cd "$HERE/../.." && pwd)
TMO=${TMO:-600}
MEM=${MEM:-1024}
SMP=${SMP:-2}
DOM0MEM=${DOM0MEM:-512M}
PROBES=${PROBES:-1}
XENBIN=/usr/lib/xen-4.17/bin

die() { echo "xen-dom0: $*" >&2; exit 1; }
for f in "$BUILD/tapdisk" "$BUILD/tap-ctl" "$BUILD/colo-controller" "$SRC/hotplug/block-colo" \
	/boot/xen-4.17-amd64.gz /bin/busybox $XENBIN/xenstored $XENBIN/xen-init-dom0 \
	/usr/bin/xenstore /usr/bin/flock; do
	[ -e "$f" ] || die "missing $f (see the top of $0 for what to install and build)"
done
command -v qemu-system-x86_64 >/dev/null || die "missing qemu-system-x86_64 (apt-get install qemu-system-x86)"
command -v cpio >/dev/null && command -v depmod >/dev/null || die "missing cpio or kmod"
KVER=$(cd /lib/modules && ls -d 6.1.*-amd64 2>/dev/null | sort -V | tail -n 1)
[ -n "$KVER" ] && [ -e "/boot/vmlinuz-$KVER" ] || die "no Debian 6.1 kernel (apt-get install linux-image-amd64)"

WORK=${WORK:-$(mktemp -d /tmp/xen-dom0.XXXXXX)}
mkdir -p "$WORK"
R=$WORK/root
rm -rf "$R"
mkdir -p "$R"/{bin,sbin,usr/bin,usr/sbin,usr/libexec/blktap,usr/local/flock,lib,lib64,etc/xen/scripts,etc/blktap-test,proc,sys,dev,run,tmp,root,var/log/xen,imgs}
ln -s ../run "$R/var/run"
echo "xen-dom0: building the initramfs in $R"

# copy_bin FILE DEST_DIR: the file and its ldd libraries (at their own paths).
copy_bin() {
	install -m 755 "$1" "$2/"
	ldd "$1" 2>/dev/null | grep -o '/[^ ]*' | while read -r lib; do
		[ -e "$R$lib" ] || { mkdir -p "$R$(dirname "$lib")"; cp -L "$lib" "$R$lib"; }
	done
}
cp /bin/busybox "$R/bin/busybox"
copy_bin /bin/bash "$R/bin"
# flock(1) in a directory of its own, so that dom0-init can run block-colo with and without it.
copy_bin /usr/bin/flock "$R/usr/local/flock"
mkdir -p "$R$XENBIN"
for b in xenstored xen-init-dom0 xenstore-control; do copy_bin "$XENBIN/$b" "$R$XENBIN"; done
copy_bin /usr/bin/xenstore "$R/usr/bin"
for t in read write ls list rm exists chmod watch; do ln -sf xenstore "$R/usr/bin/xenstore-$t"; done
command -v qemu-io >/dev/null || die "missing qemu-io, which makes the guest writes (apt-get install qemu-utils)"
copy_bin "$(command -v qemu-io)" "$R/usr/bin"
# xsprobe: libxenstore errno/watch probes (needs a C compiler and libxenstore's headers).
mkdir -p "$WORK/bin"
rm -f "$WORK/bin/xsprobe"
if [ "$PROBES" = 1 ]; then
	if ${CC:-cc} -O2 -Wall -o "$WORK/bin/xsprobe" "$HERE/xsprobe.c" -lxenstore; then
		copy_bin "$WORK/bin/xsprobe" "$R/usr/bin"
	else
		echo "xen-dom0: cannot build xsprobe.c (libxen-dev?): only the CLI probes run"
	fi
fi
copy_bin "$BUILD/tapdisk" "$R/usr/libexec/blktap"
copy_bin "$BUILD/tap-ctl" "$R/usr/sbin"
copy_bin "$BUILD/colo-controller" "$R/usr/sbin"
install -m 755 "$SRC/hotplug/block-colo" "$R/etc/xen/scripts/block-colo"
for l in /lib/x86_64-linux-gnu/libgcc_s.so.1 /lib/x86_64-linux-gnu/libnss_files.so.2; do
	[ -e "$l" ] && mkdir -p "$R${l%/*}" && cp -L "$l" "$R$l"
done
# busybox applets last, where no real program is.
for a in $("$R/bin/busybox" --list-full); do
	[ -e "$R/$a" ] || [ -L "$R/$a" ] || ln -s /bin/busybox "$R/$a"
done
rm -f "$R/usr/bin/flock" "$R/bin/flock"
install -m 755 "$HERE/dom0-init" "$R/init"
install -m 644 "$HERE/probes.sh" "$R/etc/blktap-test/probes.sh"
printf 'root:x:0:0:root:/root:/bin/sh\n' >"$R/etc/passwd"
printf 'root:x:0:\n' >"$R/etc/group"
printf '127.0.0.1 localhost\n' >"$R/etc/hosts"

# Kernel modules, with their dependencies, and a depmod so busybox modprobe works.
for m in xen-evtchn xen-gntdev xen-gntalloc xen-privcmd xenfs; do
	modprobe -S "$KVER" --show-depends "$m" | awk '$1 == "insmod" { print $2 }' | while read -r f; do
		mkdir -p "$R$(dirname "$f")"
		cp "$f" "$R$f"
	done
done
cp "/lib/modules/$KVER/modules.order" "/lib/modules/$KVER/modules.builtin"* "$R/lib/modules/$KVER/" 2>/dev/null || :
depmod -b "$R" "$KVER"

(cd "$R" && find . | cpio -o -H newc --quiet | gzip -1) >"$WORK/dom0.cpio.gz"
zcat /boot/xen-4.17-amd64.gz >"$WORK/xen"
cp "/boot/vmlinuz-$KVER" "$WORK/vmlinuz"
echo "xen-dom0: initramfs $(du -h "$WORK/dom0.cpio.gz" | cut -f1)"

EXTRA=
[ "$PROBES" = 1 ] && EXTRA=xprobes
LOG=$WORK/serial.log
: >"$LOG"
start=$(date +%s.%N)
timeout "$TMO" qemu-system-x86_64 -machine q35 -accel tcg -cpu qemu64 -m "$MEM" -smp "$SMP" \
	-display none -nographic -monitor none -serial stdio -no-reboot \
	-kernel "$WORK/xen" \
	-append "console=com1 com1=115200,8n1 dom0_mem=$DOM0MEM,max:$DOM0MEM loglvl=all guest_loglvl=all noreboot" \
	-initrd "$WORK/vmlinuz console=hvc0 earlyprintk=xen quiet loglevel=4 $EXTRA,$WORK/dom0.cpio.gz" \
	</dev/null >"$LOG" 2>&1 &
qpid=$!
echo "xen-dom0: QEMU $qpid started (timeout $TMO s), serial log $LOG"
result=timeout
while kill -0 "$qpid" 2>/dev/null; do
	if grep -q '^DOM0-DONE' "$LOG"; then
		result=done
		break
	fi
	if grep -Eq 'Hardware Dom0 crashed|Panic on CPU|Kernel panic|domain_crash' "$LOG"; then
		result=crash
		break
	fi
	sleep 1
done
[ "$result" != timeout ] || ! grep -q '^DOM0-DONE' "$LOG" || result=done
# After DOM0-DONE, dom0 powers off and QEMU exits by itself; give it a few seconds.
for _ in $(seq 20); do kill -0 "$qpid" 2>/dev/null || break; sleep 0.5; done
kill "$qpid" 2>/dev/null || :
wait "$qpid" 2>/dev/null || :
end=$(date +%s.%N)
tr -d '\r' <"$LOG" >"$LOG.txt"

echo "===== DOM0 lines ====="
grep -a '^DOM0-' "$LOG.txt" || :
echo "======================"
printf 'xen-dom0: %s after %.1f s of QEMU time\n' "$result" "$(echo "$end - $start" | bc -l 2>/dev/null || echo 0)"
case $result in
crash) grep -aE -B5 -A20 'Hardware Dom0 crashed|Panic on CPU|Kernel panic|domain_crash' "$LOG.txt" | head -n 60 ;;
timeout) echo "xen-dom0: no DOM0-DONE within $TMO s; last lines:"; tail -n 40 "$LOG.txt" ;;
esac

# The same probes against our test daemon, and the differences.
if [ "$PROBES" = 1 ] && [ -x "$BUILD/colo-test-xenstored" ] && command -v xenstore-read >/dev/null; then
	grep -aE '^(XS)?PROBE ' "$LOG.txt" >"$WORK/probes-xen.txt" || :
	sock=$WORK/test-xenstored.sock
	rm -f "$sock"
	"$BUILD/colo-test-xenstored" --socket "$sock" &
	xpid=$!
	for _ in $(seq 100); do [ -S "$sock" ] && break; sleep 0.05; done
	PATH=$WORK/bin:$PATH XENSTORED_PATH=$sock bash -c ". '$HERE/probes.sh'; run_probes" >"$WORK/probes-test.txt" 2>&1 || :
	kill "$xpid" 2>/dev/null || :
	wait "$xpid" 2>/dev/null || :
	if [ -s "$WORK/probes-xen.txt" ]; then
		echo "===== probes: real xenstored (-) vs tests/xenstored (+) ====="
		d=$(diff -u "$WORK/probes-xen.txt" "$WORK/probes-test.txt" | tail -n +3 | grep '^[-+]' || :)
		echo "${d:-(no differences)}"
	fi
	grep -a '^XBPROBE ' "$LOG.txt" | sed 's/^XBPROBE /XSPROBE /' >"$WORK/probes-xenbus.txt" || :
	if [ -s "$WORK/probes-xenbus.txt" ]; then
		echo "===== libxenstore probes: real xenstored socket (-) vs /dev/xen/xenbus (+) ====="
		d=$(grep '^XSPROBE ' "$WORK/probes-xen.txt" | diff -u - "$WORK/probes-xenbus.txt" |
			tail -n +3 | grep '^[-+]' || :)
		echo "${d:-(no differences)}"
	fi
fi

if [ "$result" = done ] && ! grep -aq '^DOM0-FAIL' "$LOG.txt"; then
	echo "xen-dom0: PASS"
	exit 0
fi
echo "xen-dom0: FAIL"
exit 1
