#!/usr/bin/env bash
# tap-ctl's subcommands and output formats, step by step, as blktap3's tools expect them.
source "$(dirname "$0")/functions.sh"
requires qemu-io

img=$TEST_DIR/disk.img
make_image "$img" 8M

# The long way: allocate, spawn, attach, open.
dev=$("$TAPCTL" allocate) || fail allocate
minor=${dev##*-}
expect_eq "$dev" "$BLKTAP_CONTROL_DIR/tapdisk/tapdisk-$minor" "allocate's device name"
[ -e "$dev" ] || fail "allocate made no marker file"
pid=$("$TAPCTL" spawn) || fail spawn
[[ "$pid" =~ ^[0-9]+$ ]] || fail "spawn printed '$pid'"
[ -S "$BLKTAP_CONTROL_DIR/ctl$pid" ] || fail "no control socket for $pid"
expect_eq "$(stat -c %a "$BLKTAP_CONTROL_DIR/ctl$pid")" 600 "control socket mode"
"$TAPCTL" attach -p "$pid" -m "$minor" || fail attach
"$TAPCTL" open -p "$pid" -m "$minor" -a "aio:$img" || fail open
expect_eq "$("$TAPCTL" list -m "$minor")" "pid=$pid minor=$minor state=0 args=aio:$img" "list line"
expect_eq "$("$TAPCTL" list -p "$pid")" "pid=$pid minor=$minor state=0 args=aio:$img" "list -p"
expect_eq "$("$TAPCTL" list -f "$img")" "pid=$pid minor=$minor state=0 args=aio:$img" "list -f"
expect_eq "$("$TAPCTL" list -t vhd)" "" "list -t of another type"
# On a terminal, list prints a table instead, without a header as blktap3 v4.0.8.
if command -v script >/dev/null; then
	table=$(script -qec "$TAPCTL list -m $minor" /dev/null | tr -d '\r')
	expect_eq "$table" "$(printf '%8s %4s %4s %10s %s' "$pid" "$minor" 0 aio "$img")" "list on a tty"
fi
[ -S "$BLKTAP_CONTROL_DIR/nbd$pid.$minor" ] || fail "no NBD socket"
VBD_URI="nbd+unix:///?socket=$BLKTAP_CONTROL_DIR/nbd$pid.$minor"
qio -c 'write -P 0x5e 0 64k' >/dev/null

# stats is JSON with the VBD's name and the sectors written.
"$TAPCTL" stats -p "$pid" -m "$minor" >"$TEST_DIR/stats.json" || fail stats
"$PY" - "$TEST_DIR/stats.json" "$img" <<'PYEOF'
import json, sys
st = json.load(open(sys.argv[1]))
assert st["name"] == "aio:" + sys.argv[2], st
assert st["secs"][1] == 128, st["secs"]
assert st["images"][0]["driver"]["name"] == "aio", st
assert st["reqs_outstanding"] == 0, st
PYEOF

# Errors: one clear line, non-zero exit, and tapdisk keeps serving.
err_of() { if out=$("$TAPCTL" "$@" 2>&1); then fail "tap-ctl $* succeeded"; fi; echo "$out"; }
expect_eq "$(err_of attach -p "$pid" -m "$minor")" "tap-ctl: attach: minor $minor is already attached" "attach twice"
expect_eq "$(err_of detach -p "$pid" -m "$minor")" "tap-ctl: detach: VBD $minor is still open: close it first" "detach open"
expect_eq "$(err_of close -p "$pid" -m $((minor + 100)))" "tap-ctl: close: no VBD with minor $((minor + 100))" "close unknown"
err_of open -p "$pid" -m "$minor" -a "aio:$img" >/dev/null
err_of unpause -p "$pid" -m "$minor" >/dev/null
err_of nosuchcommand >/dev/null
err_of open -m "$minor" -a "aio:$img" >/dev/null
expect_eq "$("$TAPCTL" list -p 999999999)" "" "list of a pid without a tapdisk"

# colo: usage errors exit 22 with the usage line; a plain aio disk is not a colo disk.
rc_of() { local rc=0; "$TAPCTL" "$@" >"$TEST_DIR/out" 2>"$TEST_DIR/err" || rc=$?; echo "$rc"; }
expect_eq "$(rc_of colo -p "$pid" -m "$minor")" 22 "colo without a command"
expect_eq "$(head -c 12 "$TEST_DIR/err")" "usage: colo " "colo usage line"
expect_eq "$(rc_of colo -m "$minor" status)" 22 "colo without -p"
expect_eq "$(rc_of colo -p "$pid" status)" 22 "colo without -m"
expect_eq "$(rc_of colo -p "$pid" -m x status)" 22 "colo with a bad minor"
expect_eq "$(rc_of colo -p "$pid" -m "$minor" start primary "spill=/$(printf 'p%.0s' {1..250})")" \
	22 "colo command over 255 bytes"
expect_eq "$(head -n 1 "$TEST_DIR/err")" \
	"tap-ctl: colo: the command is too long (at most 255 bytes)" "colo too long"
expect_eq "$(rc_of colo -h)" 0 "colo -h"
expect_eq "$(head -c 12 "$TEST_DIR/out")" "usage: colo " "colo -h prints usage"
expect_eq "$(rc_of colo -p "$pid" -m "$minor" status)" 22 "colo status on an aio disk"
expect_eq "$(cat "$TEST_DIR/err")" "tap-ctl: colo status: VBD $minor is not a colo disk" \
	"colo status on an aio disk"
expect_eq "$(cat "$TEST_DIR/out")" "" "colo status output on error"
qio -c 'read -P 0x5e 0 64k' >/dev/null || fail "tapdisk stopped serving after bad commands"

# pause shows in the state, unpause clears it; close and open again.
"$TAPCTL" pause -p "$pid" -m "$minor" || fail pause
expect_eq "$("$TAPCTL" list -m "$minor")" "pid=$pid minor=$minor state=0x2a args=aio:$img" "paused"
"$TAPCTL" unpause -p "$pid" -m "$minor" || fail unpause
"$TAPCTL" close -p "$pid" -m "$minor" || fail close
[ ! -e "$BLKTAP_CONTROL_DIR/nbd$pid.$minor" ] || fail "NBD socket survives close"
"$TAPCTL" open -p "$pid" -m "$minor" -a "aio:$img" -R || fail "reopen read-only"
qemu-io -r -f raw "$VBD_URI" -c 'read -P 0x5e 0 64k' >/dev/null || fail "read after reopen"
"$TAPCTL" close -p "$pid" -m "$minor" || fail close
"$TAPCTL" detach -p "$pid" -m "$minor" || fail detach
wait_gone "$pid"   # the last VBD is gone: tapdisk leaves
"$TAPCTL" free -m "$minor" || fail free
[ ! -e "$dev" ] || fail "free left the marker"

# The short way, and destroy.
dev=$("$TAPCTL" create -a "aio:$img") || fail create
minor=${dev##*-}
line=$("$TAPCTL" list -m "$minor")
pid=$(sed -n 's/^pid=\([0-9]*\) .*/\1/p' <<<"$line")
"$TAPCTL" destroy -p "$pid" -m "$minor" || fail destroy
wait_gone "$pid"
expect_eq "$("$TAPCTL" list)" "" "list after destroy"
echo "PASS: tap-ctl allocate/spawn/attach/open/list/stats/colo/pause/unpause/close/detach/free/create/destroy"
