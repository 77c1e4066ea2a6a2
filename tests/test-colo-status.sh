#!/bin/bash
# Status that is never stale (docs/colo.md, "Status"):
#  (a) last_error is the reason of the last failed operation and last_error_at says when
#      (UTC, ms); later successes leave both as they are, a new start clears them;
#  (b) an orderly stop of one side tells the other (a GOODBYE frame, docs/colo-protocol.md):
#      its link is `closed`, not `lost`, and its last_error is untouched.
. "$(dirname "$0")/functions.sh"
log_tapdisks colo
requires qemu-io
SOFT_CHECKS=1

now_ms() { echo $(($(date +%s%N) / 1000000)); }

# at_ms NAME: the VBD's last_error_at as ms since 1970 ("" if empty, "absent" if missing).
at_ms() {
	"$PY" - "$(colo "$1" status)" <<'PYEOF'
import datetime, json, sys
st = json.loads(sys.argv[1])
at = st.get("last_error_at")
if at is None:
    print("absent")
elif at == "":
    print("")
else:
    t = datetime.datetime.strptime(at, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=datetime.timezone.utc)
    print(int(t.timestamp() * 1000 + 0.5))
PYEOF
}

# soft_wait NAME KEY VALUE SECONDS: polls until the field has the value; 1 if it never does.
soft_wait() {
	local end=$(($(date +%s%N) + $4 * 1000000000))
	until [ "$(colo_field "$1" "$2")" = "$3" ]; do
		[ "$(date +%s%N)" -lt "$end" ] || return 1
		sleep 0.05
	done
}

expect_soft() {
	[ "$1" = "$2" ] || check_fail "$3: expected '$2', got '$1'"
}

pimg=$TEST_DIR/p.img
simg=$TEST_DIR/s.img
make_image "$pimg" 64M 3
cp "$pimg" "$simg"

step "(a) last_error and when; a later success leaves them, a new start clears them"
colo_pair "$pimg" "$simg"
expect_soft "$(colo_field S last_error)/$(at_ms S)" "/" "no error after the start"
t0=$(now_ms)
expect_error S 16 "tap-ctl: colo start: already started as secondary (running)" start secondary
t1=$(now_ms)
why=$(colo_field S last_error)
at=$(at_ms S)
expect_soft "$why" "start: already started as secondary (running)" "the refused start's last_error"
if [[ $at =~ ^[0-9]+$ ]] && ((at >= t0 - 5 && at <= t1 + 5)); then
	echo "    last_error_at within the refused call ($t0 .. $t1 ms)"
else
	check_fail "last_error_at '$at' is not within the refused call ($t0 .. $t1 ms)"
fi
qemu-io -f raw "$P_URI" -c 'write -P 0x31 0 64k' >/dev/null || fail "write on the Primary"
checkpoint_both 2
checkpoint_both 3
expect_soft "$(colo_field S last_error)/$(at_ms S)" "$why/$at" "the error and its time after good checkpoints"

step "(b) the Primary stops: the Secondary's link is closed, not lost"
colo P stop || fail "stop on the Primary"
expect_status P state stopped
soft_wait S link closed 20 || true
expect_soft "$(colo_field S link)" closed "the Secondary's link after the Primary's stop"
expect_soft "$(colo_field S state)" broken "the Secondary's state after the Primary's stop"
expect_soft "$(colo_field S last_error)/$(at_ms S)" "$why/$at" "the Secondary's last error after the Primary's stop"
# The Secondary still ends as the toolstack says.
colo S stop || fail "stop on the Secondary"
expect_status S state stopped
same "$simg" "$pimg" "both disks after the stops"
colo_pair_destroy

step "(b) the Secondary stops: the Primary's link is closed, not lost"
colo_pair "$pimg" "$simg"
qemu-io -f raw "$P_URI" -c 'write -P 0x32 1M 64k' >/dev/null || fail "write on the Primary"
checkpoint_both 2
colo S stop || fail "stop on the Secondary"
soft_wait P link closed 20 || true
expect_soft "$(colo_field P link)" closed "the Primary's link after the Secondary's stop"
expect_soft "$(colo_field P state)" broken "the Primary's state after the Secondary's stop"
expect_soft "$(colo_field P last_error)/$(at_ms P)" "/" "the Primary's last error after the Secondary's stop"
expect_error P 107 "tap-ctl: colo checkpoint: prepare_checkpoint: not replicating (broken, link closed)" checkpoint
colo_pair_destroy

[ "$FAILED_CHECKS" = 0 ] || fail "$FAILED_CHECKS checks failed"
echo "status: ok"
