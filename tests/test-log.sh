#!/bin/bash
# tapdisk's log: -l file:PATH, -l stderr under systemd's journal (sd-daemon "<N>" prefixes),
# syslog, and stderr when no syslog daemon listens, at start or later.  Every line names the
# tapdisk's pid and, for a VBD, its minor.  A spawned tapdisk gets its choice through
# TAPDISK_LOG and TAPDISK_LOG_LEVEL; TAPDISK_SYSLOG_SOCKET stands in for /dev/log.
source "$(dirname "$0")/functions.sh"

img=$TEST_DIR/disk.img
make_image "$img" 1M
STAMP='[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3} '
SYSLOG_STAMP='<([0-9]+)>[A-Z][a-z]{2} [ 1-3][0-9] [0-9]{2}:[0-9]{2}:[0-9]{2} '

# has_line FILE LINE WHAT: FILE has exactly the line LINE.
has_line() {
	grep -qFx -- "$2" "$1" || fail "$3: no line '$2' in $1:
$(cat "$1")"
}

# wait_line FILE LINE WHAT: the same, waiting up to 30 s for a daemon to write it.
wait_line() {
	for _ in $(seq 300); do
		grep -qFx -- "$2" "$1" 2>/dev/null && return 0
		sleep 0.1
	done
	has_line "$@"
}

step "usage errors"
rc=0
out=$("$TAPDISK" -D -l journal 2>&1) || rc=$?
expect_eq "$rc" 2 "tapdisk -l journal: exit status"
expect_eq "$out" "tapdisk: log target 'journal' is not syslog, stderr or file:/path" "-l journal"
rc=0
out=$("$TAPDISK" -D -L loud 2>&1) || rc=$?
expect_eq "$rc" 2 "tapdisk -L loud: exit status"
expect_eq "$out" "tapdisk: log level 'loud' is not warning, info or debug" "-L loud"
rc=0
out=$(TAPDISK_LOG=file:relative "$TAPDISK" -D 2>&1) || rc=$?
expect_eq "$rc" 2 "TAPDISK_LOG=file:relative: exit status"
expect_eq "$out" "tapdisk: log target 'file:relative' is not syslog, stderr or file:/path" \
	"TAPDISK_LOG=file:relative"

rc=0
out=$("$TAPDISK" -D -l "file:$TEST_DIR/no/such/dir/x.log" 2>&1) || rc=$?
expect_eq "$rc" 1 "a log file in a missing directory: exit status"
expect_eq "$out" "tapdisk: $TEST_DIR/no/such/dir/x.log: cannot open the log: No such file or directory" \
	"a log file in a missing directory"

step "-l file:PATH, through tap-ctl create's environment: one VBD's life"
log=$TEST_DIR/info.log
TAPDISK_LOG=file:$log vbd_create "$img"
P=$VBD_PID M=$VBD_MINOR
vbd_destroy "$P" "$M" || fail "destroy"
wait_gone "$P"
grep -qEv "^${STAMP}tapdisk\[$P\]: " "$log" &&
	fail "lines without a time stamp and tapdisk[$P]: $(grep -Ev "^${STAMP}tapdisk\[$P\]: " "$log")"
sed -E "s/^$STAMP//" "$log" >"$TEST_DIR/info.lines"
has_line "$TEST_DIR/info.lines" "tapdisk[$P]: control socket $BLKTAP_CONTROL_DIR/ctl$P" "start"
has_line "$TEST_DIR/info.lines" "tapdisk[$P]: minor $M: vbd $M: opened aio:$img, 2048 sectors" \
	"open"
has_line "$TEST_DIR/info.lines" "tapdisk[$P]: minor $M: nbd $BLKTAP_CONTROL_DIR/nbd$P.$M: listening (tls=none)" \
	"the NBD export, from the VBD's open"
has_line "$TEST_DIR/info.lines" "tapdisk[$P]: minor $M: vbd $M: closed aio:$img" "close"
has_line "$TEST_DIR/info.lines" "tapdisk[$P]: all VBDs closed, leaving" "exit"

step "-L warning: the warnings only, each naming the minor"
log=$TEST_DIR/warn.log
dev=$("$TAPCTL" allocate) || fail "allocate"
M=${dev##*-}
P=$(TAPDISK_LOG=file:$log TAPDISK_LOG_LEVEL=warning "$TAPCTL" spawn) || fail "spawn"
"$TAPCTL" attach -p "$P" -m "$M" || fail "attach"
"$TAPCTL" open -p "$P" -m "$M" -a "aio:$TEST_DIR/missing.img" 2>/dev/null && fail "open of a missing image"
"$TAPCTL" colo -p "$P" -m "$M" status 2>/dev/null && fail "colo status of a closed VBD"
"$TAPCTL" detach -p "$P" -m "$M" || fail "detach"
"$TAPCTL" free -m "$M" || fail "free"
wait_gone "$P"
sed -E "s/^$STAMP//" "$log" >"$TEST_DIR/warn.lines"
printf '%s\n' \
	"tapdisk[$P]: minor $M: tap-err:tdaio_open: $TEST_DIR/missing.img: cannot open for writing: No such file or directory" \
	"tapdisk[$P]: minor $M: tap-err:control_colo_reply_error: colo status on VBD $M failed: VBD $M is not open (Invalid argument)" \
	>"$TEST_DIR/warn.expected"
diff -u "$TEST_DIR/warn.expected" "$TEST_DIR/warn.lines" || fail "-L warning logged other lines"

step "no syslog daemon: a daemonised tapdisk's lines go to the stderr it was given"
export TAPDISK_SYSLOG_SOCKET=$TEST_DIR/no-syslog
vbd_create "$img" 2>"$TEST_DIR/nosyslog.err"
P=$VBD_PID M=$VBD_MINOR
vbd_destroy "$P" "$M" || fail "destroy"
wait_gone "$P"
has_line "$TEST_DIR/nosyslog.err" "tapdisk[$P]: minor $M: vbd $M: opened aio:$img, 2048 sectors" \
	"without syslog"
has_line "$TEST_DIR/nosyslog.err" "tapdisk[$P]: all VBDs closed, leaving" "without syslog"

step "a syslog daemon that goes away: lines go to syslog, then to stderr"
export TAPDISK_SYSLOG_SOCKET=$TEST_DIR/log.sock
"$PY" "$top_srcdir/tests/syslogd.py" "$TAPDISK_SYSLOG_SOCKET" "$TEST_DIR/syslog.out" \
	>"$TEST_DIR/syslogd.ready" &
SYSLOGD=$!
cleanup_fn "kill $SYSLOGD 2>/dev/null"
for _ in $(seq 300); do [ -s "$TEST_DIR/syslogd.ready" ] && break; sleep 0.1; done
[ -s "$TEST_DIR/syslogd.ready" ] || fail "the test's syslog daemon did not start"
vbd_create "$img" 2>"$TEST_DIR/syslog.err"
P=$VBD_PID M=$VBD_MINOR
for _ in $(seq 300); do grep -q "vbd $M: opened" "$TEST_DIR/syslog.out" && break; sleep 0.1; done
sed -E "s/^$SYSLOG_STAMP//" "$TEST_DIR/syslog.out" >"$TEST_DIR/syslog.lines"
has_line "$TEST_DIR/syslog.lines" "tapdisk[$P]: minor $M: vbd $M: opened aio:$img, 2048 sectors" \
	"syslog"
# LOG_DAEMON | LOG_INFO
expect_eq "$(grep "vbd $M: opened" "$TEST_DIR/syslog.out" | sed -E "s/^$SYSLOG_STAMP.*/\1/")" 30 \
	"the priority of an info line"
[ ! -s "$TEST_DIR/syslog.err" ] || fail "lines on stderr while syslog listened: $(cat "$TEST_DIR/syslog.err")"
kill "$SYSLOGD"
wait "$SYSLOGD" 2>/dev/null || true
rm -f "$TAPDISK_SYSLOG_SOCKET"
vbd_destroy "$P" "$M" || fail "destroy"
wait_gone "$P"
has_line "$TEST_DIR/syslog.err" "tapdisk[$P]: minor $M: vbd $M: closed aio:$img" \
	"once the syslog daemon is gone"

step "no syslog daemon, and a pipe for stderr: tap-ctl's one line of error stays alone"
export TAPDISK_SYSLOG_SOCKET=$TEST_DIR/no-syslog
rc=0
out=$("$TAPCTL" create -a "aio:$TEST_DIR/missing.img" 2>&1) || rc=$?
expect_eq "$rc" 2 "create on a missing image: exit status"
expect_eq "$out" "tap-ctl: open: $TEST_DIR/missing.img: cannot open for writing: No such file or directory" \
	"create on a missing image, stderr on a pipe"
unset TAPDISK_SYSLOG_SOCKET

step "-l stderr under systemd: sd-daemon priority prefixes on the journal's stream"
err=$TEST_DIR/journal.err
: >"$err"
dev=$("$TAPCTL" allocate) || fail "allocate"
M=${dev##*-}
P=$(JOURNAL_STREAM=$(stat -c %d:%i "$err") TAPDISK_LOG=stderr "$TAPCTL" spawn 2>>"$err") ||
	fail "spawn"
"$TAPCTL" attach -p "$P" -m "$M" || fail "attach"
"$TAPCTL" open -p "$P" -m "$M" -a "aio:$img" || fail "open"
"$TAPCTL" colo -p "$P" -m "$M" status 2>/dev/null && fail "colo status of an aio VBD"
"$TAPCTL" destroy -p "$P" -m "$M" || fail "destroy"
wait_gone "$P"
has_line "$err" "<6>tapdisk[$P]: minor $M: vbd $M: opened aio:$img, 2048 sectors" "an info line"
grep -qF "<4>tapdisk[$P]: minor $M: tap-err:" "$err" || fail "no warning line in $err: $(cat "$err")"
grep -qv "^<[46]>tapdisk\[$P\]: " "$err" && fail "lines without a prefix: $(grep -v "^<[46]>" "$err")"

step "lines of a colo failover, which completes from the aio event all VBDs share, name the minor"
export TAPDISK_LOG=file:$TEST_DIR/colo.log
make_image "$TEST_DIR/p.img" 1M
make_image "$TEST_DIR/s.img" 1M
colo_pair "$TEST_DIR/p.img" "$TEST_DIR/s.img"
qio_cmds "$P_URI" -- "write -P 0x11 0 64k" || fail "write: $QIO_OUT"
wait_applied
colo_s failover >/dev/null || fail "failover"
unset TAPDISK_LOG
sed -E "s/^$STAMP//" "$TEST_DIR/colo.log" >"$TEST_DIR/colo.lines"
has_line "$TEST_DIR/colo.lines" "tapdisk[$S_PID]: minor $S_MINOR: colo 127.0.0.1:$COLO_PORT: secondary failing-over -> failed-over (epoch 1)" \
	"the failover's completion"
has_line "$TEST_DIR/colo.lines" "tapdisk[$S_PID]: minor $S_MINOR: colo failover on VBD $S_MINOR done" \
	"the failover's reply"
colo_pair_destroy

echo "PASS: file, syslog, journal and stderr logs, with the pid and minor on every line"
