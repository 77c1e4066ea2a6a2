#!/usr/bin/env bash
# The main job: build, then run a replicated pair on loopback the way a Xen dom0 drives it.
# Two "hosts" each have a xenstore (the project's test daemon: Xen's own needs a hypervisor);
# the block-colo hotplug script brings up a two-disk Primary domain 5 on host A and a
# Secondary domain 7 on host B; tools/colo-controller plays the COLO toolstack through
# xenstore: start, checkpoints (also while the guest writes), and a failover after the Primary
# host dies.  The disks are compared byte for byte at each step.
set -euo pipefail
src=$(cd "$(dirname "$0")/.." && pwd)
"$src/scripts/install-deps.sh"
BUILD_DIR=$src/build "$src/scripts/build.sh"
build=$src/build
export PATH="/usr/bin:$PATH"

work=$(mktemp -d /tmp/blktap-demo.XXXXXX)
export BLKTAP_CONTROL_DIR=$work/ctl TAPDISK=$build/tapdisk TAP_CTL=$build/tap-ctl
export BLOCK_COLO_LOG= BLOCK_COLO_LOCK_DIR=$work/lock
mkdir -p "$BLKTAP_CONTROL_DIR"
pids=()
cleanup() {
	for s in "$BLKTAP_CONTROL_DIR"/ctl*; do [ -S "$s" ] && kill -9 "${s##*/ctl}" 2>/dev/null || true; done
	kill -9 "${pids[@]}" 2>/dev/null || true
	wait 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
run() { printf '$ %s\n' "$*"; "$@"; }
newport() { /usr/bin/python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
XS_A=$work/hostA-xenstored.sock
XS_B=$work/hostB-xenstored.sock
on_a() { XENSTORED_PATH=$XS_A "$@"; }
on_b() { XENSTORED_PATH=$XS_B "$@"; }
ctl() { run "$build/colo-controller" --primary 5 --secondary 7 --primary-xs "$XS_A" --secondary-xs "$XS_B" "$@"; }
# uri XS DOMID DEVID: the NBD export of the disk, from what block-colo wrote.
uri() {
	local d=/local/domain/0/colo/$2/disks/$3
	echo "nbd+unix:///?socket=$BLKTAP_CONTROL_DIR/nbd$(XENSTORED_PATH=$1 xenstore-read "$d/pid").$(XENSTORED_PATH=$1 xenstore-read "$d/minor")"
}
# hotplug XS DOMID DEVID add|remove [PARAMS]: what libxl does for a disk.
hotplug() {
	local be=backend/vbd3/$2/$3
	[ "$4" = add ] && XENSTORED_PATH=$1 xenstore-write "$be/params" "$5"
	printf '$ XENBUS_PATH=%s block-colo %s\n' "$be" "$4"
	XENSTORED_PATH=$1 XENBUS_PATH=$be bash "$src/hotplug/block-colo" "$4"
}

say "Two hosts on loopback, each with its own xenstore"
for h in A B; do
	"$build/colo-test-xenstored" --socket "$work/host$h-xenstored.sock" &
	pids+=($!)
done
for _ in $(seq 500); do [ -S "$XS_A" ] && [ -S "$XS_B" ] && break; sleep 0.01; done

say "Two identical pairs of 64 MiB disks (xvda = 51712, xvdb = 51728)"
for d in 51712 51728; do
	head -c 64M /dev/urandom >"$work/p$d.img"
	cp "$work/p$d.img" "$work/s$d.img"
	cp "$work/p$d.img" "$work/original$d.img"
done

say "The hotplug script brings up each disk: Secondary domain 7 on host B, Primary domain 5 on host A"
for d in 51712 51728; do
	port=$(newport)
	hotplug "$XS_B" 7 $d add "colo:127.0.0.1:$port:$work/s$d.img"
	hotplug "$XS_A" 5 $d add "colo:127.0.0.1:$port:$work/p$d.img"
done
run "$build/tap-ctl" list
puri=$(uri "$XS_A" 5 51712)
suri=$(uri "$XS_B" 7 51712)
puri2=$(uri "$XS_A" 5 51728)

say "A pre-shared key for the replication links: TLS 1.3 (docs/colo.md, \"Securing the link\")"
run psktool -u hosta -p "$work/keys.psk"

say "The controller starts the pair through xenstore (Secondary first; both disks verified equal)"
ctl --primary-args "verify=1 tls=psk tls_psk=$work/keys.psk tls_user=hosta" \
	--secondary-args "tls=psk tls_psk=$work/keys.psk" -v start
run on_a xenstore-ls /local/domain/0/colo/5/disks/51712

say "The guest writes 8 MiB on each Primary disk; each write is forwarded to the Secondary"
run qemu-io -f raw "$puri" -c 'write -P 0xaa 0 4M' -c 'write -P 0xbb 4M 4M'
run qemu-io -f raw "$puri2" -c 'write -P 0xa2 1M 8M'
sleep 0.3
run on_a xenstore-read /local/domain/0/colo/5/disks/51712/sent-bytes

say "The Secondary VM still sees the last checkpoint (the old data was saved in its buffer)"
run qemu-img compare -f raw -F raw "$work/original51712.img" "$suri"

say "One checkpoint of both disks together: one request per domain, every disk answers"
ctl checkpoint
run on_b xenstore-read /local/domain/0/colo/7/disks/51712/result /local/domain/0/colo/7/disks/51728/result
for d in 51712 51728; do
	run cmp "$work/p$d.img" "$work/s$d.img" && echo "disk $d identical on both hosts at the checkpoint"
done

say "Checkpoints every 20 ms for 2 s while the guest writes (and whenever a disk passes 4 MiB)"
ctl --interval 20 --threshold 4M --duration 2000 run &
cpid=$!
fio --name=guest --ioengine=nbd --uri="$puri" --rw=randwrite --bs=4k --iodepth=4 --runtime=2 \
	--time_based --output=/dev/null 2>/dev/null
wait $cpid
ctl checkpoint
for d in 51712 51728; do
	run cmp "$work/p$d.img" "$work/s$d.img" && echo "disk $d identical on both hosts at the checkpoint"
	cp "$work/p$d.img" "$work/checkpoint$d.img"
done

say "COLO: the Secondary VM writes too (only to its buffer); the Primary writes more"
run qemu-io -f raw "$suri" -c 'write -P 0xcc 16M 1M'
run qemu-io -f raw "$puri" -c 'write -P 0xdd 32M 1M'
run qemu-io -f raw "$puri2" -c 'write -P 0xde 40M 1M'

say "Host A dies (kill -9 of its tapdisks); the controller fails the Secondary over through xenstore"
for d in 51712 51728; do run kill -9 "$(on_a xenstore-read /local/domain/0/colo/5/disks/$d/pid)"; done
ctl -v failover
printf '$ colo-controller ... status | grep secondary\n'
"$build/colo-controller" --secondary 7 --secondary-xs "$XS_B" status | grep secondary || true

say "The Secondary's disks hold exactly the last checkpoint plus the Secondary VM's write"
cp "$work/checkpoint51712.img" "$work/expected51712.img"
/usr/bin/python3 -c 'import sys; f = open(sys.argv[1], "r+b"); f.seek(16 << 20); f.write(b"\xcc" * (1 << 20))' \
	"$work/expected51712.img"
cp "$work/checkpoint51728.img" "$work/expected51728.img"
echo "expected = the checkpoint + 0xcc at 16 MiB on xvda (the Primary's uncheckpointed 0xdd, 0xde are rolled back)"
for d in 51712 51728; do
	run cmp "$work/s$d.img" "$work/expected$d.img" && echo "disk $d: identical, nothing lost, nothing torn"
done

say "After failover the disks are plain disks: a checkpoint request gets a clear error result"
run on_b xenstore-write /local/domain/0/colo/7/request "102 checkpoint"
sleep 0.2
run on_b xenstore-read /local/domain/0/colo/7/disks/51712/result
run qemu-io -f raw "$suri" -c 'read -P 0xcc 16M 1M'

say "The hotplug script takes everything down again"
for d in 51712 51728; do
	hotplug "$XS_A" 5 $d remove
	hotplug "$XS_B" 7 $d remove
done
run "$build/tap-ctl" list
echo "demo done"
