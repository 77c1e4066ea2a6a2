#!/bin/bash
# tools/colo-controller against fake disks: bash loops that answer requests through
# xenstore the way docs/xenstore.md says a colo VBD does.  Two hosts, A (the Primary's, the
# test xenstored of xsd_start) and B (the Secondary's, a second daemon), so the controller
# holds two connections.  Checked exactly: the requests each side gets and their ids, shared
# by both sides of a checkpoint and above every id of either; the error lines and exit status
# of a failed, a lost and a garbled disk; the Secondary never asked when a Primary disk fails;
# checkpoint-wanted; signals; --failover-on-error; failover and stop with the Primary's host
# dead; xenstored restarted in the middle of a run.
source "$(dirname "$0")/functions.sh"
source "$(dirname "$0")/xenstore-functions.sh"
requires xenstore-watch
requires xenstore-write
requires xenstore-read
requires setsid

CTL="$top_builddir/colo-controller"
[ -x "$CTL" ] || {
	echo "SKIP: $CTL is not built"
	exit 77
}
[ -x "$XSD_BIN" ] || {
	echo "SKIP: $XSD_BIN is not built"
	exit 77
}

SOFT_CHECKS=1

xsd_start
XS_A=$XENSTORED_PATH

# Host B: a second daemon of its own.
XS_B=$TEST_DIR/xsd-b.sock
xsd_b_start() {
	"$XSD_BIN" --socket "$XS_B" --state "$TEST_DIR/xsd-b.state" --trace "$TEST_DIR/xsd-b.trace" \
		2>>"$TEST_DIR/xsd-b.log" &
	XSD_B_PID=$!
	for _ in $(seq 100); do
		[ -S "$XS_B" ] && XENSTORED_PATH=$XS_B xenstore-exists / 2>/dev/null && return 0
		sleep 0.05
	done
	fail "the second xenstored did not come up"
}
xsd_b_start
cleanup_fn 'kill $XSD_B_PID 2>/dev/null'

xa() { XENSTORED_PATH=$XS_A "$@"; }
xb() { XENSTORED_PATH=$XS_B "$@"; }
dir() { echo "/local/domain/0/colo/$1"; }

# The fake disk: carries out each request whose id is above the last it saw (requests
# written before it started are history), logs "<id> <verb>" to LOG and answers.  MODE says
# how it answers a checkpoint (anything else gets "ok"): ok ("epoch=<n>"), fail (110 link
# lost), silent (never), garbage, or gate (ok, once LOG.go exists).  It reconnects when
# xenstored goes away.
fake_disk_loop() {
	local sock=$1 dir=$2 dev=$3 mode=$4 log=$5 ready=$6
	local d=$dir/disks/$dev last=0 epoch=1 req id verb fd wpid
	export XENSTORED_PATH=$sock
	# Like a tapdisk, a fake disk keeps an answer until xenstore has it: its daemon may be
	# restarting right now.
	xw() {
		for _ in $(seq 400); do
			xenstore-write "$@" 2>/dev/null && return 0
			sleep 0.05
		done
		echo "fake disk $d: cannot write $*" >&2
	}
	xw "$d/pid" "$$" "$d/epoch" "$epoch" "$d/role" none
	req=$(xenstore-read "$dir/request" 2>/dev/null) && last=${req%% *}
	while :; do
		exec {fd}< <(exec xenstore-watch "$dir/request" 2>/dev/null)
		wpid=$!
		# xenstore-watch neither exits nor prints when xenstored goes away: a watch
		# that is quiet for a second is started again (a tapdisk retries every second).
		while read -r -t 1 -u "$fd" _; do
			: >"$ready"
			req=$(xenstore-read "$dir/request" 2>/dev/null) || continue
			id=${req%% *}
			verb=${req#* }
			[[ $id =~ ^[0-9]+$ ]] && ((id > last)) || continue
			last=$id
			echo "$req" >>"$log"
			case $mode/$verb in
			silent/checkpoint) ;;
			garbage/checkpoint) xw "$d/result" "what is this" ;;
			fail/checkpoint) xw "$d/result" "$id 110 checkpoint: link lost" ;;
			gate/checkpoint)
				until [ -e "$log.go" ]; do sleep 0.05; done
				;&
			*/checkpoint)
				epoch=$((epoch + 1))
				xw "$d/epoch" "$epoch" "$d/result" "$id 0 epoch=$epoch"
				;;
			*) xw "$d/result" "$id 0 ok" ;;
			esac
		done
		kill "$wpid" 2>/dev/null
		exec {fd}<&-
	done
}
export -f fake_disk_loop

# fake_disk NAME SOCK DOMID DEVID MODE: starts it, waits until it watches; NAME_PID is set
# and $TEST_DIR/NAME.log gets its requests.
fake_disk() {
	local name=$1 ready=$TEST_DIR/$1.ready pid
	setsid bash -c 'fake_disk_loop "$@"' _ "$2" "$(dir "$3")" "$4" "$5" "$TEST_DIR/$name.log" \
		"$ready" &
	pid=$!
	printf -v "${name}_PID" %s "$pid"
	cleanup_fn "kill -- -$pid 2>/dev/null"
	for _ in $(seq 200); do
		[ -e "$ready" ] && return 0
		sleep 0.05
	done
	fail "fake disk $name did not start"
}

# pair P S [PMODE2 [SMODE2]]: Primary domain P on host A, Secondary S on host B, each with
# disks 51712 (mode ok) and 51728 (the modes given, ok by default).
pair() {
	fake_disk "P$1a" "$XS_A" "$1" 51712 ok
	fake_disk "P$1b" "$XS_A" "$1" 51728 "${3:-ok}"
	fake_disk "S$2a" "$XS_B" "$2" 51712 ok
	fake_disk "S$2b" "$XS_B" "$2" 51728 "${4:-ok}"
}

# ctl ARGS...: the controller with host B's socket for the Secondary; sets RC, OUT, ERR.
ctl() {
	RC=0
	"$CTL" --secondary-xs "$XS_B" "$@" >"$TEST_DIR/ctl.out" 2>"$TEST_DIR/ctl.err" || RC=$?
	OUT=$(cat "$TEST_DIR/ctl.out")
	ERR=$(cat "$TEST_DIR/ctl.err")
}

# expect RC OUT ERR WHAT: the last ctl's exit status, stdout and stderr, exactly.
expect() {
	[ "$RC" = "$1" ] || check_fail "$4: exit $RC, expected $1 (stderr: $ERR)"
	[ "$OUT" = "$2" ] || check_fail "$4: stdout
    '$OUT'
expected
    '$2'"
	[ "$ERR" = "$3" ] || check_fail "$4: stderr
    '$ERR'
expected
    '$3'"
}

expect_match() {
	[[ "$1" =~ $2 ]] || check_fail "$3: '$1' does not match /$2/"
}

expect_same() {
	[ "$1" = "$2" ] || check_fail "$3: expected '$2', got '$1'"
}

# log NAME: the requests the fake disk carried out, one a line.
log() { cat "$TEST_DIR/$1.log" 2>/dev/null; }

# wait_for SECONDS WHAT COMMAND...: until COMMAND succeeds.
wait_for() {
	local end=$(($(date +%s%N) + $1 * 1000000000)) what=$2
	shift 2
	until "$@"; do
		[ "$(date +%s%N)" -lt "$end" ] || fail "$what: not within the time"
		sleep 0.02
	done
}

req_is() { [ "$($1 xenstore-read "$(dir "$2")/request" 2>/dev/null)" = "$3" ]; }
req_id() { $1 xenstore-read "$(dir "$2")/request" | cut -d' ' -f1; }
# result_is SIDE DOMID DEVID VALUE: the disk's result is VALUE now (read at each call).
result_is() { [ "$($1 xenstore-read "$(dir "$2")/disks/$3/result" 2>/dev/null)" = "$4" ]; }
# req_id_ge SIDE DOMID N: the domain's request id is N or more.
req_id_ge() { [ "$(req_id "$1" "$2")" -ge "$3" ]; }

HINT=" (see colo-controller --help)"

##############################################################################################
step "usage errors: one line each, exit 1"
ctl
expect 1 "" "colo-controller: no command$HINT" "no command"
ctl --primary 5 checkpoint
expect 1 "" "colo-controller: checkpoint needs --primary and --secondary$HINT" "one side"
ctl --primary 5 --secondary 7 --count 3 checkpoint
expect 1 "" "colo-controller: --count does not apply to checkpoint$HINT" "--count"
ctl --primary 5 --secondary 7 --primary-args x=1 run
expect 1 "" "colo-controller: --primary-args does not apply to run$HINT" "--primary-args"
ctl --timeout 12x --primary 5 --secondary 7 checkpoint
expect 1 "" "colo-controller: bad value '12x' for --timeout (expected 1..3600000)$HINT" "--timeout"
ctl --primary 0x10 --secondary 7 checkpoint
expect 1 "" "colo-controller: bad value '0x10' for --primary (expected 1..32751)$HINT" "domid"
ctl --bogus --primary 5 --secondary 7 checkpoint
expect 1 "" "colo-controller: unknown option '--bogus'$HINT" "unknown option"
ctl --primary 5 --secondary 7 frobnicate
expect 1 "" "colo-controller: unknown command 'frobnicate'$HINT" "unknown command"
ctl --primary 5 --secondary 7 checkpoint now
expect 1 "" "colo-controller: checkpoint: unexpected argument 'now'$HINT" "extra argument"
ctl --secondary 7 --timeout
expect 1 "" "colo-controller: --timeout needs a value$HINT" "missing value"
ctl --secondary 7 status
expect 1 "" "colo-controller: secondary 7: no colo disks under /local/domain/0/colo/7/disks" \
	"status without disks"
ctl --secondary 7 --secondary-xs "$TEST_DIR/nothing.sock" failover
expect_match "$ERR" "^colo-controller: secondary 7: cannot connect to xenstore at $TEST_DIR/nothing.sock: .+\$" \
	"no xenstored"
expect_same "$RC" 1 "no xenstored: exit status"

##############################################################################################
step "start: the Secondary, then the Primary, with their options and the threshold"
pair 5 7
ctl --primary 5 --secondary 7 --threshold 64M --primary-args "timeout=3000" \
	--secondary-args "ram_limit=2G spill=/tmp/x" -v start
expect 0 "secondary 7: request 1 (start secondary ram_limit=2G spill=/tmp/x) ok
primary 5: request 1 (start primary timeout=3000) ok" "" "start"
expect_same "$(xa xenstore-read "$(dir 5)/request")" "1 start primary timeout=3000" "A request"
expect_same "$(xa xenstore-read "$(dir 5)/checkpoint-threshold")" 67108864 "A threshold"
expect_same "$(xb xenstore-read "$(dir 7)/request")" "1 start secondary ram_limit=2G spill=/tmp/x" \
	"B request"
xb xenstore-exists "$(dir 7)/checkpoint-threshold" 2>/dev/null &&
	check_fail "the threshold went to the Secondary"
for n in P5a P5b; do expect_same "$(log $n)" "1 start primary timeout=3000" "$n"; done
for n in S7a S7b; do expect_same "$(log $n)" "1 start secondary ram_limit=2G spill=/tmp/x" "$n"; done

##############################################################################################
step "checkpoint: one id for both sides, above every id of either"
ctl --primary 5 --secondary 7 checkpoint
expect 0 "checkpoint 2 epoch=2" "" "first checkpoint"
expect_same "$(xa xenstore-read "$(dir 5)/request")" "2 checkpoint" "A request"
expect_same "$(xb xenstore-read "$(dir 7)/request")" "2 checkpoint" "B request"
# An id of 9 on the Secondary's side only, then 15 in one Primary result only.
xb xenstore-write "$(dir 7)/request" "9 noop"
wait_for 5 "the Secondary's disks answer 9" req_is xb 7 "9 noop"
wait_for 5 "S7b answers 9" result_is xb 7 51728 "9 0 ok"
ctl --primary 5 --secondary 7 checkpoint
expect 0 "checkpoint 10 epoch=3" "" "checkpoint above the Secondary's 9"
xa xenstore-write "$(dir 5)/disks/51712/result" "15 0 ok"
ctl --primary 5 --secondary 7 checkpoint
expect 0 "checkpoint 16 epoch=4" "" "checkpoint above a Primary result's 15"
for n in P5a P5b; do
	expect_same "$(log $n | tail -n +2 | tr '\n' ,)" "2 checkpoint,10 checkpoint,16 checkpoint," "$n"
done
for n in S7a S7b; do
	expect_same "$(log $n | tail -n +2 | tr '\n' ,)" "2 checkpoint,9 noop,10 checkpoint,16 checkpoint," "$n"
done

##############################################################################################
step "status"
# The fake disks write no boot-id: whether they run cannot be told (alive=?).
ctl --primary 5 --secondary 7 status
expect 0 'primary 5: request="16 checkpoint" checkpoint-threshold=67108864
primary 5 disk 51712: result="16 0 epoch=4" alive=? role=none state=- link=- epoch=4 sent-bytes=- buffer-bytes=- last-error=-
primary 5 disk 51728: result="16 0 epoch=4" alive=? role=none state=- link=- epoch=4 sent-bytes=- buffer-bytes=- last-error=-
secondary 7: request="16 checkpoint" checkpoint-threshold=-
secondary 7 disk 51712: result="16 0 epoch=4" alive=? role=none state=- link=- epoch=4 sent-bytes=- buffer-bytes=- last-error=-
secondary 7 disk 51728: result="16 0 epoch=4" alive=? role=none state=- link=- epoch=4 sent-bytes=- buffer-bytes=- last-error=-' \
	"" "status"

##############################################################################################
step "run --count: exactly that many, each printed with -v, then the summary"
ctl --primary 5 --secondary 7 --interval 10 --count 3 -v run
expect_same "$RC" 0 "run --count 3: exit status ($ERR)"
expect_same "$ERR" "" "run --count 3: stderr"
expect_match "$OUT" $'^checkpoint 17 epoch=5\ncheckpoint 18 epoch=6\ncheckpoint 19 epoch=7\nrun: 3 checkpoints, 0 failures, [0-9.]+ checkpoints/s, median [0-9.]+ ms, p99 [0-9.]+ ms$' \
	"run --count 3"

##############################################################################################
step "checkpoint-wanted: a stale one is ignored, a current one checkpoints at once"
"$CTL" --secondary-xs "$XS_B" --primary 5 --secondary 7 --interval 60000 --count 2 -v run \
	>"$TEST_DIR/run.out" 2>"$TEST_DIR/run.err" &
run_pid=$!
wait_for 5 "the run's first checkpoint" req_is xb 7 "20 checkpoint"
epoch=$(xa xenstore-read "$(dir 5)/disks/51712/epoch")
expect_same "$epoch" 8 "the Primary disk's epoch"
xa xenstore-write "$(dir 5)/disks/51712/checkpoint-wanted" "7 70000000"
sleep 0.5
req_is xa 5 "20 checkpoint" || check_fail "a stale checkpoint-wanted made a checkpoint"
t0=$(date +%s%N)
xa xenstore-write "$(dir 5)/disks/51728/checkpoint-wanted" "8 67112960"
rc=0
wait "$run_pid" || rc=$?
ms=$((($(date +%s%N) - t0) / 1000000))
expect_same "$rc" 0 "run with checkpoint-wanted: exit status ($(cat "$TEST_DIR/run.err"))"
expect_match "$(cat "$TEST_DIR/run.out")" $'^checkpoint 20 epoch=8\ncheckpoint 21 epoch=9\nrun: 2 checkpoints, 0 failures' \
	"run with checkpoint-wanted"
((ms < 3000)) || check_fail "checkpoint-wanted took $ms ms to make a checkpoint"

##############################################################################################
step "SIGINT ends a run cleanly after its checkpoint"
"$CTL" --secondary-xs "$XS_B" --primary 5 --secondary 7 --interval 20 run \
	>"$TEST_DIR/run.out" 2>"$TEST_DIR/run.err" &
run_pid=$!
wait_for 5 "a few checkpoints" req_id_ge xb 7 25
kill -INT "$run_pid"
rc=0
wait "$run_pid" || rc=$?
expect_same "$rc" 0 "SIGINT: exit status ($(cat "$TEST_DIR/run.err"))"
expect_same "$(cat "$TEST_DIR/run.err")" "" "SIGINT: stderr"
expect_match "$(cat "$TEST_DIR/run.out")" '^run: [0-9]+ checkpoints, 0 failures, ' "SIGINT: summary"
expect_same "$(req_id xa 5)" "$(req_id xb 7)" "SIGINT: both sides end at the same checkpoint"

##############################################################################################
step "xenstored of host A restarted during a run: no failure, no request twice"
# Read before the run starts: its first checkpoint is taken at once.
before=$(req_id xb 7)
"$CTL" --secondary-xs "$XS_B" --primary 5 --secondary 7 --interval 20 -v run \
	>"$TEST_DIR/run.out" 2>"$TEST_DIR/run.err" &
run_pid=$!
wait_for 30 "a few checkpoints" req_id_ge xb 7 $((before + 5))
xsd_restart
# The run ends once it checkpointed again after the restart, however long the fake disks (bash
# loops, slow on a loaded machine) and the reconnection take: a fixed --duration made the
# count a race ("checkpoints stopped at 33").
mid=$(req_id xb 7)
wait_for 60 "checkpoints after the restart" req_id_ge xb 7 $((mid + 6))
kill -INT "$run_pid"
rc=0
wait "$run_pid" || rc=$?
expect_same "$rc" 0 "restart: exit status ($(cat "$TEST_DIR/run.err"))"
expect_match "$(tail -n 1 "$TEST_DIR/run.out")" '^run: [0-9]+ checkpoints, 0 failures, ' "restart: summary"
expect_same "$(cat "$TEST_DIR/run.err")" "colo-controller: primary 5: reconnected to xenstore at $XS_A" \
	"restart: stderr"
after=$(req_id xb 7)
((after > before + 10)) || check_fail "restart: checkpoints stopped at $after"
# The controller wrote each id into D/request once (the daemon's trace survives restarts).
twice=$(grep -o 'IN  c[0-9]* WRITE .*(/local/domain/0/colo/5/request [0-9]* ' "$XSD_TRACE" |
	awk '{ print $NF }' | sort | uniq -d)
expect_same "$twice" "" "restart: ids written twice into the Primary's request"
# Every checkpoint the Secondary carried out was first carried out by every Primary disk,
# and both logs list each id once.
for n in P5a P5b S7a S7b; do
	[ -z "$(log $n | cut -d' ' -f1 | uniq -d)" ] || check_fail "$n carried out an id twice"
done
missing=$(comm -13 <(log P5a | grep checkpoint | sort) <(log S7a | grep checkpoint | sort))
expect_same "$missing" "" "restart: Secondary checkpoints the Primary did not have"
missing=$(comm -13 <(log P5b | grep checkpoint | sort) <(log S7b | grep checkpoint | sort))
expect_same "$missing" "" "restart: Secondary checkpoints the Primary did not have"
expect_same "$(grep -c '^checkpoint ' "$TEST_DIR/run.out")" $((after - before)) \
	"restart: checkpoints printed"

##############################################################################################
step "a Primary disk fails: the Secondary is not asked"
pair 11 12 fail
ctl --primary 11 --secondary 12 start
expect 0 "" "" "start 11/12"
ctl --primary 11 --secondary 12 checkpoint
expect 2 "" "colo-controller: primary 11 disk 51728: request 2 (checkpoint) failed: error 110: checkpoint: link lost
colo-controller: checkpoint 2 failed on the primary: the secondary was not asked" "failing Primary disk"
expect_same "$(xa xenstore-read "$(dir 11)/request")" "2 checkpoint" "A request"
expect_same "$(xb xenstore-read "$(dir 12)/request")" "1 start secondary" "B request"
expect_same "$(log S12a; log S12b)" "1 start secondary
1 start secondary" "the Secondary's disks"

step "... and with --failover-on-error, run fails over the Secondary only: exit 3"
ctl --primary 11 --secondary 12 --failover-on-error -v run
expect_same "$RC" 3 "failover-on-error: exit status ($ERR)"
expect_same "$ERR" "colo-controller: primary 11 disk 51728: request 3 (checkpoint) failed: error 110: checkpoint: link lost
colo-controller: checkpoint 3 failed on the primary: the secondary was not asked" "failover-on-error: stderr"
expect_match "$OUT" $'^secondary 12: request 2 \\(failover\\) ok\nrun: 0 checkpoints, 1 failures, ' \
	"failover-on-error: stdout"
expect_same "$(xa xenstore-read "$(dir 11)/request")" "3 checkpoint" "A request"
expect_same "$(xb xenstore-read "$(dir 12)/request")" "2 failover" "B request"
expect_same "$(log S12b | tr '\n' ,)" "1 start secondary,2 failover," "S12b"

##############################################################################################
step "a Primary disk never answers: lost, with its pid"
pair 21 22 silent
ctl --primary 21 --secondary 22 start
expect 0 "" "" "start 21/22"
ctl --primary 21 --secondary 22 --timeout 500 checkpoint
expect 2 "" "colo-controller: primary 21 disk 51728: request 2 (checkpoint) lost: no result within 500 ms (pid $P21b_PID)
colo-controller: checkpoint 2 failed on the primary: the secondary was not asked" "silent Primary disk"
expect_same "$(xb xenstore-read "$(dir 22)/request")" "1 start secondary" "B request"

##############################################################################################
step "a Primary disk writes garbage"
pair 31 32 garbage
ctl --primary 31 --secondary 32 start
expect 0 "" "" "start 31/32"
ctl --primary 31 --secondary 32 checkpoint
expect 2 "" "colo-controller: primary 31 disk 51728: request 2 (checkpoint): malformed result 'what is this'
colo-controller: checkpoint 2 failed on the primary: the secondary was not asked" "garbage"
expect_same "$(xb xenstore-read "$(dir 32)/request")" "1 start secondary" "B request"

##############################################################################################
step "a Secondary disk fails: never failed over to"
pair 41 42 ok fail
ctl --primary 41 --secondary 42 start
expect 0 "" "" "start 41/42"
ctl --primary 41 --secondary 42 checkpoint
expect 2 "" "colo-controller: secondary 42 disk 51728: request 2 (checkpoint) failed: error 110: checkpoint: link lost
colo-controller: checkpoint 2 failed on the secondary: its disks may be at different checkpoints" \
	"failing Secondary disk"
ctl --primary 41 --secondary 42 --failover-on-error run
expect_same "$RC" 2 "Secondary failure with --failover-on-error: exit status"
expect_same "$ERR" "colo-controller: secondary 42 disk 51728: request 3 (checkpoint) failed: error 110: checkpoint: link lost
colo-controller: checkpoint 3 failed on the secondary: its disks may be at different checkpoints
colo-controller: not failing over: the secondary's disks may be at different checkpoints: stop and resync" \
	"Secondary failure with --failover-on-error: stderr"
expect_same "$(xb xenstore-read "$(dir 42)/request")" "3 checkpoint" "B request"

##############################################################################################
step "a domain without colo disks"
ctl --primary 99 --secondary 7 checkpoint
expect 1 "" "colo-controller: primary 99: no colo disks under /local/domain/0/colo/99/disks" "no disks"

##############################################################################################
step "SIGUSR1: the run fails over the Secondary and ends"
"$CTL" --secondary-xs "$XS_B" --primary 5 --secondary 7 --interval 20 -v run \
	>"$TEST_DIR/run.out" 2>"$TEST_DIR/run.err" &
run_pid=$!
before=$(req_id xb 7)
wait_for 5 "a few checkpoints" req_id_ge xb 7 $((before + 3))
kill -USR1 "$run_pid"
rc=0
wait "$run_pid" || rc=$?
expect_same "$rc" 0 "SIGUSR1: exit status ($(cat "$TEST_DIR/run.err"))"
expect_match "$(tail -n 2 "$TEST_DIR/run.out")" $'^secondary 7: request [0-9]+ \\(failover\\) ok\nrun: [0-9]+ checkpoints, 0 failures' \
	"SIGUSR1: stdout"
expect_match "$(xb xenstore-read "$(dir 7)/request")" '^[0-9]+ failover$' "SIGUSR1: B request"
expect_same "$(log S7a | tail -n 1)" "$(xb xenstore-read "$(dir 7)/request")" "SIGUSR1: S7a"

##############################################################################################
step "the Primary's host dead: failover and stop reach the Secondary"
a_req=$(xa xenstore-read "$(dir 5)/request")
xsd_stop
ctl --primary 5 --secondary 7 -v failover
expect_match "$OUT" '^secondary 7: request [0-9]+ \(failover\) ok$' "failover with A dead"
expect_same "$RC.$ERR" "0." "failover with A dead: exit status and stderr"
ctl --primary 5 --secondary 7 stop
expect_same "$RC" 2 "stop with A dead: exit status"
expect_match "$ERR" "^colo-controller: primary 5: cannot connect to xenstore at $XS_A: .+\$" \
	"stop with A dead: stderr"
expect_match "$(xb xenstore-read "$(dir 7)/request")" '^[0-9]+ stop$' "stop with A dead: B request"
xsd_start
expect_same "$(xa xenstore-read "$(dir 5)/request")" "$a_req" "A untouched by failover and stop"

##############################################################################################
step "a controller killed between the halves of a checkpoint: the next one finishes it"
# What systemd's Restart= does after a crash.  P51b holds its answer to the checkpoint until
# the controller is dead; the Primary's half is then done, the Secondary's never asked.
pair 51 52 gate
ctl --primary 51 --secondary 52 start
expect 0 "" "" "start 51/52"
"$CTL" --secondary-xs "$XS_B" --primary 51 --secondary 52 run >/dev/null 2>&1 &
run_pid=$!
wait_for 10 "the Primary's half of checkpoint 2" result_is xa 51 51712 "2 0 epoch=2"
kill -9 "$run_pid"
wait "$run_pid" 2>/dev/null || :
touch "$TEST_DIR/P51b.log.go"
wait_for 10 "P51b's answer" result_is xa 51 51728 "2 0 epoch=2"
expect_same "$(xb xenstore-read "$(dir 52)/request")" "1 start secondary" "killed: B request"
ctl --primary 51 --secondary 52 --count 1 -v run
expect_same "$RC" 0 "restarted run: exit status ($ERR)"
expect_same "$ERR" "colo-controller: checkpoint 2: the primary's half was done before this \
controller started: finishing it on the secondary" "restarted run: stderr"
expect_match "$OUT" $'^checkpoint 2 epoch=2\ncheckpoint 3 epoch=3\nrun: 1 checkpoints, 0 failures' \
	"restarted run: stdout"
for n in P51a P51b; do
	expect_same "$(log $n | tr '\n' ,)" "1 start primary,2 checkpoint,3 checkpoint," "$n requests"
done
for n in S52a S52b; do
	expect_same "$(log $n | tr '\n' ,)" "1 start secondary,2 checkpoint,3 checkpoint," "$n requests"
done

[ "$FAILED_CHECKS" = 0 ] || fail "$FAILED_CHECKS checks failed"
echo PASS
