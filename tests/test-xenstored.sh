#!/usr/bin/env bash
# colo-test-xenstored driven by Debian's xenstore-* clients and by raw wire messages: exact
# outputs of the clients, watch events, state across kill -9, malformed messages, many
# clients, and a client that reads nothing.
source "$(dirname "$0")/functions.sh"
source "$(dirname "$0")/xenstore-functions.sh"
for tool in xenstore-write xenstore-read xenstore-ls xenstore-list xenstore-rm \
	xenstore-exists xenstore-chmod xenstore-watch; do
	requires "$tool"
done

# xs RC STDOUT STDERR TOOL ARGS...: the client (with -s: socket only) exits with RC and prints
# exactly STDOUT and STDERR.
xs() {
	local rc=$1 out=$2 err=$3 tool=$4 got_rc=0
	shift 4
	"$tool" -s "$@" >"$TEST_DIR/out" 2>"$TEST_DIR/err" || got_rc=$?
	[ "$got_rc" = "$rc" ] || fail "$tool $*: exit $got_rc, expected $rc ($(cat "$TEST_DIR/err"))"
	[ "$(cat "$TEST_DIR/out")" = "$out" ] || fail "$tool $*: expected output
$out
got
$(cat "$TEST_DIR/out")"
	[ "$(cat "$TEST_DIR/err")" = "$err" ] ||
		fail "$tool $*: expected error '$err', got '$(cat "$TEST_DIR/err")'"
}

# watch_start NAME N PATH: xenstore-watch -n N PATH in the background, output in
# $TEST_DIR/NAME.watch; returns once its initial event is there.
watch_start() {
	local name=$1 file="$TEST_DIR/$1.watch"
	timeout 20 xenstore-watch -n "$2" "$3" >"$file" 2>&1 &
	printf -v "WATCH_$name" %s "$!"
	for _ in $(seq 500); do
		[ -s "$file" ] && return 0
		sleep 0.01
	done
	fail "xenstore-watch $3 printed no initial event"
}

# watch_expect NAME LINES: the watch ended (it saw N events) and printed exactly LINES.
watch_expect() {
	local pid=WATCH_$1 rc=0
	wait "${!pid}" || rc=$?
	[ "$rc" = 0 ] || fail "xenstore-watch $1 exited with $rc: $(cat "$TEST_DIR/$1.watch")"
	[ "$(cat "$TEST_DIR/$1.watch")" = "$2" ] || fail "watch $1: expected
$2
got
$(cat "$TEST_DIR/$1.watch")"
}

xsd_start

step "the initial tree"
xs 0 'tool = ""
 xenstored = ""
local = ""
 domain = ""
  0 = ""' '' xenstore-ls
xs 0 'tool = ""  . . . . . . . . . . . . . . . . . . . . . . . . .  (n0)
 xenstored = ""  . . . . . . . . . . . . . . . . . . . . . .  (n0)
local = "" . . . . . . . . . . . . . . . . . . . . . . . . .  (n0)
 domain = "" . . . . . . . . . . . . . . . . . . . . . . . .  (n0)
  0 = "" . . . . . . . . . . . . . . . . . . . . . . . . . .  (n0)' '' xenstore-ls -p /

step "write, read, parents, list, exists"
xs 0 '' '' xenstore-write /a/b/c hello /x 1
xs 0 'hello' '' xenstore-read /a/b/c
xs 0 '' '' xenstore-read /a/b
xs 0 'b = ""
 c = "hello"' '' xenstore-ls /a
xs 0 'tool
local
a
x' '' xenstore-list /
xs 0 '' '' xenstore-exists /a/b
xs 1 '' '' xenstore-exists /a/nope
xs 1 '' 'xenstore-read: couldn'"'"'t read path /nope' xenstore-read /nope
xs 1 '' 'xenstore-list: could not list path /nope' xenstore-list /nope
xs 1 '' 'xenstore-ls: xs_directory (/nope): No such file or directory' xenstore-ls /nope
xs 1 '' 'xenstore-write: could not write path /bad//path' xenstore-write /bad//path v
xs 1 '' 'xenstore-read: couldn'"'"'t read path /a/b/' xenstore-read /a/b/
# Relative paths are below /local/domain/0.
xs 0 '' '' xenstore-write rel/x 7
xs 0 '7' '' xenstore-read /local/domain/0/rel/x
xs 0 '/local/domain/0 = ""
/local/domain/0/rel = ""
/local/domain/0/rel/x = "7"' '' xenstore-ls -f /local/domain

step "rm"
xs 0 '' '' xenstore-write /a/b/d 2 /a/e 3
xs 0 '' '' xenstore-rm /a/b
xs 0 'e = "3"' '' xenstore-ls /a
# A missing node with an existing parent is fine; a missing parent is not.
xs 0 '' '' xenstore-rm /a/b
xs 1 '' 'xenstore-rm: could not remove path /a/b/c' xenstore-rm /a/b/c
xs 0 '' '' xenstore-rm /a
xs 1 '' '' xenstore-exists /a

step "permissions"
xs 0 '' '' xenstore-write /p/q v
xs 0 '' '' xenstore-chmod /p n0 r5 b7
xs 0 '' '' xenstore-write /p/new/leaf w
xs 0 'q = "v"  . . . . . . . . . . . . . . . . . . . . . . . . . .  (n0)
new = "" . . . . . . . . . . . . . . . . . . . . . . . . . .  (n0,r5,b7)
 leaf = "w"  . . . . . . . . . . . . . . . . . . . . . . . .  (n0,r5,b7)' '' xenstore-ls -p /p
xs 0 '' '' xenstore-chmod -r /p w3
xs 0 'q = "v"  . . . . . . . . . . . . . . . . . . . . . . . . . .  (w3)
new = "" . . . . . . . . . . . . . . . . . . . . . . . . . .  (w3)
 leaf = "w"  . . . . . . . . . . . . . . . . . . . . . . . .  (w3)' '' xenstore-ls -p /p
xs 1 '' "xenstore-chmod: Error occurred setting permissions on '/nope': No such file or directory" \
	xenstore-chmod /nope r0
xs 0 '' '' xenstore-rm /p

step "watches"
watch_start w 6 /w
xs 0 '' '' xenstore-write /w/a 1
xs 0 '' '' xenstore-write /wx 1
xs 0 '' '' xenstore-write /w 2
xs 0 '' '' xenstore-chmod /w r1
xs 0 '' '' xenstore-rm /w
xs 0 '' '' xenstore-write /w/z 9
watch_expect w '/w
/w/a
/w
/w
/w
/w/z'
# A watch below a removed node fires for itself; relative watches see relative paths.
xs 0 '' '' xenstore-write /r/s/t 1
watch_start deep 2 /r/s/t
watch_start rel 3 rel
xs 0 '' '' xenstore-rm /r
xs 0 '' '' xenstore-write /local/domain/0/rel/y 1 rel 2
watch_expect deep '/r/s/t
/r/s/t'
watch_expect rel 'rel
rel/y
rel'

step "state across kill -9 and SIGTERM"
xs 0 '' '' xenstore-write /keep/me "value 1" /keep/you 2
xs 0 '' '' xenstore-chmod /keep/me n0 r9
xsd_kill9
xsd_start
xs 0 'me = "value 1" . . . . . . . . . . . . . . . . . . . . . . .  (n0,r9)
you = "2"  . . . . . . . . . . . . . . . . . . . . . . . . .  (n0)' '' xenstore-ls -p /keep
xs 0 'tool
local
x
wx
w
keep' '' xenstore-list /
xs 0 '' '' xenstore-rm /keep/you
# shellcheck disable=SC2119 # no extra daemon options
xsd_restart
xs 0 'me = "value 1"' '' xenstore-ls /keep
# Enough changes that the journal is folded into a new snapshot on the way.
"$PY" - "$XSD_SOCK" <<'PYEOF' || fail "big writes failed"
import socket, struct, sys
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
for i in range(500):
    v = (b'%d-' % i) * 600
    p = b'/big/k%d\0' % (i % 20) + v
    s.sendall(struct.pack('<IIII', 11, i, 0, len(p)) + p)
    r = b''
    while len(r) < 19:
        r += s.recv(19 - len(r))
    assert r == struct.pack('<IIII', 11, i, 0, 3) + b'OK\0', r
PYEOF
log_size=$(stat -c %s "$XSD_STATE.log")
[ "$log_size" -lt 1000000 ] || fail "the journal was never compacted ($log_size bytes)"
xsd_kill9
xsd_start
for i in 0 7 19; do
	expect_eq "$(xenstore-read -s /big/k$i)" "$("$PY" -c "print('%d-' % (480 + $i) * 600)")" "/big/k$i"
done
expect_eq "$(xenstore-list -s /big | wc -l)" 20 "children of /big"
xs 0 '' '' xenstore-rm /big

step "options and a corrupt state"
rc=0
err=$("$XSD_BIN" --socket "$TEST_DIR/other.sock" --bogus 2>&1) || rc=$?
expect_eq "$rc:$err" "2:colo-test-xenstored: unknown option --bogus" "an unknown option"
rc=0
err=$("$XSD_BIN" --state "$TEST_DIR/x" 2>&1) || rc=$?
expect_eq "$rc:$err" "2:colo-test-xenstored: --socket PATH is required" "no --socket"
rc=0
err=$("$XSD_BIN" --socket "$XSD_SOCK" 2>&1) || rc=$?
expect_eq "$rc:$err" "1:colo-test-xenstored: $XSD_SOCK: a daemon already listens there" \
	"a second daemon on the socket"
xs 0 'me = "value 1"' '' xenstore-ls /keep
printf 'garbage' >"$TEST_DIR/corrupt.state"
rc=0
err=$("$XSD_BIN" --socket "$TEST_DIR/other.sock" --state "$TEST_DIR/corrupt.state" 2>&1) || rc=$?
expect_eq "$rc:$err" "1:colo-test-xenstored: the state $TEST_DIR/corrupt.state is corrupt" \
	"a corrupt state"
[ ! -e "$TEST_DIR/other.sock" ] || fail "a daemon that failed to start left its socket"

step "raw messages"
"$PY" - "$XSD_SOCK" <<'PYEOF' || fail "raw protocol checks failed"
import socket, struct, sys, time

PATH = sys.argv[1]
T = dict(CONTROL=0, DIRECTORY=1, READ=2, GET_PERMS=3, WATCH=4, UNWATCH=5, TSTART=6, TEND=7,
         DOMPATH=10, WRITE=11, MKDIR=12, RM=13, SET_PERMS=14, EVENT=15, ERROR=16, INTRODUCED=17,
         RESET_WATCHES=21, DIRPART=22)

def conn():
    s = socket.socket(socket.AF_UNIX)
    s.connect(PATH)
    s.settimeout(10)
    return s

def recv_exact(s, n):
    b = b''
    while len(b) < n:
        c = s.recv(n - len(b))
        if not c:
            raise EOFError
        b += c
    return b

def send(s, typ, payload, req=7, tx=0):
    s.sendall(struct.pack('<IIII', typ, req, tx, len(payload)) + payload)

def recv(s):
    typ, req, tx, ln = struct.unpack('<IIII', recv_exact(s, 16))
    return typ, req, tx, recv_exact(s, ln)

def expect(s, typ, payload, want_typ, want, req=7, tx=0):
    send(s, typ, payload, req, tx)
    got = recv(s)
    assert got == (want_typ, req, tx, want), "%r %r: got %r, expected %r" % (
        typ, payload, got, (want_typ, req, tx, want))

s = conn()
# Replies: values without NUL, acks and errors with one; ids echoed.
expect(s, T['WRITE'], b'/raw/v\0abc', T['WRITE'], b'OK\0', req=0x12345678)
expect(s, T['READ'], b'/raw/v\0', T['READ'], b'abc', req=0xffffffff)
expect(s, T['READ'], b'/raw/missing\0', T['ERROR'], b'ENOENT\0')
expect(s, T['MKDIR'], b'/raw/v\0', T['MKDIR'], b'OK\0')
expect(s, T['DIRECTORY'], b'/raw\0', T['DIRECTORY'], b'v\0')
expect(s, T['DIRECTORY'], b'/raw/v\0', T['DIRECTORY'], b'')
expect(s, T['GET_PERMS'], b'/raw/v\0', T['GET_PERMS'], b'n0\0')
expect(s, T['GET_PERMS'], b'@introduceDomain\0', T['GET_PERMS'], b'n0\0')
expect(s, T['SET_PERMS'], b'/raw/v\0r0x10\0b7\0', T['SET_PERMS'], b'OK\0')
expect(s, T['GET_PERMS'], b'/raw/v\0', T['GET_PERMS'], b'r16\0b7\0')
expect(s, T['SET_PERMS'], b'/raw/v\0q0\0', T['ERROR'], b'EINVAL\0')
expect(s, T['SET_PERMS'], b'/raw/v\0r\0', T['ERROR'], b'EINVAL\0')
expect(s, T['SET_PERMS'], b'/raw/v\0', T['ERROR'], b'EINVAL\0')
expect(s, T['DOMPATH'], b'5\0', T['DOMPATH'], b'/local/domain/5\0')
expect(s, T['INTRODUCED'], b'0\0', T['INTRODUCED'], b'T\0')
expect(s, T['INTRODUCED'], b'3\0', T['INTRODUCED'], b'F\0')
expect(s, T['CONTROL'], b'check\0', T['CONTROL'], b'OK\0')
expect(s, T['CONTROL'], b'no-such-command\0', T['ERROR'], b'EINVAL\0')
expect(s, T['RM'], b'/\0', T['ERROR'], b'EINVAL\0')
expect(s, T['RM'], b'/raw/no/such\0', T['ERROR'], b'ENOENT\0')
# Malformed: no NUL, two args where one is due, bad paths, unknown types, unknown txn.
expect(s, T['READ'], b'/raw/v', T['ERROR'], b'EINVAL\0')
expect(s, T['READ'], b'/raw/v\0x\0', T['ERROR'], b'EINVAL\0')
expect(s, T['READ'], b'', T['ERROR'], b'EINVAL\0')
expect(s, T['READ'], b'/raw/v/\0', T['ERROR'], b'EINVAL\0')
expect(s, T['READ'], b'/raw//v\0', T['ERROR'], b'EINVAL\0')
expect(s, T['READ'], b'/raw/v!\0', T['ERROR'], b'EINVAL\0')
expect(s, T['READ'], b'@releaseDomain\0', T['ERROR'], b'EINVAL\0')
expect(s, T['WRITE'], b'/raw/nonul', T['ERROR'], b'EINVAL\0')
expect(s, T['READ'], b'/' + b'a' * 3072 + b'\0', T['ERROR'], b'EINVAL\0')
expect(s, T['READ'], b'/' + b'a' * 2047 + b'\0', T['ERROR'], b'ENOENT\0')
expect(s, T['READ'], b'/' + b'a' * 2048 + b'\0', T['ERROR'], b'EINVAL\0')
expect(s, T['READ'], b'/local/domain/0/' + b'a' * 2048 + b'\0', T['ERROR'], b'ENOENT\0')
expect(s, 999, b'', T['ERROR'], b'ENOSYS\0')
expect(s, T['EVENT'], b'/x\0t\0', T['ERROR'], b'ENOSYS\0')
expect(s, T['READ'], b'/raw/v\0', T['ERROR'], b'ENOENT\0', tx=42)
expect(s, T['TEND'], b'X\0', T['ERROR'], b'EINVAL\0')
expect(s, T['TEND'], b'T\0', T['ERROR'], b'ENOENT\0')
expect(s, T['WATCH'], b'/raw\0', T['ERROR'], b'EINVAL\0')
expect(s, T['UNWATCH'], b'/raw\0tok\0', T['ERROR'], b'ENOENT\0')

# Transactions: ids from 1, no nesting, tx_id echoed.
expect(s, T['TSTART'], b'\0', T['TSTART'], b'1\0')
expect(s, T['TSTART'], b'\0', T['ERROR'], b'EBUSY\0', tx=1)
expect(s, T['WRITE'], b'/raw/t\0in', T['WRITE'], b'OK\0', tx=1)
expect(s, T['READ'], b'/raw/t\0', T['ERROR'], b'ENOENT\0')
expect(s, T['TEND'], b'T\0', T['TEND'], b'OK\0', tx=1)
expect(s, T['READ'], b'/raw/t\0', T['READ'], b'in')
expect(s, T['TSTART'], b'\0', T['TSTART'], b'2\0')
expect(s, T['TEND'], b'F\0', T['TEND'], b'OK\0', tx=2)

# Watches: the ack, then the initial event; events come before the reply of the request
# that caused them.
expect(s, T['WATCH'], b'/raw\0tok\0', T['WATCH'], b'OK\0')
assert recv(s) == (T['EVENT'], 0, 0, b'/raw\0tok\0')
expect(s, T['WATCH'], b'/raw\0tok\0', T['ERROR'], b'EEXIST\0')
send(s, T['WRITE'], b'/raw/w\0x')
assert recv(s) == (T['EVENT'], 0, 0, b'/raw/w\0tok\0')
assert recv(s) == (T['WRITE'], 7, 0, b'OK\0')
expect(s, T['WATCH'], b'@introduceDomain\0sp\0', T['WATCH'], b'OK\0')
assert recv(s) == (T['EVENT'], 0, 0, b'@introduceDomain\0sp\0')
expect(s, T['RESET_WATCHES'], b'', T['RESET_WATCHES'], b'OK\0')
expect(s, T['UNWATCH'], b'/raw\0tok\0', T['ERROR'], b'ENOENT\0')

# DIRECTORY_PART: generation, names, and an empty string after the last one.
send(s, T['DIRPART'], b'/raw\x000\x00')
typ, _, _, body = recv(s)
gen, rest = body.split(b'\0', 1)
assert typ == T['DIRPART'] and gen.isdigit() and rest == b'v\0t\0w\0\0', body
send(s, T['DIRPART'], b'/raw\x006\x00')
assert recv(s)[3] == gen + b'\0\0'
expect(s, T['DIRPART'], b'/raw\0', T['ERROR'], b'EINVAL\0')

# A message longer than XENSTORE_PAYLOAD_MAX ends that connection, and only that one.
bad = conn()
bad.sendall(struct.pack('<IIII', T['READ'], 1, 0, 4097))
try:
    assert bad.recv(16) == b'', "an over-long message was answered"
except ConnectionResetError:
    pass
# Garbage and a half message from a client that goes away.
g = conn()
g.sendall(b'\xff' * 10)
g.close()
expect(s, T['READ'], b'/raw/v\0', T['READ'], b'abc')
print("raw checks passed")
PYEOF

step "many clients at once"
for i in $(seq 20); do
	(for j in $(seq 10); do xenstore-write -s "/many/c$i/k$j" "$i.$j" || exit 1; done) &
done
wait_rc=0
for job in $(jobs -p); do
	[ "$job" = "$XSD_PID" ] && continue
	wait "$job" || wait_rc=1
done
[ "$wait_rc" = 0 ] || fail "a concurrent writer failed"
for i in $(seq 20); do
	for j in $(seq 10); do
		expect_eq "$(xenstore-read -s "/many/c$i/k$j")" "$i.$j" "/many/c$i/k$j"
	done
done
expect_eq "$(xenstore-list -s /many | wc -l)" 20 "writers' directories"

step "a client that reads nothing"
"$PY" - "$XSD_SOCK" <<'PYEOF' || fail "slow client check failed"
import socket, struct, sys, time
path = sys.argv[1]

def conn():
    s = socket.socket(socket.AF_UNIX)
    s.connect(path)
    s.settimeout(20)
    return s

def call(s, typ, payload):
    s.sendall(struct.pack('<IIII', typ, 1, 0, len(payload)) + payload)
    hdr = b''
    while len(hdr) < 16:
        hdr += s.recv(16 - len(hdr))
    t, _, _, ln = struct.unpack('<IIII', hdr)
    body = b''
    while len(body) < ln:
        body += s.recv(ln - len(body))
    return t, body

# 100 watches with 4000-byte tokens: each write queues 400 KB for a client that never reads.
slow = conn()
for i in range(100):
    tok = b'%04d' % i + b'x' * 3996
    slow.sendall(struct.pack('<IIII', 4, i, 0, 6 + len(tok) + 1) + b'/slow\0' + tok + b'\0')
w = conn()
for i in range(80):
    assert call(w, 11, b'/slow/k%d\0v' % i) == (11, b'OK\0')
# The daemon gave up on it: what it got ends, well short of 80 * 100 events.
got = 0
while True:
    try:
        b = slow.recv(1 << 20)
    except ConnectionResetError:
        break
    if not b:
        break
    got += len(b)
assert got < 80 * 100 * 4000, "the slow client got everything (%d bytes)" % got
assert call(w, 2, b'/slow/k79\0') == (2, b'v')
print("slow client dropped after %d bytes" % got)
PYEOF
grep -q 'does not read its replies: dropped' "$XSD_LOG" || fail "the slow client was not dropped"
xs 0 'v' '' xenstore-read /slow/k0

xsd_stop
[ -s "$XSD_STATE" ] || fail "no state file"
echo "PASS: colo-test-xenstored works with the real xenstore clients"
