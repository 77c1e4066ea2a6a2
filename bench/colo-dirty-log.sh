#!/usr/bin/env bash
# Benchmark: what the Primary's dirty log (dirty_log=, docs/colo-dirty-log.md) costs its guest.
# fio's NBD engine writes 4 KiB random writes at QD32 through the export of two replicating
# Primaries on the same image (used one at a time), each with a Secondary of its own:
#
#   nolog   start primary
#   log     start primary dirty_log=$work/p.dlog (the log on the images' file system)
#
# Two schedules, interleaved (rep, schedule, target) so that drift hits both alike:
#
#   end     one checkpoint (Primary, then Secondary) after each run, as bench/colo-replication.sh
#   ckpt    checkpoints every CKPT_MS (100) during the run as well: extents are cleared and
#           dirtied again all the time, so the log is written and synced all the time
#
# Prints the median IOPS of each, the ratio log / nolog (goal >= 0.95, the median of the
# ratios within each round), and the log's syncs per run (dirty_log_flushes).  Asserts nothing.
#
#   bench/colo-dirty-log.sh [BUILD_DIR]   env: RUNTIME=seconds per run (5), REPS=runs (3),
#                                              SIZE=image size (1G), CKPT_MS=interval (100),
#                                              DIR=where the images and the log live
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=colo-lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/colo-lib.sh"

RUNTIME=${RUNTIME:-5}
REPS=${REPS:-3}
SIZE=${SIZE:-1G}
CKPT_MS=${CKPT_MS:-100}
bench_init "${1:-.}" fio
bench_workdir colo-dirty-log-bench
warn_tmpfs
bench_images
simg2=$work/secondary2.img
bench_fill "$simg2"

declare -A uri P S
colo_pair "$pimg" "$simg"
P[nolog]="$P_PID $P_MINOR" S[nolog]="$S_PID $S_MINOR" uri[nolog]=$P_URI
port=$(free_port)
vbd_create "colo:127.0.0.1:$port:$simg2"
S[log]="$PID $MINOR"
"$tapctl" colo -p "$PID" -m "$MINOR" start secondary tls=none
vbd_create "colo:127.0.0.1:$port:$pimg"
P[log]="$PID $MINOR" uri[log]=$URI
"$tapctl" colo -p "$PID" -m "$MINOR" start primary dirty_log="$work/p.dlog" tls=none
targets=(nolog log)

# checkpoint T: the Primary's checkpoint, then the Secondary's.
checkpoint() {
	# shellcheck disable=SC2086
	set -- ${P[$1]} ${S[$1]}
	"$tapctl" colo -p "$1" -m "$2" checkpoint >/dev/null
	"$tapctl" colo -p "$3" -m "$4" checkpoint >/dev/null
}

# ckpt_loop T: checkpoints every CKPT_MS until $work/stop exists (never cut one short).
ckpt_loop() {
	local s
	s=$(awk -v m="$CKPT_MS" 'BEGIN {print m / 1000}')
	while [ ! -e "$work/stop" ]; do
		sleep "$s"
		checkpoint "$1"
	done
}

declare -A vals flushes
for rep in $(seq "$REPS"); do
	for sched in end ckpt; do
		# Alternate which target goes first: the first run of a round pays for what the
		# previous round left (the Secondary's buffer, the page cache) differently.
		order=("${targets[@]}")
		[ $((rep % 2)) = 0 ] && order=(log nolog)
		for t in "${order[@]}"; do
			# shellcheck disable=SC2086 # "PID MINOR"
			f0=$(field ${P[$t]} dirty_log_flushes)
			loop=
			if [ "$sched" = ckpt ]; then
				rm -f "$work/stop"
				ckpt_loop "$t" &
				loop=$!
			fi
			out=$(fio --name=b --ioengine=nbd --uri="${uri[$t]}" --runtime="$RUNTIME" \
				--time_based --output-format=json --rw=randwrite --bs=4k --iodepth=32 \
				2>/dev/null)
			if [ -n "$loop" ]; then
				touch "$work/stop"
				wait "$loop"
			fi
			checkpoint "$t"
			v=$(fio_write iops <<<"$out")
			# shellcheck disable=SC2086
			f=$(($(field ${P[$t]} dirty_log_flushes) - f0))
			vals[$t,$sched]+=" $v"
			flushes[$t,$sched]+=" $f"
			echo "  rep $rep $sched $t: $v IOPS, $f log syncs" >&2
		done
	done
done
for t in "${targets[@]}"; do
	# shellcheck disable=SC2086
	still_replicating "$t" ${P[$t]}
done

echo
echo "4k random writes QD32 through a replicating Primary's NBD export, $SIZE image, median of"
echo "$REPS runs of ${RUNTIME} s; checkpoints after each run (end) or every ${CKPT_MS} ms (ckpt):"
printf '%-10s%14s%14s%18s%16s\n' schedule "nolog IOPS" "log IOPS" "log / nolog" "log syncs/run"
for sched in end ckpt; do
	printf '%-10s%14s%14s%18s%16s\n' "$sched" "$(med "${vals[nolog,$sched]}")" \
		"$(med "${vals[log,$sched]}")" "$(ratio "${vals[log,$sched]}" "${vals[nolog,$sched]}")" \
		"$(med "${flushes[log,$sched]}")"
done
