#!/usr/bin/env bash
# Benchmark: fio --ioengine=nbd against tapdisk's NBD export (O_DIRECT, the default, and
# with the page cache, tap-ctl -D) and against nbdkit (default and cache=none) and qemu-nbd,
# on the same image file, in one run, next to fio with O_DIRECT on the file itself (no NBD:
# the disk's ceiling).  Prints medians and ratios to nbdkit's default and to that ceiling.
# All the servers run side by side on the one image and the runs are interleaved (round,
# workload, target), so drift on a noisy machine hits every target alike; each ratio is the
# median of the ratios within each round.  The runs of raw-o_direct, tapdisk and nbdkit
# cache=none start with the image written back and out of the page cache, the others with all
# of it cached.  A benchmark, not a test: it asserts nothing.
#
# tapdisk-ram, tapdisk with the page cache on a copy of the image in /dev/shm, is the export
# without a disk: what tapdisk and fio's NBD engine cost per request.  "serial" is the ratio to
# the ceiling if that cost and the disk's never overlapped (the per-request times added:
# ram / (raw + ram)), which is what a client sending its queue as one clump gets (QD32 rows).
#
#   bench/nbd-export.sh [BUILD_DIR]     env: RUNTIME=seconds per run (5), REPS=runs (3),
#                                            SIZE=image size (1G), DIR=where the image lives
set -euo pipefail

build=$(cd "${1:-.}" && pwd)
RUNTIME=${RUNTIME:-5}
REPS=${REPS:-3}
SIZE=${SIZE:-1G}
for tool in fio nbdkit qemu-nbd; do
	command -v "$tool" >/dev/null || { echo "bench: $tool is not installed" >&2; exit 1; }
done
[ -x "$build/tap-ctl" ] && [ -x "$build/tapdisk" ] || { echo "bench: build tapdisk first" >&2; exit 1; }

work=$(mktemp -d "${DIR:-/var/tmp}/nbd-bench.XXXXXX")
export BLKTAP_CONTROL_DIR=$work/ctl TAPDISK=$build/tapdisk
mkdir -p "$BLKTAP_CONTROL_DIR"
img=$work/disk.img
ramimg=/dev/shm/${work##*/}.img
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	for s in "$BLKTAP_CONTROL_DIR"/ctl*; do [ -S "$s" ] && kill "${s##*/ctl}" 2>/dev/null; done
	sleep 0.5
	rm -rf "$work"
	rm -f "$ramimg"
}
trap cleanup EXIT
fallocate -l "$SIZE" "$img"
# Fill it once so reads hit allocated blocks everywhere.
fio --name=fill --filename="$img" --rw=write --bs=1M --direct=1 --ioengine=libaio --iodepth=8 \
	--size="$SIZE" --output=/dev/null
cp "$img" "$ramimg"

declare -A uri
# start_target NAME: starts that server on the image; sets uri[NAME] (none for the baseline).
start_target() {
	local u dev minor pid file flags=()
	case $1 in
	raw-o_direct)
		# No NBD at all: fio's libaio with O_DIRECT on the file, the disk's own ceiling.
		uri[$1]=
		return 0
		;;
	tapdisk | tapdisk-buffered | tapdisk-ram)
		file=$img
		[ "$1" = tapdisk ] || flags=(-D)
		[ "$1" = tapdisk-ram ] && file=$ramimg
		dev=$("$build/tap-ctl" create -a "aio:$file" "${flags[@]}")
		minor=${dev##*-}
		pid=$("$build/tap-ctl" list -m "$minor" | sed -n 's/^pid=\([0-9]*\) .*/\1/p')
		u="nbd+unix:///?socket=$BLKTAP_CONTROL_DIR/nbd$pid.$minor"
		;;
	nbdkit)
		nbdkit -f -U "$work/nbdkit.sock" file "$img" &
		pids+=($!)
		u="nbd+unix:///?socket=$work/nbdkit.sock"
		;;
	nbdkit-cache-none)
		nbdkit -f -U "$work/nbdkit-nc.sock" file "$img" cache=none &
		pids+=($!)
		u="nbd+unix:///?socket=$work/nbdkit-nc.sock"
		;;
	qemu-nbd)
		qemu-nbd -t -k "$work/qemu.sock" -f raw -e 4 "$img" &
		pids+=($!)
		u="nbd+unix:///?socket=$work/qemu.sock"
		;;
	esac
	uri[$1]=$u
	for _ in $(seq 50); do
		[ -S "${u#*socket=}" ] && return 0
		sleep 0.1
	done
	echo "bench: $1 did not start" >&2
	exit 1
}

# cold: the image written back and out of the page cache, before each run of a server that
# bypasses the cache, so that it does not pay for the pages another one left (an O_DIRECT write
# first writes back and drops the cached pages it covers).
cold() {
	"${PY:-/usr/bin/python3}" -c '
import os, sys
fd = os.open(sys.argv[1], os.O_RDONLY)
os.fsync(fd)
os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
os.close(fd)' "$img"
}

# warm: the whole image read into the page cache, before each run of a server that uses it, as
# when that server ran alone and its earlier runs had filled the cache.
warm() {
	cat "$img" >/dev/null
}

# run_fio TARGET KIND ARGS... -> prints IOPS (or MiB/s for KIND bw)
run_fio() {
	local target=(--ioengine=nbd --uri="${uri[$1]}") kind=$2 out
	[ -n "${uri[$1]}" ] || target=(--ioengine=libaio --direct=1 --filename="$img")
	case $1 in
	raw-o_direct | tapdisk | nbdkit-cache-none) cold ;;
	tapdisk-ram) ;;
	*) warm ;;
	esac
	shift 2
	out=$(fio --name=b "${target[@]}" --runtime="$RUNTIME" --time_based \
		--output-format=json "$@" 2>/dev/null)
	"${PY:-/usr/bin/python3}" -c '
import json, sys
raw = sys.stdin.read()
j = json.loads(raw[raw.index("{"):])["jobs"][0]
side = j["write"] if j["write"]["io_bytes"] else j["read"]
print(round(side["bw_bytes"] / 1048576, 1) if sys.argv[1] == "bw" else round(side["iops"]))
' "$kind" <<<"$out"
}

median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

declare -A result vals
workloads=(randwrite4k randread4k seqwrite1m flush4k)
targets=(raw-o_direct nbdkit nbdkit-cache-none qemu-nbd tapdisk tapdisk-buffered tapdisk-ram)
for target in "${targets[@]}"; do
	start_target "$target"
done
for rep in $(seq "$REPS"); do
	for w in "${workloads[@]}"; do
		line=
		for target in "${targets[@]}"; do
			case $w in
			randwrite4k) v=$(run_fio "$target" iops --rw=randwrite --bs=4k --iodepth=32) ;;
			randread4k) v=$(run_fio "$target" iops --rw=randread --bs=4k --iodepth=32) ;;
			seqwrite1m) v=$(run_fio "$target" bw --rw=write --bs=1M --iodepth=8) ;;
			flush4k) v=$(run_fio "$target" iops --rw=randwrite --bs=4k --iodepth=1 --fsync=1) ;;
			esac
			vals[$target,$w]+=" $v"
			line+=" $target $v"
		done
		echo "  rep $rep $w:$line" >&2
	done
done
for target in "${targets[@]}"; do
	for w in "${workloads[@]}"; do
		# shellcheck disable=SC2086
		result[$target,$w]=$(median ${vals[$target,$w]})
	done
done

# paired A B W [serial]: the median over the rounds of A's result / B's, workload W; with
# serial, of A / (A + B).
paired() {
	# shellcheck disable=SC2046
	median $(paste -d' ' <(tr ' ' '\n' <<<"${vals[$1,$3]# }") <(tr ' ' '\n' <<<"${vals[$2,$3]# }") |
		awk -v serial="${4:-}" '{d = serial ? $1 + $2 : $2} d > 0 {printf "%.2f\n", $1 / d}')
}

# serial W: ram / (raw + ram) for workload W; only for the QD32 workloads, where fio sends its
# whole queue at once.
serial() {
	case $1 in randwrite4k | randread4k) ;; *) echo - && return ;; esac
	paired tapdisk-ram raw-o_direct "$1" serial
}

printf '\n%-28s' "workload (median of $REPS)"
for t in "${targets[@]}"; do printf '%18s' "$t"; done
printf '%18s%18s%18s%18s\n' "tapdisk/nbdkit" "buffered/nbdkit" "tapdisk/raw" "serial"
for w in "${workloads[@]}"; do
	case $w in
	randwrite4k) label="4k randwrite QD32 (IOPS)" ;;
	randread4k) label="4k randread QD32 (IOPS)" ;;
	seqwrite1m) label="1M seq write QD8 (MiB/s)" ;;
	flush4k) label="4k write+flush QD1 (IOPS)" ;;
	esac
	printf '%-28s' "$label"
	for t in "${targets[@]}"; do printf '%18s' "${result[$t,$w]}"; done
	printf '%18s%18s%18s%18s\n' "$(paired tapdisk nbdkit "$w")" "$(paired tapdisk-buffered nbdkit "$w")" \
		"$(paired tapdisk raw-o_direct "$w")" "$(serial "$w")"
done
echo "(results: medians of $REPS; ratios: medians of each round's ratio)"
