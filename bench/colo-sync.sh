#!/usr/bin/env bash
# Benchmark: the start's online sync (docs/colo.md, "Initial sync"), in one run:
#
#   full     start primary sync=full of SIZE over TCP on 127.0.0.1: the start's wall time,
#            which ends when the Secondary acknowledged the last extent;
#   nbdcopy  the same bytes copied by nbdcopy between two NBD exports over TCP on 127.0.0.1
#            (tap-ctl nbd-tcp of two plain aio tapdisks on the same two images), the
#            reference (goal: full >= 0.9 of it);
#   diff     start primary sync=diff of two images that differ in 1 % of their 1 MiB extents
#            (one sector each): the bytes sent (goal: exactly those extents) and its time
#            against full's;
#   guest    fio 4 KiB random writes at QD32 through the Primary's export for RUNTIME s while
#            a full sync runs, with sync_rate unset and with sync_rate=RATE, against the same
#            fio on a running pair with no sync: what the copy costs the guest.
#
# Prints the figures and the ratios.  Asserts only that diff sent the differing extents.
#
#   bench/colo-sync.sh [BUILD_DIR]   env: SIZE (1G), REPS (3), RUNTIME (5), RATE (100M),
#                                        DIR=where the images live ($TMPDIR or /tmp)
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=colo-lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/colo-lib.sh"

SIZE=${SIZE:-1G}
REPS=${REPS:-3}
RUNTIME=${RUNTIME:-5}
RATE=${RATE:-100M}
bench_init "${1:-.}" fio nbdcopy
bench_workdir colo-sync
warn_tmpfs
pimg=$work/primary.img
simg=$work/secondary.img
bench_fill "$pimg"
truncate -s "$SIZE" "$simg"
bytes=$(stat -c %s "$pimg")
mib=$((bytes >> 20))
extents=$(((bytes + (1 << 20) - 1) >> 20))

# tcp_export IMG: a plain aio tapdisk on IMG exported on 127.0.0.1 without TLS; sets TCP_URI.
tcp_export() {
	local b
	vbd_create "aio:$1"
	b=$("$tapctl" nbd-tcp -p "$PID" -m "$MINOR" -a 127.0.0.1:0 tls=none)
	TCP_URI="nbd://127.0.0.1:${b##*:}"
}

destroy() { "$tapctl" destroy -p "$1" -m "$2"; }

# pair_start PRIMARY-OPTION...: a pair on pimg/simg; the Primary's start timed (MS).
pair_start() {
	local port t0
	port=$(free_port)
	vbd_create "colo:127.0.0.1:$port:$simg"
	S_PID=$PID S_MINOR=$MINOR
	vbd_create "colo:127.0.0.1:$port:$pimg"
	P_PID=$PID P_MINOR=$MINOR P_URI=$URI
	"$tapctl" colo -p "$S_PID" -m "$S_MINOR" start secondary tls=none
	t0=$(now_ns)
	"$tapctl" colo -p "$P_PID" -m "$P_MINOR" start primary "$@" tls=none
	MS=$(ms_since "$t0")
}
pair_destroy() { destroy "$P_PID" "$P_MINOR"; destroy "$S_PID" "$S_MINOR"; }

# reset_secondary: the Secondary's image all zeros again (differs from the Primary's).
reset_secondary() { rm -f "$simg"; truncate -s "$SIZE" "$simg"; }

declare -a FULL COPY RATIO DIFF DIFF_SENT
echo "bench: $mib MiB, $REPS runs each, images in $work"
for rep in $(seq "$REPS"); do
	reset_secondary
	pair_start sync=full
	FULL+=("$(awk -v m="$mib" -v ms="$MS" 'BEGIN {printf "%.1f", m * 1000 / ms}')")
	pair_destroy

	reset_secondary
	tcp_export "$pimg"
	src_pid=$PID src_minor=$MINOR src=$TCP_URI
	tcp_export "$simg"
	dst_pid=$PID dst_minor=$MINOR dst=$TCP_URI
	t0=$(now_ns)
	nbdcopy "$src" "$dst"
	ms=$(ms_since "$t0")
	COPY+=("$(awk -v m="$mib" -v ms="$ms" 'BEGIN {printf "%.1f", m * 1000 / ms}')")
	destroy "$src_pid" "$src_minor"
	destroy "$dst_pid" "$dst_minor"
	# The ratio within the round: drift between rounds (a busy machine) does not skew it.
	RATIO+=("$(awk -v a="${FULL[-1]}" -v b="${COPY[-1]}" 'BEGIN {printf "%.2f", a / b}')")

	# diff: the Secondary a copy of the Primary, 1 % of the extents changed in one sector.
	cp "$pimg" "$simg"
	ndiff=$(((extents + 99) / 100))
	for e in $(seq 0 $((extents / ndiff)) $((extents - 1)) | head -n "$ndiff"); do
		dd if=/dev/urandom of="$simg" bs=512 seek=$((e * 2048 + 5)) count=1 conv=notrunc \
			status=none
	done
	pair_start sync=diff
	sent=$(field "$P_PID" "$P_MINOR" sync_sent_bytes)
	[ "$sent" = $((ndiff << 20)) ] ||
		{ echo "bench: diff sent $sent bytes, expected $((ndiff << 20))" >&2; exit 1; }
	DIFF+=("$MS")
	DIFF_SENT+=("$sent")
	pair_destroy
	echo "run $rep: full ${FULL[-1]} MiB/s, nbdcopy ${COPY[-1]} MiB/s, diff of $ndiff extents $MS ms ($sent bytes sent)"
done
full=$(med "${FULL[*]}")
copy=$(med "${COPY[*]}")
diff_ms=$(med "${DIFF[*]}")
full_ms=$(awk -v m="$mib" -v r="$full" 'BEGIN {printf "%.0f", m * 1000 / r}')
echo
echo "full sync of $mib MiB: $full MiB/s (median; $full_ms ms)"
echo "nbdcopy between two NBD exports over TCP: $copy MiB/s"
echo "ratio full / nbdcopy: $(med "${RATIO[*]}") (median of the rounds' ratios ${RATIO[*]}; goal >= 0.9)"
echo "diff of two images differing in $ndiff of $extents extents: ${DIFF_SENT[0]} bytes sent (exactly the differing extents), $diff_ms ms"
echo "ratio diff time / full time: $(awk -v a="$diff_ms" -v b="$full_ms" 'BEGIN {printf "%.2f", a / b}')"

# Guest writes during a sync: base (a running pair, no sync), then a full sync with
# sync_rate unset and with RATE, interleaved REPS times; medians.
guest_fio() {
	fio --name=g --ioengine=nbd --uri="$P_URI" --rw=randwrite --bs=4k --iodepth=32 \
		--runtime="$RUNTIME" --time_based --output-format=json 2>/dev/null | fio_write iops
}
declare -A IOPS COPIED SRATE
echo
for rep in $(seq "$REPS"); do
	for rate in base 0 "$RATE"; do
		reset_secondary
		if [ "$rate" = base ]; then
			cp "$pimg" "$simg"
			pair_start sync=none
			IOPS[$rate]+=" $(guest_fio)"
			pair_destroy
			continue
		fi
		port=$(free_port)
		vbd_create "colo:127.0.0.1:$port:$simg"
		S_PID=$PID S_MINOR=$MINOR
		vbd_create "colo:127.0.0.1:$port:$pimg"
		P_PID=$PID P_MINOR=$MINOR P_URI=$URI
		"$tapctl" colo -p "$S_PID" -m "$S_MINOR" start secondary tls=none
		"$tapctl" colo -p "$P_PID" -m "$P_MINOR" start primary sync=full sync_rate="$rate" tls=none &
		spid=$!
		while [ "$(field "$P_PID" "$P_MINOR" state)" != syncing ]; do sleep 0.02; done
		IOPS[$rate]+=" $(guest_fio)"
		COPIED[$rate]+=" $(($(field "$P_PID" "$P_MINOR" sync_done_bytes) >> 20))"
		SRATE[$rate]+=" $(($(field "$P_PID" "$P_MINOR" sync_rate) >> 20))"
		wait "$spid"
		pair_destroy
	done
done
base=$(med "${IOPS[base]}")
echo "guest 4k randwrite QD32 on a running pair without a sync: $base IOPS (median)"
for rate in 0 "$RATE"; do
	iops=$(med "${IOPS[$rate]}")
	echo "guest 4k randwrite QD32 during a full sync, sync_rate=$rate: $iops IOPS" \
		"($(awk -v a="$iops" -v b="$base" 'BEGIN {printf "%.2f", a / b}') of no sync);" \
		"the sync copied $(med "${COPIED[$rate]}") MiB during the ${RUNTIME} s at" \
		"$(med "${SRATE[$rate]}") MiB/s"
done
