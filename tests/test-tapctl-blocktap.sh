#!/usr/bin/env bash
# Xen's block-tap hotplug script (tools/hotplug/Linux/block-tap), as of Xen 4.17 and of 4.19,
# drives tap-ctl and parses its output.  The functions below redo exactly those calls and
# that parsing (re-written from reading both versions, not copied), against real tapdisks,
# and check what each version would end up with.  docs/tap-ctl.md, "Xen's block-tap".
source "$(dirname "$0")/functions.sh"

requires qemu-io

# Both versions hard-code /run/blktap-control; the test runs in its own control directory.
CTLDIR=$BLKTAP_CONTROL_DIR
tap-ctl() { "$TAPCTL" "$@"; }

# --- Both versions: parse_target and find_device ---

# parse_target PARAMS: splits at every ':' and keeps fields 1 and 2 as type and file.
bt_parse_target() {
	local fields
	# shellcheck disable=SC2207 # word splitting on the ':'-separated fields is the point
	fields=($(echo "$1" | tr ":" "\n"))
	BT_TYPE=${fields[0]:-}
	BT_FILE=${fields[1]:-}
	[ -n "$BT_TYPE" ] && [ -n "$BT_FILE" ]
}

# find_device: tap-ctl list -t TYPE -f FILE, then every pid= and minor= word; the last wins.
# 4.17 dies ("cannot find required parameters") where 4.19 returns 1.
bt_find_device() {
	local info param
	BT_PID='' BT_MINOR=''
	info=$(tap-ctl list -t "$BT_TYPE" -f "$BT_FILE")
	for param in $(echo "$info" | tr "," "\n"); do
		case $param in
		pid=*) BT_PID=${param#pid=} ;;
		minor=*) BT_MINOR=${param#minor=} ;;
		esac
	done
	[ -n "$BT_PID" ] && [ -n "$BT_MINOR" ]
}

# --- 4.17: add is create + write_dev, remove is find_device + destroy ---

bt417_add() {
	BT_DEV=$(tap-ctl create -a "$1")
}

bt417_remove() {
	bt_find_device || return 1
	tap-ctl destroy -p "$BT_PID" -m "$BT_MINOR" >/dev/null
}

# --- 4.19: add reuses find_device's tapdisk or runs allocate/spawn/attach/open ---

bt419_tap_create() {
	local target=$1
	BT_MINOR=$(tap-ctl allocate) || return 1
	BT_MINOR=${BT_MINOR#"$CTLDIR"/tapdisk/tapdisk-}
	BT_MINOR=${BT_MINOR#/dev/xen/blktap-2/tapdev}
	# The lock fd is closed for spawn, or tapdisk would hold the lock forever.
	if ! BT_PID=$( (exec 9>&-; tap-ctl spawn)); then
		tap-ctl free -m "$BT_MINOR"
		return 1
	fi
	if ! tap-ctl attach -p "$BT_PID" -m "$BT_MINOR"; then
		tap-ctl free -m "$BT_MINOR"
		return 1
	fi
	if ! tap-ctl open -p "$BT_PID" -m "$BT_MINOR" -a "$target"; then
		tap-ctl detach -p "$BT_PID" -m "$BT_MINOR"
		tap-ctl free -m "$BT_MINOR"
		return 1
	fi
}

# bt419_add TARGET: sets BT_PID, BT_MINOR and BT_SOCK (vbd3's physical-device-path).
bt419_add() {
	bt_parse_target "$1" || return 1
	bt_find_device || bt419_tap_create "$1" || return 1
	BT_SOCK=$(printf "%s/nbd%ld.%d" "$CTLDIR" "$BT_PID" "$BT_MINOR")
}

# bt419_remove PID MINOR: the pid and minor nodes of the backend.
bt419_remove() {
	tap-ctl destroy -p "$1" -m "$2" >/dev/null
}

# count_using's and check_tap_sharing's idea of the file of a params node.
bt419_params_file() {
	echo "$1" | cut -d ":" -f 2
}

expect_list() { # expect_list EXPECTED tap-ctl-list-args...
	local want=$1 got
	shift
	got=$(tap-ctl list "$@") || fail "tap-ctl list $* failed"
	[ "$got" = "$want" ] || fail "tap-ctl list $*: expected
'$want'
got
'$got'"
}

expect_gone() { # expect_gone PID
	wait_gone "$1"
	expect_list "" -p "$1"
}

read_back() { # read_back SOCKET PATTERN: the export reads PATTERN at offset 0
	qio_cmds "nbd+unix:///?socket=$1" -- "read -P $2 0 64k" ||
		fail "reading $1: $QIO_OUT"
}

img=$TEST_DIR/disk.img
make_image "$img" 16M
qemu-io -f raw -c "write -P 0x5a 0 64k" "$img" >/dev/null

step "4.19: add creates a tapdisk, a second add of the same file reuses it, remove destroys it"
bt419_add "aio:$img" || fail "4.19 add aio:$img"
expect_eq "$BT_MINOR" 0 "the minor 4.19 parses from tap-ctl allocate"
expect_list "pid=$BT_PID minor=0 state=0 args=aio:$img" -t aio -f "$img"
expect_eq "$BT_SOCK" "$CTLDIR/nbd$BT_PID.0" "4.19's physical-device-path"
read_back "$BT_SOCK" 0x5a
pid1=$BT_PID
bt419_add "aio:$img" || fail "4.19 second add of aio:$img"
expect_eq "$BT_PID.$BT_MINOR" "$pid1.0" "4.19's find_device on the second add"
expect_list "pid=$pid1 minor=0 state=0 args=aio:$img"
bt419_remove "$pid1" 0 || fail "4.19 remove"
expect_gone "$pid1"
expect_list ""
echo "PASS: 4.19 add, reuse and remove of an aio disk"

step "4.17: create prints the devname, find_device finds it, destroy removes it"
bt_parse_target "aio:$img" || fail "4.17 parse_target"
bt417_add "aio:$img" || fail "4.17 add"
expect_eq "$BT_DEV" "$CTLDIR/tapdisk/tapdisk-0" "tap-ctl create's devname"
# write_dev would stat it: a marker file, not the blktap2 block device 4.17 expects.
{ [ -f "$BT_DEV" ] && [ ! -b "$BT_DEV" ]; } || fail "$BT_DEV is not a plain marker file"
bt_find_device || fail "4.17 find_device after create"
expect_list "pid=$BT_PID minor=0 state=0 args=aio:$img" -p "$BT_PID"
pid1=$BT_PID
bt417_remove || fail "4.17 remove"
expect_gone "$pid1"
[ ! -e "$BT_DEV" ] || fail "destroy left the minor marker $BT_DEV"
expect_list ""
echo "PASS: 4.17 create, find_device and destroy of an aio disk"

step "-t/-f match only open VBDs: a bare tapdisk and an orphan minor do not confuse find_device"
bare=$("$TAPCTL" spawn) || fail "spawn"
orphan=$("$TAPCTL" allocate) || fail "allocate"
orphan=${orphan##*-}
bt419_add "aio:$img" || fail "4.19 add next to a bare tapdisk"
vbd="$BT_PID.$BT_MINOR"
expect_list "pid=$BT_PID minor=$BT_MINOR state=0 args=aio:$img" -t aio -f "$img"
bt_find_device || fail "find_device"
expect_eq "$BT_PID.$BT_MINOR" "$vbd" "find_device next to a bare tapdisk and an orphan minor"
expect_list "pid=$bare" -p "$bare"
expect_list "minor=$orphan" -m "$orphan"
bt419_remove "$BT_PID" "$BT_MINOR" || fail "4.19 remove"
kill "$bare"
"$TAPCTL" free -m "$orphan" || fail "free -m $orphan"
expect_gone "$bare"
echo "PASS: list -t -f prints only the matching open VBD"

step "colo:HOST:PORT:/img: block-tap's ':' split gives type colo and file HOST"
port=$(free_port)
colo_spec="colo:127.0.0.1:$port:$img"
bt_parse_target "$colo_spec" || fail "parse_target $colo_spec"
expect_eq "$BT_TYPE/$BT_FILE" "colo/127.0.0.1" "parse_target of $colo_spec"
expect_eq "$(bt419_params_file "$colo_spec")" 127.0.0.1 "count_using's file of $colo_spec"
bt419_add "$colo_spec" || fail "4.19 add $colo_spec"
cpid=$BT_PID cminor=$BT_MINOR
expect_list "pid=$cpid minor=$cminor state=0 args=$colo_spec" -t colo -f "127.0.0.1:$port:$img"
# find_device looks for file "127.0.0.1": it never finds the VBD, so 4.19 never reuses one
# and 4.17's remove dies.
expect_list "" -t colo -f 127.0.0.1
if bt_find_device; then fail "find_device found $BT_PID/$BT_MINOR for file 127.0.0.1"; fi
read_back "$CTLDIR/nbd$cpid.$cminor" 0x5a
bt419_add "$colo_spec" || fail "4.19 second add $colo_spec"
[ "$BT_PID.$BT_MINOR" != "$cpid.$cminor" ] || fail "4.19 reused the colo VBD"
expect_list "pid=$cpid minor=$cminor state=0 args=$colo_spec
pid=$BT_PID minor=$BT_MINOR state=0 args=$colo_spec" -t colo
bt419_remove "$BT_PID" "$BT_MINOR" || fail "4.19 remove of the second colo VBD"
expect_gone "$BT_PID"
if bt417_remove; then fail "4.17 remove found the colo VBD"; fi
bt419_remove "$cpid" "$cminor" || fail "4.19 remove of $colo_spec"
expect_gone "$cpid"
expect_list ""
echo "PASS: colo VBDs: created by 4.19's calls, not found by block-tap's find_device"

step "create -a with a colo spec, as 4.17 calls it"
bt417_add "$colo_spec" || fail "4.17 create $colo_spec"
expect_eq "$BT_DEV" "$CTLDIR/tapdisk/tapdisk-0" "tap-ctl create's devname"
line=$(tap-ctl list -m 0)
cpid=${line%% *}
cpid=${cpid#pid=}
expect_eq "$line" "pid=$cpid minor=0 state=0 args=$colo_spec" "list -m 0"
tap-ctl destroy -p "$cpid" -m 0 >/dev/null || fail "destroy"
expect_gone "$cpid"
expect_list ""
echo "PASS: create and destroy of a colo spec"
