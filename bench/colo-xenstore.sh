#!/usr/bin/env bash
# Benchmark: checkpoints per second of a two-disk domain through xenstore, against the same
# checkpoints through tap-ctl, in one run on this machine.
#
# Two hosts on loopback: xenstore A (the Primary's) and B (the Secondary's) are two test
# daemons (colo-test-xenstored); a Primary domain 5 and a Secondary domain 7 with two 256 MiB
# colo disks each, bound to xenstore as the hotplug script binds them.  A small write load
# runs on both Primary disks all along: fio, 4 KiB random writes, QD1, RATE_IOPS per disk.
#
#   xenstore: colo-controller run --interval 0 for SECS seconds, REPS times: checkpoints/s
#             and the median latency of one checkpoint (Primary request written to the last
#             Secondary result), as the controller reports them.
#   tap-ctl:  the same two-disk checkpoint by hand, back to back for SECS seconds, REPS
#             times: tap-ctl colo checkpoint on both Primary disks at once, then on both
#             Secondary disks at once (4 tap-ctl processes per checkpoint).
#   control socket: the same 4 COLO control messages tap-ctl sends, from one Python process
#             (no process start per message): the floor of the tap-ctl path, against which
#             the latency that xenstore adds is measured.
#
# Prints medians and the ratio xenstore / tap-ctl, and the latency added by xenstore.  The goal
# is 100 checkpoints/s or more through xenstore (Remus ran 40).
#
#   bench/colo-xenstore.sh [BUILD_DIR]   env: REPS (3), SECS (5), RATE_IOPS (200),
#                                             DIR=where the images live ($TMPDIR or /tmp)
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=colo-lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/colo-lib.sh"

REPS=${REPS:-3}
SECS=${SECS:-5}
RATE_IOPS=${RATE_IOPS:-200}
SIZE=256M
bench_init "${1:-.}" fio xenstore-write
controller=$build/colo-controller
xsd=$build/colo-test-xenstored
[ -x "$controller" ] && [ -x "$xsd" ] || { echo "bench: build colo-controller first" >&2; exit 1; }

bench_workdir colo-xs-bench
warn_tmpfs

# Two xenstore daemons, killed at exit with everything else of bench_cleanup.
xsd_pids=()
start_xsd() {
	"$xsd" --socket "$work/$1.sock" 2>"$work/$1.log" &
	xsd_pids+=($!)
	for _ in $(seq 500); do [ -S "$work/$1.sock" ] && return 0; sleep 0.01; done
	echo "bench: colo-test-xenstored $1 did not start" >&2
	exit 1
}
stop_all() {
	kill -9 "${xsd_pids[@]}" "${fio_pids[@]}" 2>/dev/null || true
	wait 2>/dev/null || true
	bench_cleanup
}
trap stop_all EXIT
start_xsd a
start_xsd b
XS_A=$work/a.sock
XS_B=$work/b.sock

# disk NAME XS DOMID DEVID SPEC: a colo VBD in a tapdisk of its own, bound to its directory.
disk() {
	local dev dir line pid minor
	dev=$(XENSTORED_PATH=$2 "$tapctl" create -a "$5")
	minor=${dev##*-}
	line=$("$tapctl" list -m "$minor")
	pid=$(sed -n 's/^pid=\([0-9]*\) .*/\1/p' <<<"$line")
	dir=/local/domain/0/colo/$3/disks/$4
	XENSTORED_PATH=$2 xenstore-write "$dir/pid" "$pid" "$dir/minor" "$minor"
	"$tapctl" colo -p "$pid" -m "$minor" xenstore "$dir"
	printf -v "${1}_PID" %s "$pid"
	printf -v "${1}_MINOR" %s "$minor"
	printf -v "${1}_URI" %s "nbd+unix:///?socket=$BLKTAP_CONTROL_DIR/nbd$pid.$minor"
}

for i in 1 2; do
	bench_fill "$work/p$i.img" "$work/s$i.img"
	port=$(free_port)
	disk "S$i" "$XS_B" 7 $((51712 + 16 * (i - 1))) "colo:127.0.0.1:$port:$work/s$i.img"
	disk "P$i" "$XS_A" 5 $((51712 + 16 * (i - 1))) "colo:127.0.0.1:$port:$work/p$i.img"
done
ctl=("$controller" --primary 5 --secondary 7 --primary-xs "$XS_A" --secondary-xs "$XS_B")
"${ctl[@]}" --primary-args tls=none --secondary-args tls=none start

fio_pids=()
for i in 1 2; do
	uri=P${i}_URI
	fio --name=load --ioengine=nbd --uri="${!uri}" --rw=randwrite --bs=4k --iodepth=1 \
		--rate_iops="$RATE_IOPS" --time_based --runtime=3600 --output=/dev/null 2>/dev/null &
	fio_pids+=($!)
done
sleep 1

# median V...: of numbers, with awk.
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR] = $1} END {print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2}'; }

xs_rate=() xs_lat=() xs_p99=() tc_rate=() tc_lat=() cs_rate=() cs_lat=()
for r in $(seq "$REPS"); do
	out=$("${ctl[@]}" --interval 0 --duration $((SECS * 1000)) run)
	# run: N checkpoints, F failures, R checkpoints/s, median M ms, p99 P ms
	read -r n f rate med p99 < <(sed -E 's/^run: ([0-9]+) checkpoints, ([0-9]+) failures, ([0-9.]+) checkpoints\/s, median ([0-9.]+) ms, p99 ([0-9.]+) ms$/\1 \2 \3 \4 \5/' <<<"$out")
	[ "$f" = 0 ] || { echo "bench: $f checkpoints failed: $out" >&2; exit 1; }
	xs_rate+=("$rate") xs_lat+=("$med") xs_p99+=("$p99")
	echo "xenstore run $r: $out"

	n=0 lats=()
	end=$(($(date +%s%N) + SECS * 1000000000))
	t0=$(date +%s%N)
	while [ "$(date +%s%N)" -lt "$end" ]; do
		a=$(date +%s%N)
		"$tapctl" colo -p "$P1_PID" -m "$P1_MINOR" checkpoint >/dev/null &
		"$tapctl" colo -p "$P2_PID" -m "$P2_MINOR" checkpoint >/dev/null
		wait $!
		"$tapctl" colo -p "$S1_PID" -m "$S1_MINOR" checkpoint >/dev/null &
		"$tapctl" colo -p "$S2_PID" -m "$S2_MINOR" checkpoint >/dev/null
		wait $!
		lats+=("$((($(date +%s%N) - a) / 1000))")
		n=$((n + 1))
	done
	secs=$(awk -v ns=$(($(date +%s%N) - t0)) 'BEGIN {print ns / 1e9}')
	rate=$(awk -v n=$n -v s="$secs" 'BEGIN {printf "%.1f", n / s}')
	lat=$(awk -v us="$(median "${lats[@]}")" 'BEGIN {printf "%.2f", us / 1000}')
	tc_rate+=("$rate") tc_lat+=("$lat")
	echo "tap-ctl run $r: $n checkpoints, $rate checkpoints/s, median $lat ms"

	out=$(PYTHONPATH=$(dirname "${BASH_SOURCE[0]}") "$PY" - "$SECS" "$BLKTAP_CONTROL_DIR" \
		"$P1_PID.$P1_MINOR" "$P2_PID.$P2_MINOR" "$S1_PID.$S1_MINOR" "$S2_PID.$S2_MINOR" <<'PYEOF'
# Two-disk checkpoints through tapdisk's control sockets: "checkpoint" to both Primary disks
# at once, then to both Secondary disks.
import statistics, sys, time
from colo_control import finish, send
secs, ctl = float(sys.argv[1]), sys.argv[2]
disks = [tuple(int(x) for x in a.split(".")) for a in sys.argv[3:]]

lats, end, t0 = [], time.monotonic() + secs, time.monotonic()
while time.monotonic() < end:
    a = time.monotonic()
    for half in (disks[:2], disks[2:]):
        for s in [send(ctl, pid, minor, "checkpoint") for pid, minor in half]:
            finish(s)
    lats.append(time.monotonic() - a)
print("%d %.1f %.2f" % (len(lats), len(lats) / (time.monotonic() - t0),
                        statistics.median(lats) * 1000))
PYEOF
	)
	read -r n rate lat <<<"$out"
	cs_rate+=("$rate") cs_lat+=("$lat")
	echo "control socket run $r: $n checkpoints, $rate checkpoints/s, median $lat ms"
done

xr=$(median "${xs_rate[@]}")
tr=$(median "${tc_rate[@]}")
xl=$(median "${xs_lat[@]}")
tl=$(median "${tc_lat[@]}")
cr=$(median "${cs_rate[@]}")
cl=$(median "${cs_lat[@]}")
echo
echo "two-disk domain, $RATE_IOPS x 4 KiB writes/s per disk, medians of $REPS x ${SECS} s"
printf '%-44s %10s %12s\n' "" "ckpt/s" "latency ms"
printf '%-44s %10s %12s   (p99 %s ms)\n' "through xenstore (colo-controller run)" "$xr" "$xl" "$(median "${xs_p99[@]}")"
printf '%-44s %10s %12s\n' "through tap-ctl (4 processes per checkpoint)" "$tr" "$tl"
printf '%-44s %10s %12s\n' "through the control socket (no processes)" "$cr" "$cl"
printf 'ratio xenstore / tap-ctl: %s   xenstore / control socket: %s\n' \
	"$(awk -v a="$xr" -v b="$tr" 'BEGIN {printf "%.2f", a / b}')" \
	"$(awk -v a="$xr" -v b="$cr" 'BEGIN {printf "%.2f", a / b}')"
printf 'latency added by xenstore: %s ms over tap-ctl, %s ms over the control socket   goal >= 100 ckpt/s: %s\n' \
	"$(awk -v a="$xl" -v b="$tl" 'BEGIN {printf "%.2f", a - b}')" \
	"$(awk -v a="$xl" -v b="$cl" 'BEGIN {printf "%.2f", a - b}')" \
	"$(awk -v a="$xr" 'BEGIN {print (a >= 100) ? "met" : "NOT met"}')"
