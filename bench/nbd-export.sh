#!/usr/bin/env bash
# Benchmark: fio --ioengine=nbd against tapdisk's NBD export (O_DIRECT, the default, and
# with the page cache, tap-ctl -D) and against nbdkit (default and cache=none) and qemu-nbd,
# on the same image file, in one run, next to fio with O_DIRECT on the file itself (no NBD:
# the disk's ceiling).  Prints medians and ratios to nbdkit's default and to that ceiling.
# A benchmark, not a test: it asserts nothing.
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
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	for s in "$BLKTAP_CONTROL_DIR"/ctl*; do [ -S "$s" ] && kill "${s##*/ctl}" 2>/dev/null; done
	sleep 0.5
	rm -rf "$work"
}
trap cleanup EXIT
fallocate -l "$SIZE" "$img"
# Fill it once so reads hit allocated blocks everywhere.
fio --name=fill --filename="$img" --rw=write --bs=1M --direct=1 --ioengine=libaio --iodepth=8 \
	--size="$SIZE" --output=/dev/null

start_target() { # name -> sets URI (FIO_TARGET for the no-NBD baseline)
	FIO_TARGET=(--ioengine=nbd)
	case $1 in
	raw-o_direct)
		# No NBD at all: fio's libaio with O_DIRECT on the file, the disk's own ceiling.
		FIO_TARGET=(--ioengine=libaio --direct=1 --filename="$img")
		URI=
		STOP=true
		return 0
		;;
	tapdisk | tapdisk-buffered)
		flags=()
		[ "$1" = tapdisk-buffered ] && flags=(-D)
		dev=$("$build/tap-ctl" create -a "aio:$img" "${flags[@]}")
		minor=${dev##*-}
		pid=$("$build/tap-ctl" list -m "$minor" | sed -n 's/^pid=\([0-9]*\) .*/\1/p')
		URI="nbd+unix:///?socket=$BLKTAP_CONTROL_DIR/nbd$pid.$minor"
		STOP="$build/tap-ctl destroy -p $pid -m $minor"
		;;
	nbdkit)
		nbdkit -f -U "$work/nbdkit.sock" file "$img" &
		pids+=($!)
		STOP="kill $!"
		URI="nbd+unix:///?socket=$work/nbdkit.sock"
		;;
	nbdkit-cache-none)
		nbdkit -f -U "$work/nbdkit-nc.sock" file "$img" cache=none &
		pids+=($!)
		STOP="kill $!"
		URI="nbd+unix:///?socket=$work/nbdkit-nc.sock"
		;;
	qemu-nbd)
		qemu-nbd -t -k "$work/qemu.sock" -f raw -e 4 "$img" &
		pids+=($!)
		STOP="kill $!"
		URI="nbd+unix:///?socket=$work/qemu.sock"
		;;
	esac
	for _ in $(seq 50); do
		sock=${URI#*socket=}
		[ -S "$sock" ] && return 0
		sleep 0.1
	done
	echo "bench: $1 did not start" >&2
	exit 1
}

# run_fio NAME ARGS... -> prints IOPS (or MiB/s for bandwidth jobs)
run_fio() {
	local kind=$1
	shift
	local out
	local target=("${FIO_TARGET[@]}")
	[ -n "$URI" ] && target+=(--uri="$URI")
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

median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

declare -A result
workloads=(randwrite4k randread4k seqwrite1m flush4k)
targets=(raw-o_direct nbdkit nbdkit-cache-none qemu-nbd tapdisk tapdisk-buffered)
for target in "${targets[@]}"; do
	start_target "$target"
	for w in "${workloads[@]}"; do
		vals=()
		for _ in $(seq "$REPS"); do
			case $w in
			randwrite4k) vals+=("$(run_fio iops --rw=randwrite --bs=4k --iodepth=32)") ;;
			randread4k) vals+=("$(run_fio iops --rw=randread --bs=4k --iodepth=32)") ;;
			seqwrite1m) vals+=("$(run_fio bw --rw=write --bs=1M --iodepth=8)") ;;
			flush4k) vals+=("$(run_fio iops --rw=randwrite --bs=4k --iodepth=1 --fsync=1)") ;;
			esac
		done
		result[$target,$w]=$(median "${vals[@]}")
		echo "  $target $w: ${vals[*]} -> median ${result[$target,$w]}" >&2
	done
	$STOP
	sleep 0.5
done

printf '\n%-28s' "workload (median of $REPS)"
for t in "${targets[@]}"; do printf '%18s' "$t"; done
printf '%18s%18s%18s\n' "tapdisk/nbdkit" "buffered/nbdkit" "tapdisk/raw"
for w in "${workloads[@]}"; do
	case $w in
	randwrite4k) label="4k randwrite QD32 (IOPS)" ;;
	randread4k) label="4k randread QD32 (IOPS)" ;;
	seqwrite1m) label="1M seq write QD8 (MiB/s)" ;;
	flush4k) label="4k write+flush QD1 (IOPS)" ;;
	esac
	printf '%-28s' "$label"
	for t in "${targets[@]}"; do printf '%18s' "${result[$t,$w]}"; done
	awk -v a="${result[tapdisk,$w]}" -v c="${result[tapdisk-buffered,$w]}" -v b="${result[nbdkit,$w]}" \
		-v r="${result[raw-o_direct,$w]}" \
		'BEGIN {printf "%18.2f%18.2f%18.2f\n", b ? a / b : 0, b ? c / b : 0, r ? a / r : 0}'
done
