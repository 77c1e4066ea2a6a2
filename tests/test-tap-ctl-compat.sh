#!/usr/bin/env bash
# blktap3 v4.0.8 compatibility of the control plane, both ways: blktap3's message layout
# sent raw to our tapdisk, and our tap-ctl against a stand-in for blktap3's tapdisk
# (tests/fake-blktap3-tapdisk.py).  Every mismatch is reported (SOFT_CHECKS).
source "$(dirname "$0")/functions.sh"
requires qemu-io
SOFT_CHECKS=1

# tc ARGS...: tap-ctl; sets RC, OUT (stdout) and ERR (stderr).
tc() {
	RC=0
	"$TAPCTL" "$@" >"$TEST_DIR/tc.out" 2>"$TEST_DIR/tc.err" || RC=$?
	OUT=$(cat "$TEST_DIR/tc.out")
	ERR=$(cat "$TEST_DIR/tc.err")
}

# expect_tc RC STDERR WHAT ARGS...: tap-ctl ARGS exits RC with exactly the line STDERR.
expect_tc() {
	local rc=$1 line=$2 what=$3
	shift 3
	tc "$@"
	[ "$RC" = "$rc" ] || check_fail "$what: tap-ctl $*: exit $RC, expected $rc ($ERR)"
	[ "$ERR" = "$line" ] || check_fail "$what: tap-ctl $*: expected '$line', got '$ERR'"
}

# check_eq ACTUAL EXPECTED WHAT: expect_eq that reports and goes on.
check_eq() { [ "$1" = "$2" ] || check_fail "$3: expected '$2', got '$1'"; }

# list_line MINOR: tap-ctl list's line for MINOR.
list_line() { "$TAPCTL" list -m "$1"; }

# raw_resume PID MINOR PATH: RESUME in blktap3's layout (the new image in the open
# parameters' path field); prints "ok" or "error ERRNO TEXT".
raw_resume() {
	"$PY" - "$BLKTAP_CONTROL_DIR/ctl$1" "$2" "$3" <<'PYEOF'
import socket, struct, sys
MSG, RESUME, RESUME_RSP, ERROR = 544, 11, 12, 1
path, minor, new = sys.argv[1], int(sys.argv[2]), sys.argv[3].encode()
params = struct.pack("=III", 0, 0, 0) + new.ljust(256, b"\0")
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.settimeout(300)
s.connect(path)
s.sendall(struct.pack("=HH4x", RESUME, minor) + params.ljust(MSG - 8, b"\0"))
r = b""
while len(r) < MSG:
    b = s.recv(MSG - len(r))
    if not b:
        sys.exit("tapdisk closed the connection")
    r += b
t, = struct.unpack_from("=H", r, 0)
if t == RESUME_RSP:
    print("ok")
elif t == ERROR:
    err, = struct.unpack_from("=i", r, 8)
    print("error %d %s" % (err, r[12:268].split(b"\0")[0].decode()))
else:
    print("type %d" % t)
PYEOF
}

# fake_start MINOR:STATE:ARGS...: starts the stand-in for blktap3's tapdisk; sets FAKE_PID
# and FAKE_LOG.
fake_start() {
	FAKE_LOG=$TEST_DIR/fake.log
	: >"$FAKE_LOG"
	"$PY" "$top_srcdir/tests/fake-blktap3-tapdisk.py" "$BLKTAP_CONTROL_DIR" "$FAKE_LOG" "$@" \
		>"$TEST_DIR/fake.out" &
	FAKE_PID=$!
	cleanup_fn "kill $FAKE_PID 2>/dev/null"
	for _ in $(seq 300); do
		grep -q '^ready' "$TEST_DIR/fake.out" && return 0
		sleep 0.1
	done
	fail "the stand-in for blktap3's tapdisk did not start"
}

fake_stop() {
	kill "$FAKE_PID"
	wait "$FAKE_PID" 2>/dev/null || true
	rm -f "$BLKTAP_CONTROL_DIR/ctl$FAKE_PID"
}

a=$TEST_DIR/a.img
b=$TEST_DIR/b.img
make_image "$a" 8M
make_image "$b" 8M
qemu-io -f raw "$a" -c 'write -P 0x61 0 64k' >/dev/null
qemu-io -f raw "$b" -c 'write -P 0x62 0 64k' >/dev/null
cp "$a" "$TEST_DIR/a.orig"

step "10: unpause -a carries the new image in the open parameters' path (u.params.path)"
vbd_create "$a"
pid=$VBD_PID minor=$VBD_MINOR
"$TAPCTL" pause -p "$pid" -m "$minor" || fail pause
got=$(raw_resume "$pid" "$minor" "aio:$TEST_DIR/missing.img")
[ "${got%% *}" = error ] || check_fail "blktap3's RESUME onto a missing image: '$got'"
[ "$(cut -d' ' -f2 <<<"$got")" = 2 ] || check_fail "RESUME onto a missing image: errno of '$got'"
line=$(list_line "$minor")
[[ "$line" =~ \ state=0x2[0-9a-f]{2}\ args=aio:$a$ ]] ||
	check_fail "after a failed RESUME the VBD must stay paused on its image: $line"
got=$(raw_resume "$pid" "$minor" "aio:$b")
[ "$got" = ok ] || check_fail "blktap3's RESUME onto another image: '$got'"
check_eq "$(list_line "$minor" | sed 's/.* args=//')" "aio:$b" "image after blktap3's RESUME"
qio -c 'read -P 0x62 0 64k' >/dev/null || check_fail "after blktap3's RESUME the VBD serves the old image"
vbd_destroy "$pid" "$minor"
same "$a" "$TEST_DIR/a.orig" "the old image after a resume onto another"

# Ours to blktap3's tapdisk: the path in the field that blktap3 reads.
fake_start "3:0:aio:$a"
tc unpause -p "$FAKE_PID" -m 3 -a "aio:$b"
[ "$RC" = 0 ] || check_fail "unpause -a to blktap3's tapdisk: exit $RC ($ERR)"
check_eq "$(grep '^resume' "$FAKE_LOG")" "resume minor=3 flags=0 path=aio:$b" "RESUME as blktap3 reads it"
fake_stop

step "11: unpause -a onto an image of another size is refused (EMEDIUMTYPE)"
c=$TEST_DIR/c.img
make_image "$c" 16M
vbd_create "$a"
pid=$VBD_PID minor=$VBD_MINOR
"$TAPCTL" pause -p "$pid" -m "$minor" || fail pause
expect_tc 124 "tap-ctl: unpause: aio:$c: 32768 sectors of 512 bytes, but the VBD had 16384 of 512: a resume may not change the disk size" \
	"resume onto a bigger image" unpause -p "$pid" -m "$minor" -a "aio:$c"
line=$(list_line "$minor")
[[ "$line" =~ \ state=0x2[0-9a-f]{2}\ args=aio:$a$ ]] ||
	check_fail "after a refused resume the VBD must stay paused on its image: $line"
"$TAPCTL" unpause -p "$pid" -m "$minor" || check_fail "unpause on the old image"
qio -c 'read -P 0x61 0 64k' >/dev/null || check_fail "the old image after a refused resume"
vbd_destroy "$pid" "$minor"

step "12: close -f closes that VBD only; the tapdisk keeps serving the others"
vbd_create "$a"
pid=$VBD_PID minor=$VBD_MINOR
dev2=$("$TAPCTL" allocate) || fail allocate
m2=${dev2##*-}
"$TAPCTL" attach -p "$pid" -m "$m2" || fail "attach a second VBD"
"$TAPCTL" open -p "$pid" -m "$m2" -a "aio:$b" || fail "open a second VBD"
tc close -f -p "$pid" -m "$m2"
[ "$RC" = 0 ] || check_fail "close -f: exit $RC ($ERR)"
check_eq "$(list_line "$minor")" "pid=$pid minor=$minor state=0 args=aio:$a" "the other VBD"
check_eq "$(list_line "$m2")" "pid=$pid minor=$m2 state=0x2" "the force-closed VBD"
qio -c 'read -P 0x61 0 64k' >/dev/null || check_fail "the other VBD stopped serving after close -f"
"$TAPCTL" detach -p "$pid" -m "$m2" || check_fail "detach after close -f"
"$TAPCTL" free -m "$m2" || check_fail "free after close -f"
vbd_destroy "$pid" "$minor" || { check_fail "destroy the other VBD"; "$TAPCTL" free -m "$minor"; }

step "13: stats without -m asks each VBD in turn (blktap3's tapdisk has no all-VBD form)"
fake_start "4:0:aio:$a" "6:0:aio:$b"
tc stats -p "$FAKE_PID"
[ "$RC" = 0 ] || check_fail "stats -p without -m on blktap3's tapdisk: exit $RC ($ERR)"
check_eq "$OUT" "[{\"name\": \"aio:$a\", \"minor\": 4},{\"name\": \"aio:$b\", \"minor\": 6}]" \
	"stats of every VBD of blktap3's tapdisk"
check_eq "$(grep '^stats' "$FAKE_LOG" | tr '\n' ' ')" "stats minor=4 stats minor=6 " \
	"the STATS requests"
fake_stop

step "14: stats count the image's hits and failures in sectors"
vbd_create "$a"
pid=$VBD_PID minor=$VBD_MINOR
qio -c 'write -P 0x63 0 64k' -c 'read -P 0x63 0 32k' -c 'read -P 0x63 32k 32k' >/dev/null
"$TAPCTL" stats -p "$pid" -m "$minor" >"$TEST_DIR/stats.json" || fail stats
got=$("$PY" -c 'import json, sys; i = json.load(open(sys.argv[1]))["images"][0]; print(i["hits"], i["fail"])' \
	"$TEST_DIR/stats.json")
check_eq "$got" "[128, 128] [0, 0]" "image hits and fail (read, write) in sectors"
# A read past the end of the file, cut short under the VBD, fails.
truncate -s 1M "$a"
qio -c 'read 4M 32k' >/dev/null 2>&1 && check_fail "a read past the end of the file succeeded"
"$TAPCTL" stats -p "$pid" -m "$minor" >"$TEST_DIR/stats.json" || fail stats
got=$("$PY" -c 'import json, sys; i = json.load(open(sys.argv[1]))["images"][0]; print(i["hits"], i["fail"])' \
	"$TEST_DIR/stats.json")
check_eq "$got" "[192, 128] [64, 0]" "image hits and fail after a failed read"
tc stats -p "$pid"
check_eq "$OUT" "$(tr -d '\n' <"$TEST_DIR/stats.json" | sed 's/^/[/; s/$/]/')" "stats -p of one VBD"
vbd_destroy "$pid" "$minor"

step "15: list states, errnos and the attach of a minor without a marker, as blktap3"
dev=$("$TAPCTL" allocate) || fail allocate
m=${dev##*-}
pid=$("$TAPCTL" spawn) || fail spawn
"$TAPCTL" attach -p "$pid" -m "$m" || fail attach
check_eq "$(list_line "$m")" "pid=$pid minor=$m state=0" "attached, never opened"
tc pause -p "$pid" -m "$m"
[ "$RC" = 0 ] || check_fail "pause of a VBD never opened: exit $RC ($ERR)"
check_eq "$(list_line "$m")" "pid=$pid minor=$m state=0x2a" "paused, never opened"
tc unpause -p "$pid" -m "$m"
[ "$RC" = 0 ] || check_fail "unpause of a VBD never opened: exit $RC ($ERR)"
check_eq "$(list_line "$m")" "pid=$pid minor=$m state=0" "unpaused, never opened"
expect_tc 2 "tap-ctl: open: qcow9:$a: unknown disk type (try aio:/path/to/image)" \
	"unknown type" open -p "$pid" -m "$m" -a "qcow9:$a"
"$TAPCTL" open -p "$pid" -m "$m" -a "aio:$a" || fail open
expect_tc 114 "tap-ctl: open: VBD $m is already open (aio:$a)" "open of an open VBD" \
	open -p "$pid" -m "$m" -a "aio:$b"
"$TAPCTL" pause -p "$pid" -m "$m" || fail pause
check_eq "$(list_line "$m")" "pid=$pid minor=$m state=0x2a args=aio:$a" "paused"
tc unpause -p "$pid" -m "$m" -a "aio:$TEST_DIR/missing.img"
check_eq "$RC" 2 "unpause onto a missing image"
check_eq "$(list_line "$m")" "pid=$pid minor=$m state=0x22a args=aio:$a" "failed resume"
"$TAPCTL" unpause -p "$pid" -m "$m" || check_fail "unpause after a failed resume"
check_eq "$(list_line "$m")" "pid=$pid minor=$m state=0 args=aio:$a" "resumed"
"$TAPCTL" close -p "$pid" -m "$m" || fail close
check_eq "$(list_line "$m")" "pid=$pid minor=$m state=0x2" "closed after an open"
for cmd in close pause unpause detach; do
	expect_tc 19 "tap-ctl: $cmd: no VBD with minor 4321" "$cmd of a minor not attached" \
		"$cmd" -p "$pid" -m 4321
done
expect_tc 19 "tap-ctl: open: no VBD with minor 4321" "open of a minor not attached" \
	open -p "$pid" -m 4321 -a "aio:$a"
expect_tc 19 "tap-ctl: stats: no VBD with minor 4321" "stats of a minor not attached" \
	stats -p "$pid" -m 4321
m9=$((m + 9))
expect_tc 2 "tap-ctl: attach: minor $m9 is not allocated ($BLKTAP_CONTROL_DIR/tapdisk/tapdisk-$m9: No such file or directory)" \
	"attach without a marker" attach -p "$pid" -m "$m9"
# blktap3 v4.0.8 prints no header on a terminal either.
if command -v script >/dev/null; then
	table=$(script -qec "$TAPCTL list -m $m" /dev/null | tr -d '\r')
	check_eq "$table" "$(printf '%8s %4s %4s %10s %s' "$pid" "$m" 0x2 - -)" "list on a terminal"
fi
"$TAPCTL" detach -p "$pid" -m "$m" || fail detach
wait_gone "$pid"
"$TAPCTL" free -m "$m" || fail free

[ "$FAILED_CHECKS" = 0 ] || fail "$FAILED_CHECKS checks failed"
echo "PASS: blktap3's unpause -a layout and size check, close -f, stats, list states and errnos"
