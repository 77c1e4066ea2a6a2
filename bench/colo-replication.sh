#!/usr/bin/env bash
# Benchmark: what COLO replication costs the Primary's guest.  fio's NBD engine writes through
# the Primary's export (4 KiB random writes at QD32, 1 MiB sequential writes at QD8) on:
#
#   aio            a plain aio VBD on the Primary's image (no colo driver at all);
#   colo-off       a colo VBD on the same image, never started: the driver passes through;
#   colo-repl      a colo Primary on the same image replicating to a Secondary tapdisk on
#                  127.0.0.1 whose image is on the same file system (so on the same disk);
#   colo-repl-shm  the same with the Secondary's image in /dev/shm: the Secondary's disk I/O
#                  (a save read and a write per first-touched block) no longer competes with
#                  the Primary's for the one disk.  A diagnostic: SHM=0 leaves it out.
#
# and, with PIN=1 (the default when there are 2 CPUs or more), "two hosts" on one machine:
#
#   aio-pin        a plain aio VBD, its tapdisk and fio pinned to CPU 0 (taskset);
#   colo-repl-pin  a Primary and fio pinned to CPU 0, replicating to a Secondary pinned to
#                  CPU 1 whose image is in /dev/shm: each side has a CPU of its own and the
#                  Secondary no disk I/O, as if it ran on a host of its own.  Compared with
#                  aio-pin (the "/ aio" column of the -pin rows).
#
# All VBDs live side by side (one tapdisk each, one image, used one at a time) and the runs are
# interleaved (rep, workload, target), so drift on a noisy machine hits every target alike.
# After every replicated run a checkpoint is taken, Primary (prepare_checkpoint) then
# Secondary (do_checkpoint), each timed around its tap-ctl call, so that the Secondary's buffer
# holds one run at most.  The Primary completes a guest write once its own disk has it and
# forwards it afterwards, up to queue_limit (64 MiB) ahead: its prepare_checkpoint includes
# draining that backlog, so "incl. drain" divides the run's bytes by the run's time plus the
# prepare_checkpoint: the rate at which the writes actually reached the Secondary.
# Also counted per run, from /proc/PID/stat: the tapdisks' CPU time (user + system) and minor
# page faults, through the checkpoint, per MiB written.
# Prints medians, and the ratios replicated / unreplicated (goal >= 0.9) as the median of the
# ratios within each round, which drift between rounds does not skew.  Asserts nothing.
#
#   bench/colo-replication.sh [BUILD_DIR]   env: RUNTIME=seconds per run (5), REPS=runs (3),
#                                                SIZE=image size (1G), DIR=where the images live
#                                                ($TMPDIR or /tmp), RAM_LIMIT=Secondary's (2G),
#                                                SHM=0 to leave colo-repl-shm out (1),
#                                                PIN=0 to leave the pinned pair out (1)
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=colo-lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/colo-lib.sh"

RUNTIME=${RUNTIME:-5}
REPS=${REPS:-3}
SIZE=${SIZE:-1G}
RAM_LIMIT=${RAM_LIMIT:-2G}
SHM=${SHM:-1}
PIN=${PIN:-1}
bench_init "${1:-.}" fio
shm_ok() { [ -d /dev/shm ] && [ -w /dev/shm ]; }
[ "$SHM" = 1 ] && ! shm_ok && SHM=0
if [ "$PIN" = 1 ] && ! { shm_ok && command -v taskset >/dev/null && [ "$(nproc)" -ge 2 ]; }; then
	echo "bench: the pinned pair needs taskset, /dev/shm and 2 CPUs: left out" >&2
	PIN=0
fi

bench_workdir colo-repl-bench
shm=
if [ "$SHM" = 1 ] || [ "$PIN" = 1 ]; then
	shm=$(mktemp -d /dev/shm/colo-repl-bench.XXXXXX)
	bench_dirs+=("$shm")
fi
warn_tmpfs

bench_images
[ "$SHM" = 0 ] || bench_fill "$shm/secondary.img"
[ "$PIN" = 0 ] || bench_fill "$shm/secondary-pin.img"

# pin CPU PID...: every thread of each process on that CPU.
pin() {
	local cpu=$1 p
	shift
	for p in "$@"; do
		taskset -a -p -c "$cpu" "$p" >/dev/null
	done
}

declare -A uri pids P S fio_cpu base
vbd_create "aio:$pimg"
uri[aio]=$URI pids[aio]=$PID
vbd_create "colo:127.0.0.1:$(free_port):$pimg"
uri[colo-off]=$URI pids[colo-off]=$PID
targets=(aio colo-off colo-repl)
[ "$SHM" = 1 ] && targets+=(colo-repl-shm)
if [ "$PIN" = 1 ]; then
	vbd_create "aio:$pimg"
	uri[aio-pin]=$URI pids[aio-pin]=$PID
	pin 0 "$PID"
	targets+=(aio-pin colo-repl-pin)
fi
for t in "${targets[@]}"; do
	base[$t]=aio
	case $t in
	colo-repl) s_img=$simg ;;
	colo-repl-shm) s_img=$shm/secondary.img ;;
	colo-repl-pin) s_img=$shm/secondary-pin.img ;;
	*-pin)
		base[$t]=aio-pin fio_cpu[$t]=0
		continue
		;;
	*) continue ;;
	esac
	colo_pair "$pimg" "$s_img" ram_limit="$RAM_LIMIT"
	S[$t]="$S_PID $S_MINOR"
	P[$t]="$P_PID $P_MINOR"
	uri[$t]=$P_URI
	pids[$t]="$P_PID $S_PID"
	if [ "$t" = colo-repl-pin ]; then
		pin 0 "$P_PID"
		pin 1 "$S_PID"
		base[$t]=aio-pin fio_cpu[$t]=0
	fi
done
# The /proc/PID/stat fields are counted after the command; tapdisk's has no blank in it.
grep -q '^[0-9]* (tapdisk) ' "/proc/${pids[aio]}/stat" ||
	{ echo "bench: unexpected /proc/PID/stat format" >&2; exit 1; }

# run_fio TARGET ARGS... -> "IOPS MiB/s io_bytes runtime_ms"; fio pinned as the target says.
run_fio() {
	local u=${uri[$1]} out pre=()
	[ -z "${fio_cpu[$1]:-}" ] || pre=(taskset -c "${fio_cpu[$1]}")
	shift
	out=$("${pre[@]}" fio --name=b --ioengine=nbd --uri="$u" --runtime="$RUNTIME" --time_based \
		--output-format=json "$@" 2>/dev/null)
	fio_write iops mib io_bytes runtime <<<"$out"
}

hz=$(getconf CLK_TCK)
workloads=(randwrite4k seqwrite1m)
declare -A vals ckp cks drain backlog bufblk cpu_p cpu_s flt_p flt_s floor
for rep in $(seq "$REPS"); do
	for w in "${workloads[@]}"; do
		workload_args "$w"
		for t in "${targets[@]}"; do
			read -r -a c0 < <(proc_counts ${pids[$t]})
			read -r iops mib bytes ms < <(run_fio "$t" "${args[@]}")
			v=$iops
			[ "$w" = seqwrite1m ] && v=$mib
			vals[$t,$w]+=" $v"
			extra=
			if [ -n "${P[$t]:-}" ]; then
				# shellcheck disable=SC2086
				set -- ${P[$t]} ${S[$t]}
				backlog[$t,$w]+=" $(field "$1" "$2" inflight_bytes)"
				timed "$1" "$2" checkpoint
				ckp[$t,$w]+=" $MS"
				d=$(drain_rate "$bytes" "$ms" "$MS" "$w")
				drain[$t,$w]+=" $d"
				bufblk[$t,$w]+=" $(field "$3" "$4" buffer_blocks)"
				timed "$3" "$4" checkpoint
				cks[$t,$w]+=" $MS"
				# What a tap-ctl round trip costs by itself: the floor of both timings.
				timed "$3" "$4" status
				floor[x]+=" $MS"
				extra=" (incl. drain $d; backlog ${backlog[$t,$w]##* } B; checkpoint P ${ckp[$t,$w]##* } ms, S ${cks[$t,$w]##* } ms, ${bufblk[$t,$w]##* } blocks)"
			fi
			read -r -a c1 < <(proc_counts ${pids[$t]})
			# Per tapdisk (the Primary's, then the Secondary's): CPU us and faults per MiB.
			per=()
			for i in "${!c0[@]}"; do
				per+=("$(awk -v d=$((c1[i] - c0[i])) -v hz="$hz" -v b="$bytes" -v k=$((i % 2)) \
					'BEGIN {m = b / 1048576; printf "%.0f", !m ? 0 : k ? d / m : d / hz * 1e6 / m}')")
			done
			cpu_p[$t,$w]+=" ${per[0]}" flt_p[$t,$w]+=" ${per[1]}"
			cpu_s[$t,$w]+=" ${per[2]:-0}" flt_s[$t,$w]+=" ${per[3]:-0}"
			echo "  rep $rep $w $t: $v$extra; CPU us/MiB ${per[0]} + ${per[2]:-0}, faults/MiB ${per[1]} + ${per[3]:-0}" >&2
		done
	done
done
for t in "${targets[@]}"; do
	[ -n "${P[$t]:-}" ] || continue
	# shellcheck disable=SC2086
	still_replicating "$t" ${P[$t]}
done

label() {
	case $1 in
	randwrite4k) echo "4k randwrite QD32 (IOPS)" ;;
	seqwrite1m) echo "1M seq write QD8 (MiB/s)" ;;
	esac
}
echo
echo "Guest writes through the Primary's NBD export, median of $REPS runs of ${RUNTIME} s; the ratios"
echo "are the median of each round's ratio (the targets of a round run one after another); the"
echo "-pin targets (two hosts: Primary and fio on CPU 0, Secondary on CPU 1) are divided by aio-pin:"
printf '%-26s%-15s%12s%16s%10s%15s\n' workload target result "incl. drain" "/ aio" "/ colo-off"
for w in "${workloads[@]}"; do
	for t in "${targets[@]}"; do
		r=$(med "${vals[$t,$w]}") d=-
		[ -n "${P[$t]:-}" ] && d=$(med "${drain[$t,$w]}")
		printf '%-26s%-15s%12s%16s%10s%15s\n' "$(label "$w")" "$t" "$r" "$d" \
			"$(ratio "${vals[$t,$w]}" "${vals[${base[$t]},$w]}")" \
			"$([ "${base[$t]}" = aio ] && ratio "${vals[$t,$w]}" "${vals[colo-off,$w]}" || echo -)"
	done
done
echo
echo "Tapdisk CPU time (user + system) and minor page faults per MiB written, through the"
echo "checkpoint; Primary + Secondary when replicating (median):"
printf '%-15s%22s%22s%22s%22s\n' target "4k rand CPU us/MiB" "4k rand faults/MiB" \
	"1M seq CPU us/MiB" "1M seq faults/MiB"
for t in "${targets[@]}"; do
	printf '%-15s' "$t"
	for w in "${workloads[@]}"; do
		if [ -n "${P[$t]:-}" ]; then
			printf '%22s%22s' "$(med "${cpu_p[$t,$w]}") + $(med "${cpu_s[$t,$w]}")" \
				"$(med "${flt_p[$t,$w]}") + $(med "${flt_s[$t,$w]}")"
		else
			printf '%22s%22s' "$(med "${cpu_p[$t,$w]}")" "$(med "${flt_p[$t,$w]}")"
		fi
	done
	echo
done
echo
echo "Checkpoint after each replicated run (median; wall time around tap-ctl colo ... checkpoint):"
printf '%-15s%-14s%16s%16s%18s%16s\n' target workload "backlog (MiB)" "Primary (ms)" \
	"Secondary (ms)" "buffer blocks"
for t in "${targets[@]}"; do
	[ -n "${P[$t]:-}" ] || continue
	for w in "${workloads[@]}"; do
		b=$(med "${backlog[$t,$w]}")
		printf '%-15s%-14s%16s%16s%18s%16s\n' "$t" "$w" \
			"$(awk -v b="$b" 'BEGIN {printf "%.1f", b / 1048576}')" \
			"$(med "${ckp[$t,$w]}")" "$(med "${cks[$t,$w]}")" "$(med "${bufblk[$t,$w]}")"
	done
done
echo "tap-ctl colo status round trip (the timings' floor): $(med "${floor[x]}") ms"
