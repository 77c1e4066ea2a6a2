#!/usr/bin/env bash
# The main job: build, then run a replicated pair on loopback.  A Primary and a Secondary
# tapdisk each serve a colo disk; the Primary's writes are forwarded to the Secondary; a
# checkpoint, a Secondary VM write and a failover follow, and the disks are compared.
set -euo pipefail
src=$(cd "$(dirname "$0")/.." && pwd)
"$src/scripts/install-deps.sh"
BUILD_DIR=$src/build "$src/scripts/build.sh"
build=$src/build
export PATH="/usr/bin:$PATH"

work=$(mktemp -d /tmp/blktap-demo.XXXXXX)
export BLKTAP_CONTROL_DIR=$work/ctl TAPDISK=$build/tapdisk
mkdir -p "$BLKTAP_CONTROL_DIR"
trap 'for s in "$BLKTAP_CONTROL_DIR"/ctl*; do [ -S "$s" ] && kill "${s##*/ctl}" 2>/dev/null; done; rm -rf "$work"' EXIT

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
run() { printf '$ %s\n' "$*"; "$@"; }
tapctl() { run "$build/tap-ctl" "$@"; }
# pid_of MINOR: the tapdisk serving it.
pid_of() { "$build/tap-ctl" list -m "$1" | sed -n 's/^pid=\([0-9]*\) .*/\1/p'; }
port=$(/usr/bin/python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')

say "Two identical 64 MiB disks: one for the Primary host, one for the Secondary host"
head -c 64M /dev/urandom >"$work/primary.img"
cp "$work/primary.img" "$work/secondary.img"
cp "$work/primary.img" "$work/original.img"
run cmp "$work/primary.img" "$work/secondary.img" && echo "identical"

say "Each host opens its disk as colo:127.0.0.1:$port:/path (the Secondary listens there)"
sdev=$(tapctl create -a "colo:127.0.0.1:$port:$work/secondary.img")
pdev=$(tapctl create -a "colo:127.0.0.1:$port:$work/primary.img")
smin=${sdev##*-} pmin=${pdev##*-}
spid=$(pid_of "$smin") ppid=$(pid_of "$pmin")
suri="nbd+unix:///?socket=$BLKTAP_CONTROL_DIR/nbd$spid.$smin"
puri="nbd+unix:///?socket=$BLKTAP_CONTROL_DIR/nbd$ppid.$pmin"
tapctl list

say "Start replication: the Secondary listens, the Primary connects (and both disks are verified)"
tapctl colo -p "$spid" -m "$smin" start secondary
tapctl colo -p "$ppid" -m "$pmin" start primary verify=1
tapctl colo -p "$ppid" -m "$pmin" status
tapctl colo -p "$spid" -m "$smin" status

say "The guest writes 8 MiB on the Primary; each write is forwarded to the Secondary"
run qemu-io -f raw "$puri" -c 'write -P 0xaa 0 4M' -c 'write -P 0xbb 4M 4M'
tapctl colo -p "$ppid" -m "$pmin" status

say "The Secondary VM still sees the last checkpoint (the old data was saved in its buffer)"
run qemu-img compare -f raw -F raw "$work/original.img" "$suri"
tapctl colo -p "$spid" -m "$smin" status

say "Checkpoint: prepare on the Primary (every write is on the Secondary), then the Secondary drops its buffer"
tapctl colo -p "$ppid" -m "$pmin" checkpoint
tapctl colo -p "$spid" -m "$smin" checkpoint
run qemu-io -f raw "$suri" -c 'read -P 0xaa 0 4M' -c 'read -P 0xbb 4M 4M'
run cmp "$work/primary.img" "$work/secondary.img" && echo "both disks identical at the checkpoint"
cp "$work/primary.img" "$work/checkpoint.img"

say "COLO: the Secondary VM writes too; its writes go only to its buffer"
run qemu-io -f raw "$suri" -c 'write -P 0xcc 16M 1M'
run qemu-io -f raw "$puri" -c 'write -P 0xdd 32M 1M'
tapctl colo -p "$spid" -m "$smin" status

say "The Primary host dies (kill -9); the Secondary notices the lost link, then fails over"
run kill -9 "$ppid"
sleep 0.5
tapctl colo -p "$spid" -m "$smin" failover
tapctl colo -p "$spid" -m "$smin" status

say "The Secondary's disk holds exactly the checkpoint plus the Secondary VM's write"
cp "$work/checkpoint.img" "$work/expected.img"
/usr/bin/python3 -c 'import sys; f = open(sys.argv[1], "r+b"); f.seek(16 << 20); f.write(b"\xcc" * (1 << 20))' \
	"$work/expected.img"
echo "expected = the checkpoint + 0xcc at 16 MiB (the Primary's uncheckpointed 0xdd is rolled back)"
run cmp "$work/secondary.img" "$work/expected.img" && echo "identical: nothing lost, nothing torn"

say "After failover the VBD is a plain disk: further replication commands answer clearly"
"$build/tap-ctl" colo -p "$spid" -m "$smin" checkpoint || true
run qemu-io -f raw "$suri" -c 'read -P 0xcc 16M 1M'
tapctl destroy -p "$spid" -m "$smin"
