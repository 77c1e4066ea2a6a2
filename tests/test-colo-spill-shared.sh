#!/bin/bash
# Two Secondaries never share a spill file: one named by a path that another tapdisk is
# using is refused at start (before, both wrote their saved blocks into the same file, and
# a failover wrote one disk's old contents over the other's); a spill= that names a
# directory gives every Secondary its own nameless file there, as one xenstore start
# request for all the disks of a domain needs.  A symbolic link or a file that is not a
# regular one (a device, a FIFO) is refused: the start would have truncated what it points
# to, or written guest data over a device.
source "$(dirname "$0")/functions.sh"
requires qemu-io

log_tapdisks
MiB=$((1 << 20))

# pair N: images pN/sN (and the reference rN), and a pair SN/PN of colo VBDs on them.
pair() {
	local n=$1 port
	make_image "$TEST_DIR/p$n.img" 16M "$n"
	cp "$TEST_DIR/p$n.img" "$TEST_DIR/s$n.img"
	cp "$TEST_DIR/p$n.img" "$TEST_DIR/r$n.img"
	port=$(free_port)
	colo_vbd "S$n" "colo:127.0.0.1:$port:$TEST_DIR/s$n.img"
	colo_vbd "P$n" "colo:127.0.0.1:$port:$TEST_DIR/p$n.img"
}

# spill_writes N PATTERN: the Primary PN writes 3 MiB (beyond the 1 MiB in RAM) and waits
# until the Secondary has saved the old contents.
spill_writes() {
	local uri=P${1}_URI
	qemu-io -f raw -c "write -P $2 4M 3M" "${!uri}" >"$TEST_DIR/w$1.out" 2>&1 ||
		fail "the Primary P$1's writes: $(cat "$TEST_DIR/w$1.out")"
	for _ in $(seq 600); do
		[ "$(colo_field "P$1" inflight_bytes)" = 0 ] && return 0
		sleep 0.05
	done
	fail "P$1's writes were not acknowledged within 30 s: $(colo "P$1" status)"
}

# failover_exact N: S N fails over; its disk is then the reference, the last checkpoint.
failover_exact() {
	colo "S$1" failover >/dev/null || fail "failover of S$1"
	same "$TEST_DIR/s$1.img" "$TEST_DIR/r$1.img" "S$1's disk after failover"
	colo_destroy "P$1"
	colo_destroy "S$1"
}

step "a spill file in use by another Secondary is refused"
spill=$TEST_DIR/shared.spill
pair 1
pair 2
colo S1 start secondary ram_limit=1M "spill=$spill" || fail "start S1"
colo P1 start primary sync=none || fail "start P1"  # identical copies
line=$(colo S2 start secondary ram_limit=1M "spill=$spill" 2>&1) &&
	fail "S2 started on S1's spill file"
expect_eq "$line" "tap-ctl: colo start: spill=$spill: in use by another tapdisk (Resource temporarily unavailable)" \
	"S2's start error"
expect_status S2 state idle
# S1 goes on, and its spill file holds only its own blocks.
spill_writes 1 0x11
[ "$(colo_field S1 buffer_bytes)" -ge $((3 * MiB)) ] || fail "S1 did not spill: $(colo S1 status)"
# S2 starts on a file of its own; after both fail over each disk is its own checkpoint.
colo S2 start secondary ram_limit=1M "spill=$TEST_DIR/own.spill" || fail "S2's second start"
colo P2 start primary sync=none || fail "start P2"  # identical copies
spill_writes 2 0x22
failover_exact 1
failover_exact 2
[ ! -e "$spill" ] || fail "the spill file is still there after its Secondary closed"

step "spill= names a directory: a nameless file of its own for each Secondary"
mkdir -m 700 "$TEST_DIR/spilldir"
pair 3
pair 4
colo S3 start secondary ram_limit=1M "spill=$TEST_DIR/spilldir" || fail "start S3"
colo S4 start secondary ram_limit=1M "spill=$TEST_DIR/spilldir" || fail "start S4"
colo P3 start primary sync=none || fail "start P3"  # identical copies
colo P4 start primary sync=none || fail "start P4"  # identical copies
spill_writes 3 0x33
spill_writes 4 0x44
failover_exact 3
failover_exact 4
expect_eq "$(ls -A "$TEST_DIR/spilldir")" "" "the spill directory after both closed"

step "spill= naming a symbolic link or a device is refused, and what it names is untouched"
pair 5
printf 'precious\n' >"$TEST_DIR/victim"
ln -s "$TEST_DIR/victim" "$TEST_DIR/link.spill"
line=$(colo S5 start secondary ram_limit=1M "spill=$TEST_DIR/link.spill" 2>&1) &&
	fail "S5 started on a symbolic link"
expect_eq "$line" "tap-ctl: colo start: spill=$TEST_DIR/link.spill: a symbolic link: name the file itself (Too many levels of symbolic links)" \
	"the start on a symbolic link"
expect_eq "$(cat "$TEST_DIR/victim")" "precious" "the file the link names"
line=$(colo S5 start secondary ram_limit=1M spill=/dev/null 2>&1) &&
	fail "S5 started on /dev/null"
expect_eq "$line" "tap-ctl: colo start: spill=/dev/null: not a regular file (Invalid argument)" \
	"the start on a device"
[ -c /dev/null ] || fail "/dev/null is no longer a device"
expect_status S5 state idle
colo S5 start secondary ram_limit=1M "spill=$TEST_DIR/own5.spill" || fail "S5's start on a file"
colo P5 start primary sync=none || fail "start P5"  # identical copies
spill_writes 5 0x55
failover_exact 5
echo PASS
