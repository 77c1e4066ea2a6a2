#!/usr/bin/env bash
# Benchmark: the memory the Secondary's disk buffer costs beyond its block data (goal: at most
# 32 bytes per 4 KiB block).  Two measures:
#
#   index    the unit test's own count (tests/unit/test-colo-buffer, test_index_overhead:
#            colo_buffer_index_bytes() after 262144 puts), next to what the index's growth rule
#            gives for SIZE / 4 KiB blocks: 12 bytes an entry (8-byte key, 4-byte slot), the
#            table grown by 1.5x past a load of 0.75;
#   RSS      the Secondary tapdisk's VmRSS (/proc/PID/status) before and after its buffer is
#            filled with SIZE of 4 KiB blocks, with no NBD client connected at either moment:
#            (RSS delta - SIZE) / blocks.  Two fills, each on a fresh pair: the Secondary VM's
#            4 KiB random writes through its export (every block once; they go only to the
#            buffer), and the Primary's 1 MiB sequential writes (every block saved once, the
#            replication path).  The delta counts everything the fill left resident: the index,
#            the allocator's slack around the 2 MiB data chunks, and memory freed by the
#            fill but not given back to the system.
#
#   bench/colo-buffer-memory.sh [BUILD_DIR]   env: SIZE=image size (1G), DIR=where the images
#                                                  live ($TMPDIR or /tmp)
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=colo-lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/colo-lib.sh"

SIZE=${SIZE:-1G}
bench_init "${1:-.}" fio
bytes=$(numfmt --from=iec "$SIZE")
blocks=$((bytes / 4096))

# ---- the index, as the unit test counts it ----
unit=$build/tests/unit/test-colo-buffer
[ -x "$unit" ] || make -C "$build" tests/unit/test-colo-buffer >/dev/null 2>&1 || true
if [ -x "$unit" ]; then
	unit_out=$(CK_FORK=no "$unit" 2>&1 | grep '^test_index_overhead:' || true)
else
	unit_out="(tests/unit/test-colo-buffer is not built: make check builds it)"
fi
# The growth rule of drivers/colo-buffer.c: start at 1024 entries, grow by half before a put
# would pass a load of 3/4.
rule=$(awk -v n="$blocks" 'BEGIN {
	cap = 1024
	while ((n + 0) * 4 > cap * 3) cap += int(cap / 2)
	printf "%d entries, %.2f bytes/block", cap, cap * 12 / n }')

# ---- RSS of a Secondary tapdisk ----
bench_workdir colo-mem-bench

bench_images

rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }

declare -A before after
fills=(svm-4k-random primary-1m-seq)
for fill in "${fills[@]}"; do
	colo_pair "$pimg" "$simg" ram_limit=2G
	sleep 0.2
	before[$fill]=$(rss_kib "$S_PID")
	case $fill in
	svm-4k-random)
		fio --name=svm --ioengine=nbd --uri="$S_URI" --rw=randwrite --bs=4k --iodepth=32 \
			--size="$SIZE" --output=/dev/null 2>/dev/null
		;;
	primary-1m-seq)
		fio --name=p --ioengine=nbd --uri="$P_URI" --rw=write --bs=1M --iodepth=8 \
			--size="$SIZE" --output=/dev/null 2>/dev/null
		wait_acked 3000
		;;
	esac
	sleep 0.2
	got=$(field "$S_PID" "$S_MINOR" buffer_blocks)
	[ "$got" = "$blocks" ] || { echo "bench: $fill: $got blocks buffered, not $blocks" >&2; exit 1; }
	after[$fill]=$(rss_kib "$S_PID")
	echo "  $fill: Secondary VmRSS ${before[$fill]} kB -> ${after[$fill]} kB with $got blocks" >&2
	# Kill both: a Secondary destroyed mid-replication would write its buffer back first.
	kill9_wait "$P_PID" "$S_PID"
done

echo
echo "Disk buffer memory beyond the block data, $blocks blocks of 4 KiB ($SIZE):"
echo "  index, unit test:        ${unit_out//$'\n'/; }"
echo "  index, growth rule:      $rule"
printf '  %-24s%16s%16s%16s%22s\n' "RSS, fill by" "before (kB)" "after (kB)" "delta - data" \
	"overhead (B/block)"
for fill in "${fills[@]}"; do
	d=$((after[$fill] * 1024 - before[$fill] * 1024 - bytes))
	printf '  %-24s%16s%16s%16s%22s\n' "$fill" "${before[$fill]}" "${after[$fill]}" \
		"$((d / 1024)) kB" "$(awk -v d="$d" -v n="$blocks" 'BEGIN {printf "%.1f", d / n}')"
done
