#!/bin/bash
# tests/xen-guest/run.sh BUILD_DIR: a real Xen guest on colo disks, two hosts, the plug pulled.
#
# Host A, the Primary, is Debian's Xen 4.17 + dom0 kernel under `qemu-system-x86_64 -accel tcg
# -cpu qemu64` with the real xenstored, xenconsoled and xl (tests/xen-guest/dom0-init).  Host
# B, the Secondary, is the machine running this script: its xenstored is colo-test-xenstored
# (no hypervisor here), its disks are brought up by hotplug/block-colo from backend nodes
# written as a toolstack would.  Host A reaches host B as 10.0.2.2 (QEMU user networking):
# the replication links and the controller's connection to host B's xenstored (mutual TLS
# through socat, see docs/colo-controller.md) cross that network.
#
#  1. The guest: `xl create -p` of xl-config-examples/colo-primary.cfg (only paths and
#     addresses substituted), a PV guest with Debian's kernel and our initramfs
#     (tests/xen-guest/guest-init), ext4 on xvda1, a raw xvdb; it writes synced files and a
#     manifest in a loop while `colo-controller run` checkpoints every 200 ms.
#  2. A last checkpoint with the guest paused: dom0 prints the images' sha256 at it, lets the
#     guest write on, and this script kills the whole QEMU (the plug pulled).
#  3. Host B fails over; its images must equal those sha256; e2fsck -f -n after journal replay.
#  4. A second Xen boot (xgmode=replica) starts the guest from colo-secondary.cfg on host B's
#     images: it verifies every file of its manifest; xl destroy, a second xl create, xl
#     block-detach and xl destroy must leave nothing of block-colo's behind.
#
# Needs (Debian 12, root): tests/xen-guest/install-deps.sh, and a build.
# Env: WORK (scratch dir, default a new /tmp/xen-guest.XXXXXX), TMO (seconds for each QEMU,
#      default 900), MEM (QEMU -m, 3072: the example guest has 2 GiB), CKPTS (25),
#      REPLICA_FROM (an earlier run's WORK: only boot its host B images, for debugging).
# Exit 0 only if every step passed; the serial logs are $WORK/{primary,replica}.serial.log,
# printed at the end when a step failed.
set -euo pipefail

BUILD=${1:?usage: $0 BUILD_DIR}
BUILD=$(cd "$BUILD" && pwd)
HERE=$(cd "$(dirname "$0")" && pwd)
SRC=$(cd "$HERE/../.." && pwd)
TMO=${TMO:-900}
MEM=${MEM:-3072}
CKPTS=${CKPTS:-25}
XENBIN=/usr/lib/xen-4.17/bin
EX=$SRC/xl-config-examples
T_START=$(date +%s.%N)

die() { echo "xen-guest: FAIL: $*" >&2; exit 1; }
since() { echo "$(date +%s.%N) $1" | awk '{printf "%.1f", $1 - $2}'; }
STEPS=()
step_done() { STEPS+=("$(printf '%-58s %6s s  (at %6s s)' "$1" "$(since "$2")" "$(since "$T_START")")"); echo "xen-guest: $1: $(since "$2") s"; }

for f in "$BUILD/tapdisk" "$BUILD/tap-ctl" "$BUILD/colo-controller" "$BUILD/colo-test-xenstored" \
	"$SRC/hotplug/block-colo" /boot/xen-4.17-amd64.gz /bin/busybox $XENBIN/xenstored \
	$XENBIN/xen-init-dom0 $XENBIN/xl $XENBIN/xenconsoled /usr/bin/xenstore /usr/bin/flock \
	/usr/sbin/nbd-client /usr/bin/socat /usr/bin/openssl /sbin/mkfs.ext4 /sbin/e2fsck \
	/etc/xen/scripts/vif-bridge /etc/xen/xl.conf; do
	[ -e "$f" ] || die "missing $f (tests/xen-guest/install-deps.sh installs what this needs)"
done
command -v qemu-system-x86_64 >/dev/null || die "missing qemu-system-x86_64"
command -v cpio >/dev/null && command -v depmod >/dev/null || die "missing cpio or kmod"
KVER=$(cd /lib/modules && ls -d 6.1.*-amd64 2>/dev/null | sort -V | tail -n 1)
[ -n "$KVER" ] && [ -e "/boot/vmlinuz-$KVER" ] || die "no Debian 6.1 kernel (linux-image-amd64)"

WORK=${WORK:-$(mktemp -d /tmp/xen-guest.XXXXXX)}
mkdir -p "$WORK"
WORK=$(cd "$WORK" && pwd)
echo "xen-guest: work directory $WORK"
PIDS=()
cleanup() {
	local p
	for p in "${PIDS[@]}"; do
		kill -9 "$p" 2>/dev/null || :
		wait "$p" 2>/dev/null || :
	done
	PIDS=()
}
trap cleanup EXIT

free_port() {
	python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# ---- the guest's initramfs ----
t=$(date +%s.%N)
# add_modules ROOT MODULE...: with their dependencies, and a depmod so busybox modprobe works.
add_modules() {
	local r=$1 m f
	shift
	for m; do
		modprobe -S "$KVER" --show-depends "$m" | awk '$1 == "insmod" { print $2 }' | while read -r f; do
			mkdir -p "$r$(dirname "$f")"
			cp "$f" "$r$f"
		done
	done
	cp "/lib/modules/$KVER/modules.order" "/lib/modules/$KVER/modules.builtin"* "$r/lib/modules/$KVER/" 2>/dev/null || :
	depmod -b "$r" "$KVER"
}
busybox_root() {
	local r=$1 a
	mkdir -p "$r"/{bin,sbin,usr/bin,usr/sbin,lib,proc,sys,dev,tmp,run,mnt,root,etc}
	cp /bin/busybox "$r/bin/busybox"
	for a in $("$r/bin/busybox" --list-full); do
		[ -e "$r/$a" ] || [ -L "$r/$a" ] || ln -s /bin/busybox "$r/$a"
	done
}
G=$WORK/guest-root
rm -rf "$G"
busybox_root "$G"
add_modules "$G" xen-blkfront ext4
install -m 755 "$HERE/guest-init" "$G/init"
(cd "$G" && find . | cpio -o -H newc --quiet | gzip -1) >"$WORK/guest.cpio.gz"

# ---- the images: xvda with one partition (root=/dev/xvda1 in the examples), ext4 in it ----
A=$WORK/hosta-srv
B=$WORK/hostb/srv/xen
rm -rf "$A" "$WORK/hostb"
mkdir -p "$A" "$B"
truncate -s 64M "$A/vm1-root.img"
# An MBR: partition 1, type 83, from sector 2048 to the end (129024 sectors).
{
	printf '\x00\x20\x21\x00\x83\xfe\xff\xff\x00\x08\x00\x00\x00\xf8\x01\x00'
} | dd of="$A/vm1-root.img" bs=1 seek=446 conv=notrunc status=none
printf '\x55\xaa' | dd of="$A/vm1-root.img" bs=1 seek=510 conv=notrunc status=none
mkfs.ext4 -q -F -L vm1-root -E offset=1048576 "$A/vm1-root.img" 64512k
truncate -s 16M "$A/vm1-data.img"
cp "$A/vm1-root.img" "$A/vm1-data.img" "$B/"
step_done "guest initramfs and images" "$t"

# ---- the configurations: the examples, only paths and addresses substituted ----
P0=$(free_port)
P1=$(free_port)
while [ "$P1" = "$P0" ]; do P1=$(free_port); done
# subst FILE HOST-B-ADDRESS: the kernel and ramdisk paths, host B's address and ports.
subst() {
	sed -e 's|/boot/vmlinuz-6\.1\.0-18-amd64|/boot/vmlinuz|' \
		-e 's|/boot/initrd\.img-6\.1\.0-18-amd64|/boot/guest.cpio.gz|' \
		-e "s|192\\.0\\.2\\.2:9000|$2:$P0|g" -e "s|192\\.0\\.2\\.2:9001|$2:$P1|g" "$1"
}
subst "$EX/colo-primary.cfg" 10.0.2.2 >"$WORK/primary.cfg"
subst "$EX/colo-secondary.cfg" 127.0.0.1 >"$WORK/secondary.cfg"
for c in primary secondary; do
	echo "xen-guest: $c.cfg differs from xl-config-examples/colo-$c.cfg in:"
	diff "$EX/colo-$c.cfg" "$WORK/$c.cfg" | grep '^>' | sed 's/^/    /' || :
	! grep -v '^#' "$WORK/$c.cfg" | grep -q '192\.0\.2\.' || die "$c.cfg still names 192.0.2.x"
done
# Host B's disks: the strings of colo-secondary.cfg with host B's own image paths.
mapfile -t SDISKS < <(sed -n "s|.*'tapdisk:\\(colo:[^,]*\\),.*|\\1|p" "$WORK/secondary.cfg" | sed "s|:/srv/xen/|:$B/|")
[ ${#SDISKS[@]} = 2 ] || die "colo-secondary.cfg: ${#SDISKS[@]} disks, wanted 2"

# ---- mutual TLS between host A's controller and host B's xenstored ----
t=$(date +%s.%N)
TLS=$WORK/tls
mkdir -p "$TLS"
for h in hosta hostb; do
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
		-subj "/CN=$h" -keyout "$TLS/$h.key" -out "$TLS/$h.crt" 2>/dev/null
	cat "$TLS/$h.key" "$TLS/$h.crt" >"$TLS/$h.pem"
done

# ---- host B: xenstored, the TLS listener, the Secondary's disks ----
export TAPDISK=$BUILD/tapdisk BLKTAP_CONTROL_DIR=$WORK/hostb/ctl
mkdir -p "$BLKTAP_CONTROL_DIR"
XS_B=$WORK/hostb/xenstored.sock
"$BUILD/colo-test-xenstored" --socket "$XS_B" --state "$WORK/hostb/xenstored.state" \
	2>>"$WORK/hostb/xenstored.log" &
PIDS+=($!)
for _ in $(seq 100); do [ -S "$XS_B" ] && break; sleep 0.1; done
[ -S "$XS_B" ] || die "host B's colo-test-xenstored made no socket"
XSPORT=$(free_port)
socat "OPENSSL-LISTEN:$XSPORT,bind=127.0.0.1,reuseaddr,fork,cert=$TLS/hostb.pem,cafile=$TLS/hosta.crt,verify=1" \
	"UNIX-CONNECT:$XS_B" 2>>"$WORK/hostb/socat.log" &
PIDS+=($!)
SDOM=7
hostb() { XENSTORED_PATH=$XS_B "$@"; }
hostb_hotplug() {
	hostb env XENBUS_PATH="backend/vbd3/$SDOM/$1" TAP_CTL="$BUILD/tap-ctl" \
		BLOCK_COLO_LOG="$WORK/hostb/block-colo.log" BLOCK_COLO_LOCK_DIR="$WORK/hostb/lock" \
		bash "$SRC/hotplug/block-colo" "$2"
}
i=0
for d in 51712 51728; do
	hostb xenstore-write "backend/vbd3/$SDOM/$d/params" "${SDISKS[$i]}"
	hostb_hotplug $d add || die "host B: block-colo add $d"
	echo "xen-guest: host B disk $d: ${SDISKS[$i]}, state $(hostb xenstore-read /local/domain/0/colo/$SDOM/disks/$d/state)"
	i=$((i + 1))
done
step_done "host B: xenstored, TLS listener, block-colo add x2" "$t"

# ---- the dom0 initramfs: common part ----
t=$(date +%s.%N)
R=$WORK/dom0-root
rm -rf "$R"
busybox_root "$R"
mkdir -p "$R"/{usr/libexec/blktap,etc/xen/scripts,etc/colo,var/log/xen,var/lib/xen,srv,srv-images,boot,lib64}
ln -s ../run "$R/var/run"
copy_bin() {
	install -m 755 "$1" "$2/"
	ldd "$1" 2>/dev/null | grep -o '/[^ ]*' | while read -r lib; do
		[ -e "$R$lib" ] || { mkdir -p "$R$(dirname "$lib")"; cp -L "$lib" "$R$lib"; }
	done
}
for b in /bin/bash /usr/bin/flock /usr/sbin/nbd-client /usr/bin/socat /usr/bin/xenstore; do
	rm -f "$R$b"
	copy_bin "$b" "$R$(dirname "$b")"
done
for x in read write ls list rm exists chmod watch; do ln -sf xenstore "$R/usr/bin/xenstore-$x"; done
mkdir -p "$R$XENBIN"
for b in xenstored xen-init-dom0 xl xenconsoled xenconsole; do copy_bin "$XENBIN/$b" "$R$XENBIN"; done
copy_bin "$BUILD/tapdisk" "$R/usr/libexec/blktap"
copy_bin "$BUILD/tap-ctl" "$R/usr/sbin"
copy_bin "$BUILD/colo-controller" "$R/usr/sbin"
cp -a /etc/xen/scripts/. "$R/etc/xen/scripts/"
install -m 755 "$SRC/hotplug/block-colo" "$R/etc/xen/scripts/block-colo"
cp /etc/xen/xl.conf "$R/etc/xen/"
for l in /lib/x86_64-linux-gnu/libgcc_s.so.1 /lib/x86_64-linux-gnu/libnss_files.so.2; do
	[ -e "$l" ] && mkdir -p "$R${l%/*}" && cp -L "$l" "$R$l"
done
add_modules "$R" xen-evtchn xen-gntdev xen-gntalloc xen-privcmd xenfs xen-blkback xen-netback \
	nbd bridge virtio_pci virtio_net
install -m 755 "$HERE/dom0-init" "$R/init"
cp "/boot/vmlinuz-$KVER" "$R/boot/vmlinuz"
cp "$WORK/guest.cpio.gz" "$R/boot/guest.cpio.gz"
printf 'root:x:0:0:root:/root:/bin/sh\n' >"$R/etc/passwd"
printf 'root:x:0:\n' >"$R/etc/group"
printf '127.0.0.1 localhost\n' >"$R/etc/hosts"
zcat /boot/xen-4.17-amd64.gz >"$WORK/xen"
cp "/boot/vmlinuz-$KVER" "$WORK/vmlinuz"
# mk_initramfs NAME CFG IMAGES-DIR: the common part plus this boot's guest config and images.
mk_initramfs() {
	rm -f "$R"/srv-images/*
	cp "$2" "$R/etc/xen/vm1.cfg"
	gzip -1 -c "$3/vm1-root.img" >"$R/srv-images/vm1-root.img.gz"
	gzip -1 -c "$3/vm1-data.img" >"$R/srv-images/vm1-data.img.gz"
	(cd "$R" && find . | cpio -o -H newc --quiet | gzip -1) >"$WORK/$1.cpio.gz"
	echo "xen-guest: $1 initramfs $(du -h "$WORK/$1.cpio.gz" | cut -f1)"
}
cp "$TLS/hosta.pem" "$TLS/hostb.crt" "$R/etc/colo/"
mk_initramfs primary "$WORK/primary.cfg" "$A"
rm -f "$R/etc/colo/"*
step_done "dom0 initramfs" "$t"

# ---- QEMU ----
QPID=
# boot NAME CMDLINE-WORDS: starts QEMU with host A's dom0, serial log $WORK/NAME.serial.log.
boot() {
	LOG=$WORK/$1.serial.log
	: >"$LOG"
	# QEMU itself is the job (no timeout(1) between): kill -9 of $QPID is the plug pulled.
	qemu-system-x86_64 -machine q35 -accel tcg -cpu qemu64 -m "$MEM" -smp 2 \
		-display none -nographic -monitor none -serial stdio -no-reboot \
		-netdev user,id=n0 -device virtio-net-pci,netdev=n0 \
		-kernel "$WORK/xen" \
		-append "console=com1 com1=115200,8n1 dom0_mem=512M,max:512M bootscrub=0 loglvl=all guest_loglvl=all noreboot" \
		-initrd "$WORK/vmlinuz console=hvc0 earlyprintk=xen quiet loglevel=4 $2,$WORK/$1.cpio.gz" \
		</dev/null >"$LOG" 2>&1 &
	QPID=$!
	PIDS+=("$QPID")
	# The whole boot's limit: TMO seconds (the watchdog ends within 5 s of QEMU).
	(
		end=$((SECONDS + TMO))
		while kill -0 "$QPID" 2>/dev/null && [ $SECONDS -lt $end ]; do sleep 5; done
		kill -9 "$QPID" 2>/dev/null
	) &
	echo "xen-guest: QEMU $QPID ($1) started, serial log $LOG"
}
# wait_serial SECONDS PATTERN: until the serial log has a line matching PATTERN; 1 on a
# crash, QEMU's exit or the timeout.
wait_serial() {
	local end=$(($(date +%s) + $1))
	while [ "$(date +%s)" -lt "$end" ]; do
		grep -aEq "$2" "$LOG" && return 0
		grep -aEq '^XG-FAIL|Hardware Dom0 crashed|Panic on CPU|Kernel panic' "$LOG" && return 1
		kill -0 "$QPID" 2>/dev/null || { grep -aEq "$2" "$LOG"; return; }
		sleep 0.5
	done
	return 1
}
FAILED=
report_fail() {
	echo "xen-guest: FAIL: $*"
	FAILED=1
}
show_serial() {
	echo "===== $1: the test's lines (the whole log is $WORK/$1.serial.log) ====="
	tr -d '\r' <"$WORK/$1.serial.log" | grep -aE '^(XG-|CTL:|DMESG:)' | grep -av '^XG-GUEST-FILE'
	echo "===== $1: the last 150 lines ====="
	tr -d '\r' <"$WORK/$1.serial.log" | tail -n 150
	echo "====="
}
finish() {
	cleanup
	echo "===== step times ====="
	printf '%s\n' "${STEPS[@]}"
	if [ -n "$FAILED" ]; then
		for n in primary replica; do [ -s "$WORK/$n.serial.log" ] && show_serial $n; done
		echo "xen-guest: FAIL (after $(since "$T_START") s)"
		exit 1
	fi
	echo "xen-guest: PASS (after $(since "$T_START") s)"
	exit 0
}
marks() { tr -d '\r' <"$LOG" | grep -aE "$1" | sed 's/^/    /'; }

if [ -n "${REPLICA_FROM:-}" ]; then
	# Debugging the second boot alone: host B's images of an earlier run's WORK.
	cp "$REPLICA_FROM/hostb/srv/xen/"vm1-*.img "$B/"
else
t=$(date +%s.%N)
boot primary "xgmode=primary xsport=$XSPORT"
wait_serial 240 'XG-INFO: dom0 is up' || { report_fail "dom0 did not come up"; finish; }
step_done "host A: Xen + dom0 up" "$t"
t=$(date +%s.%N)
wait_serial 300 'XG-GUEST-FILE 3([^0-9]|$)' || { report_fail "the guest did not start writing"; finish; }
step_done "host A: xl create -p, colo start, guest boots and writes" "$t"
marks 'XG-(PASS|INFO): (xl create|backend/vbd|vm1 is|colo-controller start|start took)|blkfront: xvda|xen-blkback|nbd0: detected|XG-GUEST disks'
t=$(date +%s.%N)
wait_serial 300 '^XG-SNAP ' || { report_fail "no last checkpoint"; finish; }
step_done "host A: colo-controller run + last checkpoint (guest paused)" "$t"
marks '^CTL: |XG-(PASS|FAIL|INFO): (colo-controller run|run took|the last checkpoint)|^XG-SNAP'
t=$(date +%s.%N)
wait_serial 200 '^XG-PULL-THE-PLUG' || { report_fail "the guest did not write on after the last checkpoint"; finish; }
kill -9 "$QPID"
wait "$QPID" 2>/dev/null || :
! kill -0 "$QPID" 2>/dev/null || report_fail "QEMU $QPID is still there after kill -9"
step_done "host A: the guest writes on; QEMU killed (the plug pulled)" "$t"
grep -aq '^XG-FAIL' "$LOG" && report_fail "host A: $(grep -a '^XG-FAIL' "$LOG" | head -n 3)"
marks '^XG-PULL|XG-GUEST-FILE' | tail -n 4
snap=$(tr -d '\r' <"$LOG" | grep -a '^XG-SNAP ')

# ---- host B: failover, the replica checked ----
t=$(date +%s.%N)
out=$(hostb "$BUILD/colo-controller" --secondary $SDOM -v failover 2>&1) || report_fail "failover: $out"
echo "xen-guest: host B: colo-controller --secondary $SDOM -v failover: $out"
for d in 51712 51728; do
	echo "xen-guest: host B disk $d: state $(hostb xenstore-read /local/domain/0/colo/$SDOM/disks/$d/state) epoch $(hostb xenstore-read /local/domain/0/colo/$SDOM/disks/$d/epoch 2>&1) result '$(hostb xenstore-read /local/domain/0/colo/$SDOM/disks/$d/result)'"
done
for d in 51712 51728; do hostb_hotplug $d remove || report_fail "host B: block-colo remove $d"; done
[ -z "$(ls "$BLKTAP_CONTROL_DIR" | grep -v '^tapdisk$' || :)" ] || report_fail "host B: sockets left: $(ls "$BLKTAP_CONTROL_DIR")"
step_done "host B: failover, block-colo remove" "$t"
t=$(date +%s.%N)
want_epoch=$(echo "$snap" | sed -n 's/.*epoch=\([0-9]*\).*/\1/p')
got_epoch=$(hostb xenstore-read /local/domain/0/colo/$SDOM/disks/51712/epoch 2>/dev/null || echo "?")
for n in root data; do
	want=$(echo "$snap" | sed -n "s/.* $n=\\([0-9a-f]*\\).*/\\1/p")
	got=$(sha256sum "$B/vm1-$n.img" | cut -d' ' -f1)
	if [ -n "$want" ] && [ "$got" = "$want" ]; then
		echo "xen-guest: PASS: host B's vm1-$n.img = host A's at the last checkpoint (epoch $want_epoch): sha256 $got"
	else
		report_fail "host B's vm1-$n.img: sha256 $got, host A's at the last checkpoint (epoch $want_epoch): ${want:-none}"
	fi
done
dd if="$B/vm1-root.img" of="$WORK/replica-fs.img" bs=1M skip=1 status=none
e2fsck -E journal_only -y "$WORK/replica-fs.img" >"$WORK/e2fsck-replay.out" 2>&1 || :
if e2fsck -f -n "$WORK/replica-fs.img" >"$WORK/e2fsck.out" 2>&1; then
	# (exit 0; it may still say that the superblock's free counts, which ext4 updates
	# only at unmount, differ from what it counted)
	echo "xen-guest: PASS: e2fsck -f -n after journal replay: exit 0: $(tail -n +2 "$WORK/e2fsck.out" | grep -v '^Pass ' | tr '\n' '|')"
else
	report_fail "e2fsck -f -n after journal replay: $(tr '\n' '|' <"$WORK/e2fsck.out")"
fi
step_done "host B: sha256 of the images, e2fsck" "$t"
[ -z "$FAILED" ] || finish
fi

# ---- host B boots the replica ----
t=$(date +%s.%N)
mk_initramfs replica "$WORK/secondary.cfg" "$B"
boot replica "xgmode=replica"
wait_serial 240 'XG-INFO: dom0 is up' || { report_fail "replica: dom0 did not come up"; finish; }
step_done "replica: initramfs, Xen + dom0 up" "$t"
t=$(date +%s.%N)
wait_serial 300 "the replica's guest \(round 1\)|no verdict" || { report_fail "replica: no verdict of round 1"; finish; }
step_done "replica: xl create, the guest verifies its manifest" "$t"
t=$(date +%s.%N)
wait_serial 400 '^XG-DONE' || { report_fail "replica: no XG-DONE"; finish; }
step_done "replica: xl destroy, 2nd xl create, block-detach, destroy" "$t"
marks 'XG-GUEST (disks|VERIFY)|XG-(PASS|FAIL): (the replica|xl |tap-ctl list|control sockets|connected|/local/domain/0/colo after|backend/vbd after|tapdisks after|colo disks after|nbd devices)|^XG-DONE'
# The replica holds the files of the last checkpoint: at least those the guest had printed by
# then.  No upper bound from the console: a file's line reaches the serial log after its
# blocks reach the disk (on 2026-12-07 the checkpoint held file 30 while the last line printed
# before the plug was pulled was 29); that the replica is exactly the checkpoint is the
# sha256 check above.
vfiles=$(tr -d '\r' <"$LOG" | sed -n 's/.*XG-GUEST VERIFY-OK files=\([0-9]*\).*/\1/p' | head -n 1)
sfiles=$(echo "${snap:-}" | sed -n 's/.* files=\([0-9]*\).*/\1/p')
pfiles=$(tr -d '\r' <"$WORK/primary.serial.log" 2>/dev/null | sed -n 's/^XG-GUEST-FILE \([0-9]*\)$/\1/p' | tail -n 1)
if [ -n "${sfiles}" ]; then
	if [ -n "$vfiles" ] && [ "$vfiles" -ge "$sfiles" ]; then
		echo "xen-guest: PASS: the replica's manifest has $vfiles files: the guest had printed $sfiles at the last checkpoint and $pfiles when the plug was pulled"
	else
		report_fail "the replica's manifest has ${vfiles:-no} files; the guest had printed $sfiles at the last checkpoint and ${pfiles:-?} when the plug was pulled"
	fi
fi
grep -aq '^XG-FAIL' "$LOG" && report_fail "replica: $(grep -a '^XG-FAIL' "$LOG" | head -n 3)"
grep -aq '^XG-DONE fails=0' "$LOG" || report_fail "replica: $(grep -a '^XG-DONE' "$LOG")"
finish
