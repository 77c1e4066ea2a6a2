#!/usr/bin/env bash
# Benchmark: failover with a full buffer.  A replicated pair on 127.0.0.1 (images of SIZE under
# $TMPDIR or /tmp, written once first) whose Secondary buffer is then filled with every 4 KiB
# block of the disk (262144 blocks for 1 GiB), in one of two ways (FILLS, both by default):
#
#   svm      the Secondary VM writes every block once (fio randwrite through the Secondary's
#            NBD export, QD32, random order, no block twice): those writes go only to the
#            buffer, and failover must write them to the disk;
#   primary  the Primary's guest writes the whole disk once (1 MiB sequential writes): the
#            Secondary saves every block's old contents in its buffer before writing it, and
#            failover must write those back, returning the disk to the last checkpoint.
#
# The Primary is killed (SIGKILL, as a failed host would vanish), then `tap-ctl colo failover`
# on the Secondary is timed: it writes the buffer back in disk order and flushes.  Its
# throughput (SIZE / time) is compared with fio's 1 MiB sequential writes (libaio, O_DIRECT,
# QD8, end_fsync=1 since failover ends with a flush) of SIZE on the same image file, right
# after, in the same run (goal: failover / fio >= 0.8).
#
# Checked every time, or the run fails (a failover that writes garbage fast is worthless):
#   - before failover: svm, the image file is unchanged (the Secondary VM's writes live in the
#     buffer); primary, it changed, and the Secondary VM still sees it as it was;
#   - after failover the image file's SHA-256 equals that of the Secondary VM's view of its disk,
#     read through its export just before (nbdcopy); svm, fio --verify_only on the file also
#     finds every block fio wrote (crc32c and offset in each block's header).
# Files are hashed with O_DIRECT reads, so the page cache stays out of the failover's way.
#
#   bench/colo-failover.sh [BUILD_DIR]   env: REPS=runs of each fill (3), FILLS ("svm primary"),
#                                             SIZE=image size (1G), DIR=where the images live
#                                             ($TMPDIR or /tmp)
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=colo-lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/colo-lib.sh"

REPS=${REPS:-3}
SIZE=${SIZE:-1G}
read -r -a fills <<<"${FILLS:-svm primary}"
bench_init "${1:-.}" fio nbdcopy
bytes=$(numfmt --from=iec "$SIZE")
blocks=$((bytes / 4096))

bench_workdir colo-failover-bench
warn_tmpfs

bench_images

sha_file() { dd if="$1" iflag=direct bs=4M status=none | sha256sum | cut -d' ' -f1; }
fail() {
	echo "bench: FAILED: $*" >&2
	exit 1
}

# The Secondary VM's writes, and fio's check of them: same job, same seed.
svm_job=(--rw=randwrite --bs=4k --iodepth=32 --size="$SIZE" --verify=crc32c --randseed=4242
	--verify_state_save=0)

declare -A fo_s fo_mib fio_mib ratio rate
for rep in $(seq "$REPS"); do
	for fill in "${fills[@]}"; do
		colo_pair "$pimg" "$simg" ram_limit=2G

		disk0=$(sha_file "$simg")
		case $fill in
		svm)
			r=$(fio --name=svm --ioengine=nbd --uri="$S_URI" "${svm_job[@]}" --do_verify=0 \
				--output-format=json 2>/dev/null | fio_write iops)
			what="the Secondary VM wrote $blocks blocks at $r IOPS"
			;;
		primary)
			r=$(fio --name=p --ioengine=nbd --uri="$P_URI" --rw=write --bs=1M --iodepth=8 \
				--size="$SIZE" --refill_buffers --output-format=json 2>/dev/null |
				fio_write mib)
			wait_acked 3000
			what="the Primary wrote $SIZE at $r MiB/s"
			;;
		esac
		rate[$fill]+=" $r"
		got=$(field "$S_PID" "$S_MINOR" buffer_blocks)
		[ "$got" = "$blocks" ] || fail "$fill: the Secondary buffers $got blocks, not $blocks"
		view=$(nbdcopy "$S_URI" - | sha256sum | cut -d' ' -f1)
		disk1=$(sha_file "$simg")
		case $fill in
		svm)
			[ "$disk1" = "$disk0" ] || fail "svm: the image changed before failover"
			[ "$view" != "$disk0" ] || fail "svm: the Secondary VM's writes are not in its view"
			;;
		primary)
			# The Primary's writes are on the Secondary's disk; its VM still sees the
			# checkpoint, the disk as it was before, which failover must restore.
			[ "$disk1" != "$disk0" ] || fail "primary: the Primary's writes did not arrive"
			[ "$view" = "$disk0" ] || fail "primary: the Secondary VM's view is not the checkpoint"
			;;
		esac

		# The Primary's host fails.
		kill -9 "$P_PID"
		for _ in $(seq 500); do
			[ "$(field "$S_PID" "$S_MINOR" state)" = broken ] && break
			sleep 0.01
		done
		[ "$(field "$S_PID" "$S_MINOR" state)" = broken ] ||
			fail "the Secondary did not see the Primary go"

		t0=$(now_ns)
		"$tapctl" colo -p "$S_PID" -m "$S_MINOR" failover
		t1=$(now_ns)
		s=$(awk -v d=$((t1 - t0)) 'BEGIN {printf "%.3f", d / 1e9}')
		fo_s[$fill]+=" $s"
		mib=$(awk -v s="$s" -v b="$bytes" 'BEGIN {printf "%.1f", b / 1048576 / s}')
		fo_mib[$fill]+=" $mib"
		st=$(field "$S_PID" "$S_MINOR" state)
		[ "$st" = failed-over ] || fail "state after failover: $st"

		[ "$(sha_file "$simg")" = "$view" ] ||
			fail "$fill: after failover the image differs from what the Secondary VM saw"
		if [ "$fill" = svm ]; then
			fio --name=svm --filename="$simg" --ioengine=libaio --direct=1 "${svm_job[@]}" \
				--verify_only --verify_fatal=1 --output=/dev/null ||
				fail "fio --verify_only on the image after failover"
		fi
		"$tapctl" destroy -p "$S_PID" -m "$S_MINOR"

		# Baseline: fio writes as many bytes to the same file, right after.
		base=$(fio --name=base --filename="$simg" --ioengine=libaio --direct=1 --rw=write \
			--bs=1M --iodepth=8 --size="$SIZE" --end_fsync=1 --output-format=json \
			2>/dev/null | fio_write mib)
		fio_mib[$fill]+=" $base"
		ratio[$fill]+=" $(awk -v a="$mib" -v b="$base" 'BEGIN {printf "%.2f", b ? a / b : 0}')"
		echo "  rep $rep, $fill: $what; failover $s s ($mib MiB/s, image verified);" \
			"fio 1M seq write $base MiB/s" >&2
	done
done

echo
echo "Failover writing back $blocks blocks of 4 KiB ($SIZE), median of $REPS (image verified every time):"
printf '%-40s%14s%16s%12s%16s\n' "buffer filled by" "failover (s)" "failover MiB/s" \
	"fio MiB/s" "failover / fio"
for fill in "${fills[@]}"; do
	case $fill in
	svm) label="Secondary VM, 4k random ($(med "${rate[$fill]}") IOPS)" ;;
	primary) label="Primary, 1M sequential ($(med "${rate[$fill]}") MiB/s)" ;;
	esac
	printf '%-40s%14s%16s%12s%16s\n' "$label" "$(med "${fo_s[$fill]}")" \
		"$(med "${fo_mib[$fill]}")" "$(med "${fio_mib[$fill]}")" "$(med "${ratio[$fill]}")"
done
echo "(failover / fio: the median of each run's ratio to the fio run right after it)"
