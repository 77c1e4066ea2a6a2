# shellcheck shell=bash disable=SC2034  # (the functions set variables for the scripts)
# What the colo benchmarks share: their checks, their work directory, the images, a replicated
# pair of tapdisks on 127.0.0.1, its status, timings and medians.  Sourced by bench/colo-*.sh
# (under set -euo pipefail); bench_fill writes images of their SIZE.  A setup step that
# fails prints "bench: ..." and exits 1.

# bench_init BUILD_DIR TOOL...: sets build, tapctl and PY; exits unless every TOOL is
# installed and BUILD_DIR holds a built tap-ctl and tapdisk.
bench_init() {
	local tool
	build=$(cd "$1" && pwd)
	shift
	PY=/usr/bin/python3
	for tool in "$@"; do
		command -v "$tool" >/dev/null || { echo "bench: $tool is not installed" >&2; exit 1; }
	done
	[ -x "$build/tap-ctl" ] && [ -x "$build/tapdisk" ] || { echo "bench: build tapdisk first" >&2; exit 1; }
	tapctl=$build/tap-ctl
}

# bench_workdir NAME: sets work, a new directory NAME.XXXXXX under $DIR, $TMPDIR or /tmp that
# holds the images and the control directory of this run's tapdisks.  On exit they are killed
# and work and every directory added to bench_dirs removed.
bench_workdir() {
	work=$(mktemp -d "${DIR:-${TMPDIR:-/tmp}}/$1.XXXXXX")
	bench_dirs=("$work")
	export BLKTAP_CONTROL_DIR=$work/ctl TAPDISK=$build/tapdisk
	mkdir -p "$BLKTAP_CONTROL_DIR"
	trap bench_cleanup EXIT
}

bench_cleanup() {
	local s
	for s in "$BLKTAP_CONTROL_DIR"/ctl*; do
		[ -S "$s" ] || continue
		# SIGKILL: a Secondary closed mid-replication would first write its buffer back.
		kill9_wait "${s##*/ctl}"
	done
	rm -rf "${bench_dirs[@]}"
}

# kill9_wait PID...: SIGKILL, then wait until every one is gone.
kill9_wait() {
	local p
	kill -9 "$@" 2>/dev/null || true
	for p in "$@"; do
		while kill -0 "$p" 2>/dev/null; do sleep 0.05; done
	done
}

# warn_tmpfs: images in RAM would hide the disk's cost.
warn_tmpfs() {
	[ "$(stat -f -c %T "$work")" = tmpfs ] && echo "bench: warning: $work is tmpfs" >&2
	return 0
}

# bench_fill IMG...: each a file of SIZE, written once, so that no run pays for allocating
# blocks, and the Secondary's saves read data.
bench_fill() {
	local img
	for img in "$@"; do
		truncate -s "$SIZE" "$img"
		fio --name=fill --filename="$img" --rw=write --bs=1M --direct=1 --ioengine=libaio \
			--iodepth=8 --size="$SIZE" --output=/dev/null
	done
}

# bench_images: sets pimg and simg, the Primary's and the Secondary's image in $work, and
# fills them.
bench_images() {
	pimg=$work/primary.img
	simg=$work/secondary.img
	bench_fill "$pimg" "$simg"
}

# free_port: a TCP port on 127.0.0.1 that nothing listens on now.
free_port() {
	"$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# vbd_create TYPE:PARAMS: a tapdisk serving it; sets PID, MINOR and URI (its NBD export).
vbd_create() {
	local dev
	dev=$("$tapctl" create -a "$1")
	MINOR=${dev##*-}
	PID=$("$tapctl" list -m "$MINOR" | sed -n 's/^pid=\([0-9]*\) .*/\1/p')
	URI="nbd+unix:///?socket=$BLKTAP_CONTROL_DIR/nbd$PID.$MINOR"
	[ -n "$PID" ] && [ -S "${URI#*socket=}" ] || { echo "bench: $1 did not start" >&2; exit 1; }
}

# colo_pair PIMG SIMG SECONDARY-OPTION...: a Secondary on SIMG and a Primary on PIMG
# replicating over a free port, started (the Secondary first, with the options; the Primary
# with those of the array primary_opts, if set).  The link's TLS options are COLO_TLS (both
# sides, default tls=none) and COLO_TLS_PRIMARY (the Primary's own, tls_user= ...).  Sets
# P_PID, P_MINOR, P_URI, S_PID, S_MINOR and S_URI.
colo_pair() {
	local pimg=$1 simg=$2 port
	shift 2
	port=$(free_port)
	vbd_create "colo:127.0.0.1:$port:$simg"
	S_PID=$PID S_MINOR=$MINOR S_URI=$URI
	vbd_create "colo:127.0.0.1:$port:$pimg"
	P_PID=$PID P_MINOR=$MINOR P_URI=$URI
	# shellcheck disable=SC2086 # words without blanks
	"$tapctl" colo -p "$S_PID" -m "$S_MINOR" start secondary "$@" ${COLO_TLS:-tls=none}
	# The images are filled alike and what the benchmarks measure starts after the start:
	# no initial sync (bench/colo-sync.sh measures that).
	# shellcheck disable=SC2086,SC2154 # primary_opts: the caller's, if set
	"$tapctl" colo -p "$P_PID" -m "$P_MINOR" start primary sync=none ${COLO_TLS:-tls=none} \
		${COLO_TLS_PRIMARY:-} ${primary_opts[@]+"${primary_opts[@]}"}
}

# field PID MINOR KEY: one field of colo status, a number or a string.
field() {
	"$tapctl" colo -p "$1" -m "$2" status | sed -n "s/.*\"$3\":\"\{0,1\}\([a-z_0-9-]*\).*/\1/p"
}

# wait_acked TRIES: polls every 20 ms, TRIES times at most, until the Primary of colo_pair
# has nothing in flight: the Secondary acknowledged all it was sent.
wait_acked() {
	for _ in $(seq "$1"); do
		[ "$(field "$P_PID" "$P_MINOR" inflight_bytes)" = 0 ] && break
		sleep 0.02
	done
}

now_ns() { date +%s%N; }
# ms_since NS: the milliseconds since now_ns gave NS, one decimal.
ms_since() { awk -v d=$(($(now_ns) - $1)) 'BEGIN {printf "%.1f", d / 1e6}'; }

# timed PID MINOR COLO-COMMAND...: runs tap-ctl colo, sets OUT (its output) and MS (wall
# time, ms).
timed() {
	local t0
	t0=$(now_ns)
	OUT=$("$tapctl" colo -p "$1" -m "$2" "${@:3}")
	MS=$(ms_since "$t0")
}

# fio_write KEY... < fio's JSON output: the write side's iops (rounded), mib (MiB/s, one
# decimal), io_bytes and runtime (ms), in the order asked, on one line.
fio_write() {
	"$PY" -c '
import json, sys
raw = sys.stdin.read()
w = json.loads(raw[raw.index("{"):])["jobs"][0]["write"]
get = {"iops": lambda: round(w["iops"]), "mib": lambda: round(w["bw_bytes"] / 1048576, 1),
       "io_bytes": lambda: w["io_bytes"], "runtime": lambda: w["runtime"]}
print(*(get[k]() for k in sys.argv[1:]))
' "$@"
}

# proc_counts PID...: "ticks faults" of each (utime + stime, and minflt, of /proc/PID/stat)
proc_counts() {
	local p a out=()
	for p in "$@"; do
		read -r -a a <"/proc/$p/stat"
		# minflt is the 10th field, utime and stime the 14th and 15th.
		out+=($((a[13] + a[14])) "${a[9]}")
	done
	echo "${out[*]}"
}

# fio_nbd URI ARGS... -> "IOPS MiB/s io_bytes runtime_ms" of RUNTIME seconds of fio's NBD
# engine on URI.
fio_nbd() {
	local u=$1 out
	shift
	out=$(fio --name=b --ioengine=nbd --uri="$u" --runtime="$RUNTIME" --time_based \
		--output-format=json "$@" 2>/dev/null)
	fio_write iops mib io_bytes runtime <<<"$out"
}

# workload_args W: sets args, fio's for randwrite4k (4 KiB random writes at QD32) or
# seqwrite1m (1 MiB sequential writes at QD8).
workload_args() {
	case $1 in
	randwrite4k) args=(--rw=randwrite --bs=4k --iodepth=32) ;;
	seqwrite1m) args=(--rw=write --bs=1M --iodepth=8) ;;
	esac
}

# drain_rate BYTES RUN_MS CKPT_MS W: the run's bytes over its time plus the Primary's
# checkpoint (which waits for the backlog), in W's unit (MiB/s, or 4 KiB IOPS).
drain_rate() {
	awk -v b="$1" -v r="$2" -v c="$3" -v k="$4" 'BEGIN {
		s = (r + c) / 1000
		if (k == "seqwrite1m") printf "%.1f", b / 1048576 / s
		else printf "%d", b / 4096 / s }'
}

# median X...: the middle value (of an even count, the lower of the two in the middle).
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

# med "X1 X2 ...": median of a list kept in one string.
med() {
	# shellcheck disable=SC2086,SC2154 # primary_opts: the caller's, if set
	median $1
}

# ratio "X1 X2 ..." "Y1 Y2 ...": the median of Xi / Yi, runs paired in the order they ran.
ratio() {
	# shellcheck disable=SC2046
	median $(paste -d' ' <(tr ' ' '\n' <<<"${1# }") <(tr ' ' '\n' <<<"${2# }") |
		awk '$2 > 0 {printf "%.2f\n", $1 / $2}')
}

# still_replicating NAME PID MINOR: exits 1 unless the Primary PID MINOR is still running.
still_replicating() {
	local st
	st=$("$tapctl" colo -p "$2" -m "$3" status)
	case $st in
	*'"state":"running"'*) ;;
	*) echo "bench: $1: the Primary is not replicating any more: $st" >&2; exit 1 ;;
	esac
}
