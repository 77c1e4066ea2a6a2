#!/usr/bin/env bash
# The full test suite: unit and integration tests on a normal build, make distcheck (the
# tarball builds, passes its unit tests, installs under its prefix only), the tests again under
# AddressSanitizer + UndefinedBehaviorSanitizer, a short run of each libFuzzer target, and a
# real Xen guest on colo disks under QEMU (tests/xen-guest/ci.sh).
set -euo pipefail
src=$(cd "$(dirname "$0")/.." && pwd)
"$src/scripts/install-deps.sh"
FUZZ_SECONDS=${FUZZ_SECONDS:-60}

echo "== normal build: make check"
BUILD_DIR=$src/build "$src/scripts/build.sh"
make -C "$src/build" -s -j2 check || { cat "$src"/build/tests/*.log "$src"/build/tests/unit/*.log 2>/dev/null | tail -200; exit 1; }

echo "== make distcheck: from the used tree above, and from a fresh one"
BUILD_DIR=$src/build "$src/scripts/distcheck.sh"
BUILD_DIR= "$src/scripts/distcheck.sh"

echo "== ASan + UBSan build: make check"
BUILD_DIR=$src/build-asan "$src/scripts/build.sh" --enable-sanitizers
make -C "$src/build-asan" -s -j2 check || { cat "$src"/build-asan/tests/*.log "$src"/build-asan/tests/unit/*.log 2>/dev/null | tail -200; exit 1; }

echo "== libFuzzer targets, ${FUZZ_SECONDS}s each"
BUILD_DIR=$src/build-fuzz "$src/scripts/build.sh" --enable-fuzzers CC=clang
for f in fuzz-nbd-request fuzz-control-message fuzz-colo-frame fuzz-colo-request fuzz-colo-handshake; do
	corpus=$src/build-fuzz/corpus-$f
	mkdir -p "$corpus"
	"$src/build-fuzz/tests/fuzz/$f" -max_total_time="$FUZZ_SECONDS" -print_final_stats=1 "$corpus" \
		2>"$src/build-fuzz/$f.log" || { tail -50 "$src/build-fuzz/$f.log"; exit 1; }
	grep -E "stat::number_of_executed_units" "$src/build-fuzz/$f.log" | sed "s/^/$f: /"
done
echo "== a real Xen guest on colo disks (tests/xen-guest): boot, checkpoints, the plug pulled"
BUILD_DIR=$src/build bash "$src/tests/xen-guest/ci.sh"
echo "== all tests passed"
