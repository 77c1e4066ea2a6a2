#!/usr/bin/env bash
# Benchmark: the checkpoint with a full buffer.  A replicated pair on 127.0.0.1 (Primary and
# Secondary tapdisks, images of SIZE under $TMPDIR or /tmp); the Primary's guest writes the whole
# disk once with fio (1 MiB sequential writes, QD8, through the Primary's NBD export), so the
# Secondary saves every block once: its buffer holds SIZE / 4 KiB blocks (262144 for 1 GiB).
# Once the Primary has nothing left in flight (inflight_bytes 0, "drain" below is how long
# that took after fio ended) and the Secondary's status shows every block buffered, the
# checkpoint is timed around each tap-ctl call: the Primary's (prepare_checkpoint: an epoch
# marker through the link and its acknowledgement) and then the Secondary's (do_checkpoint:
# dropping the buffer, which the Secondary VM waits for).  Then the next fill, REPS times.
#
# Modes: "ram", ram_limit=2G, the buffer stays in RAM; "spill", ram_limit=256M and
# spill=<file>, 3/4 of the buffer in the spill file (SPILL_REPS fills, 1 by default).
# Also printed: the Secondary's VmRSS with the buffer full (median) and after each
# do_checkpoint (0.5 s later: the drop returns memory from a timer after its reply), and the
# spill file's size before and after.  Asserts only that the buffer filled as expected.
#
#   bench/colo-checkpoint.sh [BUILD_DIR]   env: REPS=fills in RAM (3), SPILL_REPS=fills with a
#                                               spill file (1; 0 skips), SIZE=image size (1G),
#                                               DIR=where the images live ($TMPDIR or /tmp)
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=colo-lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/colo-lib.sh"

REPS=${REPS:-3}
SPILL_REPS=${SPILL_REPS:-1}
SIZE=${SIZE:-1G}
bench_init "${1:-.}" fio
bytes=$(numfmt --from=iec "$SIZE")
blocks=$((bytes / 4096))

bench_workdir colo-ckpt-bench
warn_tmpfs

bench_images

rss_mib() { awk '/^VmRSS:/ {printf "%.0f", $2 / 1024}' "/proc/$1/status"; }

declare -A fill drain ckp cks rss_full rss_after spill_full spill_after
modes=(ram)
[ "$SPILL_REPS" -gt 0 ] && modes+=(spill)
for mode in "${modes[@]}"; do
	case $mode in
	ram) opts=(ram_limit=2G) reps=$REPS ;;
	spill) opts=(ram_limit=256M "spill=$work/spill.bin") reps=$SPILL_REPS ;;
	esac
	colo_pair "$pimg" "$simg" "${opts[@]}"
	for rep in $(seq "$reps"); do
		out=$(fio --name=fill --ioengine=nbd --uri="$P_URI" --rw=write --bs=1M --iodepth=8 \
			--size="$SIZE" --output-format=json 2>/dev/null)
		t0=$(now_ns)
		mib=$(fio_write mib <<<"$out")
		fill[$mode]+=" $mib"
		# The Primary completed the guest's writes; wait until the Secondary has them all.
		wait_acked 6000
		drain[$mode]+=" $(ms_since "$t0")"
		got=$(field "$S_PID" "$S_MINOR" buffer_blocks)
		if [ "$got" != "$blocks" ]; then
			echo "bench: $mode: the Secondary buffers $got blocks, not $blocks:" >&2
			"$tapctl" colo -p "$S_PID" -m "$S_MINOR" status >&2
			exit 1
		fi
		rss_full[$mode]+=" $(rss_mib "$S_PID")"
		[ "$mode" = spill ] && spill_full[$mode]+=" $(($(stat -c %s "$work/spill.bin") >> 20))"
		timed "$P_PID" "$P_MINOR" checkpoint
		ckp[$mode]+=" $MS"
		p_epoch=$OUT
		timed "$S_PID" "$S_MINOR" checkpoint
		cks[$mode]+=" $MS"
		[ "$OUT" = "$p_epoch" ] || { echo "bench: epochs differ: $p_epoch, $OUT" >&2; exit 1; }
		# The drop keeps the memory mapped; a timer gives it back right after the reply.
		sleep 0.5
		rss_after[$mode]+=" $(rss_mib "$S_PID")"
		[ "$mode" = spill ] && spill_after[$mode]+=" $(($(stat -c %s "$work/spill.bin") >> 20))"
		echo "  $mode fill $rep: fio $mib MiB/s, drain ${drain[$mode]##* } ms, $got blocks," \
			"checkpoint Primary ${ckp[$mode]##* } ms, Secondary ${cks[$mode]##* } ms ($OUT)," \
			"RSS ${rss_full[$mode]##* } -> ${rss_after[$mode]##* } MiB" >&2
	done
	# Empty buffers now: destroying them writes nothing back.
	"$tapctl" destroy -p "$P_PID" -m "$P_MINOR"
	"$tapctl" destroy -p "$S_PID" -m "$S_MINOR"
done

echo
echo "Checkpoint with $blocks blocks of 4 KiB buffered ($SIZE), wall time around tap-ctl (median):"
printf '%-28s%7s%14s%12s%14s%16s  %s\n' mode fills "fill (MiB/s)" "drain (ms)" \
	"Primary (ms)" "Secondary (ms)" "Secondary RSS (MiB): full -> 0.5 s after each checkpoint"
for mode in "${modes[@]}"; do
	case $mode in
	ram) label="ram_limit=2G" n=$REPS ;;
	spill) label="ram_limit=256M spill=file" n=$SPILL_REPS ;;
	esac
	after=${rss_after[$mode]# }
	printf '%-28s%7s%14s%12s%14s%16s  %s\n' "$label" "$n" "$(med "${fill[$mode]}")" \
		"$(med "${drain[$mode]}")" "$(med "${ckp[$mode]}")" "$(med "${cks[$mode]}")" \
		"$(med "${rss_full[$mode]}") -> ${after// /, }"
done
[ "$SPILL_REPS" -gt 0 ] &&
	echo "spill file: $(med "${spill_full[spill]}") MiB with the buffer full, $(med "${spill_after[spill]}") MiB after do_checkpoint"
exit 0
