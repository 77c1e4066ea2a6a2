#!/usr/bin/env bash
# hotplug/block-colo against the test xenstore daemon and real tapdisks: the backend set up
# as libxl does, the script run with XENBUS_PATH as libxl runs it, and every node it writes
# and removes checked exactly.  docs/hotplug.md.
#
# Covered: add and remove of two disks of one domain; the NBD socket serves the image;
# /dev/nbdN for a blkback (vbd) backend, or SKIP where the nbd module is missing; a
# second remove and a remove after the tapdisk died; a second backend sharing a VBD; the
# prefixes libxl and xl may put before colo:; a missing image, bad params and a failing bind
# (reported in hotplug-error, nothing left behind); an add killed half-way (libxl's hotplug
# timeout), then remove.
source "$(dirname "$0")/functions.sh"
source "$(dirname "$0")/xenstore-functions.sh"
requires qemu-io
requires xenstore-write
requires xenstore-ls

xsd_start

SCRIPT=$top_srcdir/hotplug/block-colo
export TAP_CTL=$TAPCTL
export BLOCK_COLO_LOG=$TEST_DIR/xen-hotplug.log
export BLOCK_COLO_LOCK_DIR=$TEST_DIR/lock
COLO=/local/domain/0/colo
PORT=$(free_port)

# backend DOMID DEVID PARAMS [TYPE]: the backend directory as libxl writes it before it runs
# the hotplug script; prints its path.
backend() {
	local be=backend/${4:-vbd3}/$1/$2
	xenstore-write "$be/frontend" "/local/domain/$1/device/vbd/$2" "$be/frontend-id" "$1" \
		"$be/online" 1 "$be/state" 1 "$be/params" "$3" "$be/mode" w \
		"$be/script" /etc/xen/scripts/block-colo || fail "writing $be"
	echo "$be"
}

# hotplug COMMAND BACKEND: runs the script; its stderr is in HP_ERR, its status in HP_RC.
hotplug() {
	HP_RC=0
	HP_ERR=$(XENBUS_PATH=$2 "$SCRIPT" "$1" 2>&1 >/dev/null) || HP_RC=$?
}

hotplug_ok() {
	hotplug "$@"
	[ "$HP_RC" = 0 ] || fail "block-colo $1 $2: exit $HP_RC: $HP_ERR"
}

# expect_ls PATH EXPECTED: xenstore-ls of PATH is exactly EXPECTED ("" when PATH is absent).
expect_ls() {
	local got
	got=$(xenstore-ls "$1" 2>/dev/null) || got=""
	[ "$got" = "$2" ] || fail "xenstore-ls $1: expected
$2
got
$got"
}

expect_absent() {
	! xenstore-exists "$1" 2>/dev/null || fail "$1 is still there: $(xenstore-ls "$1")"
}

# vbd_of NAME: sets PID and MINOR from tap-ctl list of the colo VBD serving NAME.
vbd_of() {
	local line
	line=$("$TAPCTL" list -t colo -f "$1") || fail "tap-ctl list"
	[ "$(wc -l <<<"$line")" = 1 ] || fail "expected one VBD for $1, got: $line"
	PID=$(sed -n 's/^pid=\([0-9]*\) minor=.*/\1/p' <<<"$line")
	MINOR=$(sed -n 's/.* minor=\([0-9]*\) .*/\1/p' <<<"$line")
	expect_eq "$line" "pid=$PID minor=$MINOR state=0 args=colo:$1" "tap-ctl list -f $1"
}

# The backend after add: libxl's nodes, then the script's.
backend_ls() { # backend_ls PARAMS PID MINOR DEVPATH DOMID DEVID
	cat <<EOF
frontend = "/local/domain/$5/device/vbd/$6"
frontend-id = "$5"
online = "1"
state = "1"
params = "$1"
mode = "w"
script = "/etc/xen/scripts/block-colo"
minor = "$3"
pid = "$2"
physical-device-path = "$4"
hotplug-status = "connected"
EOF
}

backend_removed_ls() { # backend_removed_ls PARAMS DOMID DEVID
	cat <<EOF
frontend = "/local/domain/$2/device/vbd/$3"
frontend-id = "$2"
online = "1"
state = "1"
params = "$1"
mode = "w"
script = "/etc/xen/scripts/block-colo"
hotplug-status = "connected"
EOF
}

# A bound disk's directory: the script's four nodes, then the state tapdisk writes on binding.
BOOT_ID=$(cat /proc/sys/kernel/random/boot_id)
disk_ls() { # disk_ls SPEC PID MINOR BACKEND [INDENT]
	sed "s/^/${5:-}/" <<EOF
params = "$1"
pid = "$2"
minor = "$3"
backend = "$4"
boot-id = "$BOOT_ID"
role = "none"
state = "idle"
link = "none"
epoch = "0"
sent-bytes = "0"
buffer-bytes = "0"
dirty-blocks = "0"
last-error = ""
last-error-at = ""
EOF
}

# wait_bound DIR: tapdisk's state nodes are written once bound; wait for the last one.
wait_bound() {
	for _ in $(seq 100); do
		xenstore-exists "$1/last-error" 2>/dev/null && return 0
		sleep 0.05
	done
	fail "no state nodes in $1 after the bind: $(xenstore-ls "$1")"
}

img1=$TEST_DIR/d1.img
img2=$TEST_DIR/d2.img
make_image "$img1" 16M
make_image "$img2" 16M
qemu-io -f raw -c "write -P 0x11 0 64k" "$img1" >/dev/null
qemu-io -f raw -c "write -P 0x22 0 64k" "$img2" >/dev/null
spec1=colo:127.0.0.1:$PORT:$img1
spec2=colo:127.0.0.1:$PORT:$img2

step "add: one disk of domain 5"
be1=$(backend 5 51712 "$spec1")
hotplug_ok add "$be1"
vbd_of "127.0.0.1:$PORT:$img1"
pid1=$PID minor1=$MINOR
sock1=$BLKTAP_CONTROL_DIR/nbd$pid1.$minor1
expect_ls "$be1" "$(backend_ls "$spec1" "$pid1" "$minor1" "$sock1" 5 51712)"
wait_bound "$COLO/5/disks/51712"
expect_ls "$COLO" "5 = \"\"
 disks = \"\"
  51712 = \"\"
$(disk_ls "$spec1" "$pid1" "$minor1" "$be1" "   ")"
perm=$(xenstore-ls -p "$COLO" | sed -n 's/^5 = "".*(\(.*\))$/\1/p')
expect_eq "$perm" n0 "the permissions of $COLO/5"
qio_cmds "nbd+unix:///?socket=$sock1" -- "read -P 0x11 0 64k" || fail "reading $sock1: $QIO_OUT"
# tapdisk writes the lines no syslog daemon takes on its stderr: the hotplug log, which
# outlives the script (not the script's temporary file, deleted when it exits).
expect_eq "$(readlink "/proc/$pid1/fd/2")" "$BLOCK_COLO_LOG" "tapdisk $pid1's stderr"
echo "PASS: add wrote the backend and the COLO directory, and the socket serves the image"

step "add: a second disk of domain 5"
be2=$(backend 5 51728 "$spec2")
hotplug_ok add "$be2"
vbd_of "127.0.0.1:$PORT:$img2"
pid2=$PID minor2=$MINOR
[ "$pid2" != "$pid1" ] || fail "both disks in tapdisk $pid1"
sock2=$BLKTAP_CONTROL_DIR/nbd$pid2.$minor2
expect_ls "$be2" "$(backend_ls "$spec2" "$pid2" "$minor2" "$sock2" 5 51728)"
wait_bound "$COLO/5/disks/51728"
expect_ls "$COLO/5/disks" "51712 = \"\"
$(disk_ls "$spec1" "$pid1" "$minor1" "$be1" " ")
51728 = \"\"
$(disk_ls "$spec2" "$pid2" "$minor2" "$be2" " ")"
qio_cmds "nbd+unix:///?socket=$sock2" -- "read -P 0x22 0 64k" || fail "reading $sock2: $QIO_OUT"
echo "PASS: two disks of one domain, each in a tapdisk of its own, both bound"

step "/dev/nbdN for a blkback (vbd) backend"
nbd_present=1
if [ ! -d /sys/module/nbd ] && ! { command -v modprobe >/dev/null && modprobe -n nbd 2>/dev/null; }; then
	nbd_present=0
fi
command -v nbd-client >/dev/null || nbd_present=0
img3=$TEST_DIR/d3.img
make_image "$img3" 16M
qemu-io -f raw -c "write -P 0x33 0 64k" "$img3" >/dev/null
spec3=colo:127.0.0.1:$PORT:$img3
be3=$(backend 6 51712 "$spec3" vbd)
hotplug_ok add "$be3"
vbd_of "127.0.0.1:$PORT:$img3"
pid3=$PID minor3=$MINOR
dev3=$(xenstore-read "$be3/physical-device-path")
if [ "$nbd_present" = 1 ] && [ -d /sys/module/nbd ]; then
	case $dev3 in /dev/nbd[0-9]*) ;; *) fail "physical-device-path is $dev3, not /dev/nbdN" ;; esac
	expect_eq "$(xenstore-read "$be3/physical-device")" "$(stat -L -c %t:%T "$dev3")" \
		"physical-device of $dev3"
	expect_eq "$(od -An -tx1 -N4 "$dev3" | tr -d ' ')" 33333333 "the first bytes of $dev3"
	echo "PASS: $dev3 is connected to the VBD and published for blkback"
else
	expect_eq "$dev3" "$BLKTAP_CONTROL_DIR/nbd$pid3.$minor3" "physical-device-path without nbd"
	expect_absent "$be3/physical-device"
	grep -q "block-colo: nbd is not available" <<<"$HP_ERR" ||
		fail "no 'nbd is not available' line: $HP_ERR"
	echo "SKIP: nbd module not present"
fi
wait_bound "$COLO/6/disks/51712"
hotplug_ok remove "$be3"
wait_gone "$pid3"
expect_absent "$COLO/6"
expect_absent "$be3/physical-device"
expect_absent "$be3/physical-device-path"
echo "PASS: the vbd backend's disk removed"

step "remove: the first disk, then the second"
hotplug_ok remove "$be1"
wait_gone "$pid1"
expect_ls "$be1" "$(backend_removed_ls "$spec1" 5 51712)"
expect_ls "$COLO" "5 = \"\"
 disks = \"\"
  51728 = \"\"
$(disk_ls "$spec2" "$pid2" "$minor2" "$be2" "   ")"
[ ! -e "$sock1" ] || fail "$sock1 is still there"
hotplug_ok remove "$be2"
wait_gone "$pid2"
expect_ls "$be2" "$(backend_removed_ls "$spec2" 5 51728)"
expect_ls "$COLO" ""
expect_eq "$("$TAPCTL" list)" "" "tap-ctl list after both removes"
echo "PASS: remove destroyed each VBD and removed its nodes, the domain's directory last"

step "remove again, and remove after the tapdisk died"
hotplug_ok remove "$be1"
grep -q "^block-colo: $be1 records no VBD: nothing to remove$" <<<"$HP_ERR" ||
	fail "second remove said: $HP_ERR"
hotplug_ok add "$be1"
vbd_of "127.0.0.1:$PORT:$img1"
wait_bound "$COLO/5/disks/51712"
kill -9 "$PID"
wait_gone "$PID"
hotplug_ok remove "$be1"
grep -q "^block-colo: tapdisk $PID has no VBD $MINOR serving $spec1 (any more): nothing to destroy$" \
	<<<"$HP_ERR" || fail "remove after kill -9 said: $HP_ERR"
expect_ls "$be1" "$(backend_removed_ls "$spec1" 5 51712)"
expect_ls "$COLO" ""
expect_eq "$("$TAPCTL" list)" "" "tap-ctl list (the dead tapdisk's minor is freed)"
# The tap-ctl list that remove runs reclaimed them (tap-ctl-stale.c), or remove did.
for s in "$BLKTAP_CONTROL_DIR/ctl$PID" "$BLKTAP_CONTROL_DIR/nbd$PID.$MINOR" \
	"$BLKTAP_CONTROL_DIR/tapdisk/tapdisk-$MINOR"; do
	[ ! -e "$s" ] || fail "$s of the dead tapdisk is left"
done
echo "PASS: a second remove and a remove after kill -9 succeed and leave nothing"

step "a second backend of the same image shares the VBD"
hotplug_ok add "$be1"
vbd_of "127.0.0.1:$PORT:$img1"
pid1=$PID minor1=$MINOR
wait_bound "$COLO/5/disks/51712"
be_dm=$(backend 7 51712 "$spec1")
hotplug_ok add "$be_dm"
grep -q "^block-colo: VBD $pid1/$minor1 stays bound to $COLO/5/disks/51712" <<<"$HP_ERR" ||
	fail "shared add said: $HP_ERR"
expect_ls "$be_dm" "$(backend_ls "$spec1" "$pid1" "$minor1" \
	"$BLKTAP_CONTROL_DIR/nbd$pid1.$minor1" 7 51712)"
expect_absent "$COLO/7"
hotplug_ok remove "$be_dm"
kill -0 "$pid1" || fail "removing the second backend killed tapdisk $pid1"
expect_ls "$be_dm" "$(backend_removed_ls "$spec1" 7 51712)"
hotplug_ok remove "$be1"
wait_gone "$pid1"
expect_ls "$COLO" ""
echo "PASS: the shared VBD lives until its last backend is removed"

step "params prefixes: tapdisk:, tap:, and libxl's aio: before colo:"
for prefix in tapdisk: tap: aio:; do
	xenstore-write "$be1/params" "$prefix$spec1"
	hotplug_ok add "$be1"
	vbd_of "127.0.0.1:$PORT:$img1"
	wait_bound "$COLO/5/disks/51712"
	expect_eq "$(xenstore-read "$COLO/5/disks/51712/params")" "$spec1" "params of $prefix$spec1"
	hotplug_ok remove "$be1"
	wait_gone "$PID"
done
expect_ls "$COLO" ""
echo "PASS: the prefixes are dropped"

# expect_error BACKEND TEXT: add failed with hotplug-status error and TEXT (a grep -x
# pattern), and left no tapdisk, minor or node behind.
expect_error() {
	hotplug add "$1"
	[ "$HP_RC" = 1 ] || fail "add $1: exit $HP_RC, expected 1 ($HP_ERR)"
	expect_eq "$(xenstore-read "$1/hotplug-status")" error "hotplug-status of $1"
	xenstore-read "$1/hotplug-error" | grep -qx -- "$2" ||
		fail "hotplug-error of $1: expected '$2', got '$(xenstore-read "$1/hotplug-error")'"
	grep -qx -- "block-colo: $2" <<<"$HP_ERR" || fail "add $1 said: $HP_ERR"
	expect_eq "$("$TAPCTL" list)" "" "tap-ctl list after a failed add"
	expect_ls "$COLO" ""
	for node in pid minor physical-device physical-device-path; do
		expect_absent "$1/$node"
	done
	[ -z "$(ls "$BLKTAP_CONTROL_DIR/tapdisk")" ] ||
		fail "minors left: $(ls "$BLKTAP_CONTROL_DIR/tapdisk")"
}

step "errors: a missing image, bad params, a failing bind"
be_err=$(backend 8 51712 "colo:127.0.0.1:$PORT:$TEST_DIR/missing.img")
expect_error "$be_err" "image $TEST_DIR/missing\.img does not exist"
xenstore-write "$be_err/params" "aio:$img1"
expect_error "$be_err" "params 'aio:$img1' is not colo:HOST:PORT:/path/to/image"
xenstore-write "$be_err/params" "colo:127.0.0.1:http:$img1"
expect_error "$be_err" "params 'colo:127\.0\.0\.1:http:$img1': 'http' is not a port number"
# A tap-ctl whose colo verb fails: add undoes everything and says why.
cat >"$TEST_DIR/tap-ctl-nobind" <<EOF
#!/bin/bash
if [ "\$1" = colo ]; then
	echo "tap-ctl: colo xenstore: refused for the test" >&2
	exit 22
fi
exec "$TAPCTL" "\$@"
EOF
chmod +x "$TEST_DIR/tap-ctl-nobind"
xenstore-write "$be_err/params" "$spec1"
TAP_CTL=$TEST_DIR/tap-ctl-nobind expect_error "$be_err" \
	"cannot bind VBD [0-9]*/0 to $COLO/8/disks/51712: tap-ctl: colo xenstore: refused for the test"
echo "PASS: failed adds report hotplug-error and leave nothing behind"

step "remove after an add killed half-way, as libxl's 40 s hotplug timeout kills it"
# A tap-ctl that never gets to open the VBD: the add is then killed with SIGKILL (no trap
# runs), after it allocated a minor, spawned a tapdisk and attached the VBD.
cat >"$TEST_DIR/tap-ctl-stall" <<EOF
#!/bin/bash
if [ "\$1" = open ]; then
	echo \$\$ >"$TEST_DIR/stalled"
	exec sleep 600
fi
exec "$TAPCTL" "\$@"
EOF
chmod +x "$TEST_DIR/tap-ctl-stall"
be_k=$(backend 9 51712 "$spec1")
for stall_at in open attach spawn; do
	sed -i "s/\"\\\$1\" = [a-z]*/\"\\\$1\" = $stall_at/" "$TEST_DIR/tap-ctl-stall"
	rm -f "$TEST_DIR/stalled"
	XENBUS_PATH=$be_k TAP_CTL=$TEST_DIR/tap-ctl-stall "$SCRIPT" add >/dev/null 2>&1 &
	hp=$!
	for _ in $(seq 600); do [ -s "$TEST_DIR/stalled" ] && break; sleep 0.05; done
	[ -s "$TEST_DIR/stalled" ] || fail "the add never reached tap-ctl $stall_at"
	kill -9 "$hp"
	wait "$hp" 2>/dev/null || :
	kill -9 "$(cat "$TEST_DIR/stalled")"
	left=$("$TAPCTL" list)
	hotplug_ok remove "$be_k"
	expect_eq "$("$TAPCTL" list)" "" "tap-ctl list after remove (the add killed at $stall_at left: $left)"
	[ -z "$(ls "$BLKTAP_CONTROL_DIR/tapdisk")" ] ||
		fail "minors left after the add killed at $stall_at: $(ls "$BLKTAP_CONTROL_DIR/tapdisk")"
	for node in pid minor physical-device physical-device-path; do
		expect_absent "$be_k/$node"
	done
	expect_ls "$COLO" ""
	echo "PASS: add killed at tap-ctl $stall_at (it had left: ${left//$'\n'/; }): remove left nothing"
done
