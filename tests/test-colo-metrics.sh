#!/bin/bash
# colo-controller metrics and run --metrics-file against a real pair: a Primary and a
# Secondary tapdisk bound to xenstore (domains 1 and 2), driven by colo-controller.  The
# output must pass promtool check metrics (Prometheus's own parser and linter) and carry,
# exactly, what tap-ctl colo status says of each disk: role, state, link, epoch, sent and
# buffer bytes, dirty blocks; a run's file also holds its checkpoints as a histogram.
source "$(dirname "$0")/functions.sh"
source "$(dirname "$0")/xenstore-functions.sh"
requires qemu-io
requires xenstore-write
requires promtool

CTL="$top_builddir/colo-controller"
log_tapdisks xenstore
xsd_start

disk_dir() { echo "/local/domain/0/colo/$1/disks/51712"; }
bind() { # bind NAME DOMID
	local dir pid=${1}_PID minor=${1}_MINOR
	dir=$(disk_dir "$2")
	xenstore-write "$dir/params" "colo:x" "$dir/pid" "${!pid}" "$dir/minor" "${!minor}" \
		"$dir/backend" "backend/vbd3/$2/51712" || fail "writing the nodes of $1"
	colo "$1" xenstore "$dir" || fail "binding $1 to $dir"
	# tapdisk writes its state nodes after the bind, last-error last
	for _ in $(seq 200); do
		xenstore-exists "$dir/last-error" 2>/dev/null && return 0
		sleep 0.05
	done
	fail "no state nodes in $dir after the bind"
}
# promcheck FILE: promtool accepts it, without a single lint remark.
promcheck() {
	local out
	out=$(promtool check metrics <"$1" 2>&1) || fail "promtool check metrics $1: $out"
	[ -z "$out" ] || fail "promtool check metrics $1: $out"
}
# sample FILE NAME{LABELS}: the value of that one series (fails unless there is exactly one).
sample() {
	local v
	v=$(grep -F "$2 " "$1" | grep -c '') || :
	[ "$v" = 1 ] || fail "$1: $v samples of $2: $(cat "$1")"
	grep -F "$2 " "$1" | sed 's/.* //'
}

make_image "$TEST_DIR/p.img" 16M 3
cp "$TEST_DIR/p.img" "$TEST_DIR/s.img"
colo_pair_create "$TEST_DIR/p.img" "$TEST_DIR/s.img"
bind P 1
bind S 2

step "metrics needs a side; before start, idle disks"
rc=0
"$CTL" metrics 2>"$TEST_DIR/err" || rc=$?
expect_eq "$rc.$(cat "$TEST_DIR/err")" \
	"1.colo-controller: metrics needs --primary or --secondary (or both) (see colo-controller --help)" \
	"metrics without a side"
"$CTL" --primary 1 --secondary 2 metrics >"$TEST_DIR/idle.prom" || fail "metrics of idle disks"
promcheck "$TEST_DIR/idle.prom"
P='side="primary",domid="1",disk="51712"'
S='side="secondary",domid="2",disk="51712"'
expect_eq "$(sample "$TEST_DIR/idle.prom" "blktap_colo_role{$P,role=\"none\"}")" 1 "idle role"
expect_eq "$(sample "$TEST_DIR/idle.prom" "blktap_colo_state{$S,state=\"idle\"}")" 1 "idle state"
expect_eq "$(sample "$TEST_DIR/idle.prom" "blktap_colo_link_up{$P}")" 0 "idle link"

step "a run of 3 checkpoints with --metrics-file, then guest writes"
"$CTL" --primary 1 --secondary 2 --secondary-args "timeout=5000 tls=none" --primary-args tls=none start ||
	fail "colo-controller start"
"$CTL" --primary 1 --secondary 2 --interval 0 --count 3 --metrics-file "$TEST_DIR/run.prom" run \
	>"$TEST_DIR/run.out" || fail "colo-controller run: $(cat "$TEST_DIR/run.out")"
[ ! -e "$TEST_DIR/run.prom.tmp" ] || fail "run left run.prom.tmp behind"
promcheck "$TEST_DIR/run.prom"
L='primary="1",secondary="2"'
expect_eq "$(sample "$TEST_DIR/run.prom" "blktap_colo_checkpoints_total{$L}")" 3 "checkpoints_total"
expect_eq "$(sample "$TEST_DIR/run.prom" "blktap_colo_checkpoint_failures_total{$L}")" 0 "failures_total"
expect_eq "$(sample "$TEST_DIR/run.prom" "blktap_colo_checkpoint_duration_seconds_count{$L}")" 3 "histogram count"
expect_eq "$(sample "$TEST_DIR/run.prom" "blktap_colo_checkpoint_duration_seconds_bucket{$L,le=\"+Inf\"}")" 3 "+Inf bucket"
expect_eq "$(sample "$TEST_DIR/run.prom" "blktap_colo_checkpoint_duration_seconds_bucket{$L,le=\"10\"}")" 3 "10 s bucket"
sum=$(sample "$TEST_DIR/run.prom" "blktap_colo_checkpoint_duration_seconds_sum{$L}")
"$PY" -c "import sys; sys.exit(not 0 < float('$sum') < 30)" || fail "histogram sum $sum"

qio_cmds "$P_URI" -- "write -P 0x5a 0 64k" "write -P 0x5b 1M 12k" || fail "writes: $QIO_OUT"
wait_applied

step "metrics: what tap-ctl colo status says of each disk"
# The counts reach xenstore every 200 ms: wait until the nodes have them.
for _ in $(seq 100); do
	[ "$(xenstore-read "$(disk_dir 1)/dirty-blocks")" = "$(colo_field P dirty_blocks)" ] &&
		[ "$(xenstore-read "$(disk_dir 2)/buffer-bytes")" = "$(colo_field S buffer_bytes)" ] &&
		[ "$(xenstore-read "$(disk_dir 1)/sent-bytes")" = "$(colo_field P sent_bytes)" ] && break
	sleep 0.05
done
"$CTL" --primary 1 --secondary 2 metrics >"$TEST_DIR/m.prom" || fail "metrics"
promcheck "$TEST_DIR/m.prom"
for n in P S; do
	[ $n = P ] && lab=$P || lab=$S
	for k in epoch sent_bytes buffer_bytes dirty_blocks; do
		expect_eq "$(sample "$TEST_DIR/m.prom" "blktap_colo_$k{$lab}")" "$(colo_field $n $k)" "$n $k"
	done
	role=$(colo_field $n role)
	expect_eq "$(sample "$TEST_DIR/m.prom" "blktap_colo_role{$lab,role=\"$role\"}")" 1 "$n role"
	expect_eq "$(grep -c "^blktap_colo_role{$lab,.*} 1\$" "$TEST_DIR/m.prom")" 1 "$n: one role"
	expect_eq "$(sample "$TEST_DIR/m.prom" "blktap_colo_state{$lab,state=\"running\"}")" 1 "$n state"
	expect_eq "$(grep -c "^blktap_colo_state{$lab,.*} 1\$" "$TEST_DIR/m.prom")" 1 "$n: one state"
	expect_eq "$(sample "$TEST_DIR/m.prom" "blktap_colo_link_up{$lab}")" 1 "$n link up"
done
[ "$(colo_field P dirty_blocks)" -gt 0 ] || fail "no dirty blocks after the writes"
[ "$(colo_field S buffer_bytes)" -gt 0 ] || fail "no buffer bytes after the writes"
expect_eq "$(sample "$TEST_DIR/m.prom" 'blktap_colo_xenstore_up{side="primary",domid="1"}')" 1 "primary xenstore up"
expect_eq "$(sample "$TEST_DIR/m.prom" 'blktap_colo_xenstore_up{side="secondary",domid="2"}')" 1 "secondary xenstore up"

step "a side whose xenstore is gone: xenstore_up 0, exit 2, the other side still there"
rc=0
"$CTL" --primary 1 --secondary 2 --secondary-xs "$TEST_DIR/none.sock" metrics \
	>"$TEST_DIR/half.prom" 2>"$TEST_DIR/err" || rc=$?
expect_eq "$rc" 2 "metrics with the Secondary's xenstore gone: exit status"
promcheck "$TEST_DIR/half.prom"
expect_eq "$(sample "$TEST_DIR/half.prom" "blktap_colo_xenstore_up{side=\"secondary\",domid=\"2\"}")" 0 "secondary down"
expect_eq "$(sample "$TEST_DIR/half.prom" "blktap_colo_link_up{$P}")" 1 "primary still there"
grep -q "^colo-controller: secondary 2: cannot connect to xenstore at $TEST_DIR/none.sock: " \
	"$TEST_DIR/err" || fail "stderr: $(cat "$TEST_DIR/err")"

colo_pair_destroy
echo PASS
