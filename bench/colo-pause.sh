#!/usr/bin/env bash
# Benchmark: the disk part of a checkpoint's pause against queue_limit.  A guest writes through
# the Primary's export all along (fio's NBD engine, 4 KiB random writes at QD32) while a
# checkpoint is taken INTERVAL_MS after the end of the previous one (the guest runs that long
# between two pauses, as under COLO): the Primary's prepare_checkpoint (it waits until the
# Secondary acknowledged every write before its marker: the backlog, at most queue_limit), then
# the Secondary's do_checkpoint.  Each is timed around its COLO control message, sent by one
# Python process to the tapdisk's control socket (no tap-ctl process start); a bare status
# round trip after each checkpoint is timed too: the floor of both, and what the machine's load
# adds to any round trip.  One fresh pair per queue_limit, the same limit on both
# sides; runs interleaved limit by limit, REPS times.
#
# Prints, per queue_limit: the guest's IOPS during the run, the checkpoints taken, and the
# median, p99 and maximum of prepare, do_checkpoint and their sum (the disk part of the pause,
# goal: p99 <= 5 ms on loopback), pooled over the reps.  With OUT=DIR, also writes there
# pause.tsv (one line per limit) and iops-LIMIT.log (fio's IOPS per 100 ms of the last rep),
# which bench/colo-pause-plot.sh draws.  Asserts nothing about speed; fails if a checkpoint
# fails.
#
# A LIMITS entry LIMIT@MS also gives the Primary pause_target=MS (docs/colo.md, "Pacing the
# checkpoint pause"): e.g. LIMITS="64M 64M@50" compares the default with a 50 ms target.
#
#   bench/colo-pause.sh [BUILD_DIR]   env: LIMITS ("1M 4M 16M 64M"), SECS=seconds of
#                                          checkpoints per run (20), INTERVAL_MS (100),
#                                          REPS (1), SIZE (1G), RAM_LIMIT (2G), DIR=where the
#                                          images live ($TMPDIR or /tmp), SHM=1 to put the
#                                          Secondary's image in /dev/shm (0), OUT=DIR
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=colo-lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/colo-lib.sh"

LIMITS=${LIMITS:-1M 4M 16M 64M}
SECS=${SECS:-20}
INTERVAL_MS=${INTERVAL_MS:-100}
REPS=${REPS:-1}
SIZE=${SIZE:-1G}
RAM_LIMIT=${RAM_LIMIT:-2G}
SHM=${SHM:-0}
OUT=${OUT:-}
bench_init "${1:-.}" fio
bench_workdir colo-pause-bench
warn_tmpfs
pimg=$work/primary.img
simg=$work/secondary.img
if [ "$SHM" = 1 ]; then
	shm=$(mktemp -d /dev/shm/colo-pause-bench.XXXXXX)
	bench_dirs+=("$shm")
	simg=$shm/secondary.img
fi
bench_fill "$pimg" "$simg"
[ -z "$OUT" ] || mkdir -p "$OUT"

# checkpoints SECS INTERVAL_MS P_PID.P_MINOR S_PID.S_MINOR: checkpoints INTERVAL_MS apart
# for SECS seconds; prints "prepare_ms do_checkpoint_ms status_ms" per checkpoint, the last a
# bare status round trip to the Primary right after (the floor, and the machine's noise).
checkpoints() {
	PYTHONPATH=$(dirname "${BASH_SOURCE[0]}") "$PY" - "$@" "$BLKTAP_CONTROL_DIR" <<'PYEOF'
import statistics, sys, time
from colo_control import finish, send
secs, interval = float(sys.argv[1]), float(sys.argv[2]) / 1000
disks = [tuple(int(x) for x in a.split(".")) for a in sys.argv[3:5]]
ctl = sys.argv[5]

def colo(disk, verb):
    """One COLO control message; returns its round trip in ms."""
    t = time.monotonic()
    finish(send(ctl, disk[0], disk[1], verb), verb)
    return (time.monotonic() - t) * 1000

end = time.monotonic() + secs
while time.monotonic() < end:
    print("%.3f %.3f %.3f" % (colo(disks[0], "checkpoint"), colo(disks[1], "checkpoint"),
                              colo(disks[0], "status")))
    time.sleep(interval)
PYEOF
}

# stats FILE COLUMN: "median p99 max" of that column (nearest-rank percentiles), ms.
stats() {
	awk -v c="$2" '{print $c}' "$1" | sort -g | awk '{a[NR] = $1}
		END {p = int(NR * 0.99); if (p < NR * 0.99) p++
		     printf "%.1f %.1f %.1f\n", a[int((NR + 1) / 2)], a[p], a[NR]}'
}

declare -A iops
for rep in $(seq "$REPS"); do
	for cfg in $LIMITS; do
		lim=${cfg%@*}
		primary_opts=(queue_limit="$lim")
		[ "$cfg" = "$lim" ] || primary_opts+=(pause_target="${cfg#*@}")
		colo_pair "$pimg" "$simg" ram_limit="$RAM_LIMIT" queue_limit="$lim"
		log=$work/iops-$cfg
		fio --name=b --ioengine=nbd --uri="$P_URI" --rw=randwrite --bs=4k --iodepth=32 \
			--runtime=$((SECS + 2)) --time_based --write_iops_log="$log" --log_avg_msec=100 \
			--output-format=json --output="$work/fio-$cfg.json" >/dev/null 2>&1 &
		fio_pid=$!
		sleep 1 # the guest's writes start, the backlog builds
		checkpoints "$SECS" "$INTERVAL_MS" "$P_PID.$P_MINOR" "$S_PID.$S_MINOR" >"$work/ckpt-$cfg"
		wait "$fio_pid"
		awk '{print $1, $2, $1 + $2, $3}' "$work/ckpt-$cfg" >>"$work/pause-$cfg"
		v=$(fio_write iops <"$work/fio-$cfg.json")
		iops[$cfg]+=" $v"
		[ -z "$OUT" ] || cp "${log}_iops.1.log" "$OUT/iops-$cfg.log"
		echo "  rep $rep queue_limit=$cfg: $v IOPS, $(wc -l <"$work/ckpt-$cfg") checkpoints," \
			"prepare median/p99/max $(stats "$work/ckpt-$cfg" 1 | tr ' ' /) ms" >&2
		kill9_wait "$P_PID" "$S_PID"
		rm -f "${log}"_iops.*.log
	done
done

echo
echo "A checkpoint $INTERVAL_MS ms after the previous one while the guest writes 4 KiB at random, QD32 ($REPS x $SECS s"
echo "per limit; times in ms around each control message; Secondary image: $([ "$SHM" = 1 ] && echo /dev/shm || echo "$work's file system"))"
printf '%-12s%8s%7s%26s%22s%26s%22s\n' queue_limit "IOPS" ckpts "prepare med/p99/max" \
	"do_ckpt med/p99/max" "pause med/p99/max" "status med/p99/max"
[ -z "$OUT" ] || printf '# queue_limit_bytes iops ckpts prepare_med p99 max do_ckpt_med p99 max pause_med p99 max limit status_med p99 max\n' >"$OUT/pause.tsv"
for cfg in $LIMITS; do
	lim=${cfg%@*}
	f=$work/pause-$cfg
	read -r pm pp px < <(stats "$f" 1)
	read -r sm sp sx < <(stats "$f" 2)
	read -r tm tp tx < <(stats "$f" 3)
	read -r fm fp fx < <(stats "$f" 4)
	printf '%-12s%8s%7s%26s%22s%26s%22s\n' "$cfg" "$(med "${iops[$cfg]}")" "$(wc -l <"$f")" \
		"$pm / $pp / $px" "$sm / $sp / $sx" "$tm / $tp / $tx" "$fm / $fp / $fx"
	[ -z "$OUT" ] || echo "$(numfmt --from=iec "$lim") $(med "${iops[$cfg]}") $(wc -l <"$f") $pm $pp $px $sm $sp $sx $tm $tp $tx $cfg $fm $fp $fx" >>"$OUT/pause.tsv"
done
