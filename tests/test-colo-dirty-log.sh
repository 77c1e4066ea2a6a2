#!/bin/bash
# The Primary's dirty log (docs/colo-dirty-log.md) across a kill -9 of the Primary tapdisk.
#
# A pair on a 64 MiB disk (64 extents of 1 MiB), the Primary with dirty_log=.  Three phases of
# writes to disjoint sets of extents: A, a checkpoint (both sides), B, a checkpoint, then C
# with up to 8 random writes in flight, and kill -9 of the Primary tapdisk after a random
# number of them completed.  The Primary cannot know whether the Secondary's second
# checkpoint ran, so what the Secondary may lack is everything since the first: B and C.
# A's extents were cleared lazily by the second checkpoint and reach the disk with the first
# flush of C.  So the log, read from the file, must hold exactly:
#     extents(B) | extents(C completed)  <=  log  <=  extents(B) | extents(C issued)
# (a C write that was issued but not acknowledged may or may not have set its extent), and
# every block of the Primary's image that differs from the first checkpoint's contents must
# lie in a logged extent.  A Primary tapdisk restarted on the same image and log then
# reports that set as dirty_log_extents, and its blocks as dirty_blocks / dirty_bytes; started
# again toward the (broken) Secondary, it resyncs exactly those extents, and the images are
# equal after the next checkpoint.
# The log refuses another disk size and a mode 0644 file (exact errors, nothing written).
# SEED=n replays the random choices.
source "$(dirname "$0")/functions.sh"
requires_python_nbd

log_tapdisks

seed=${SEED:-$(od -An -N4 -tu4 /dev/urandom | tr -d ' ')}
echo "seed=$seed (replay with SEED=$seed)"

if ! TESTS_SRCDIR="$top_srcdir/tests" "$PY" - "$TAPCTL" "$TEST_DIR" "$seed" <<'PYEOF'; then
import os, random, stat, struct, sys, time
sys.path.insert(0, os.environ["TESTS_SRCDIR"])
import nbd
from colo_harness import TestFailure, Vbd as HVbd, connect, identical_pair

TAPCTL, TEST_DIR, SEED = sys.argv[1], sys.argv[2], int(sys.argv[3])
MiB = 1 << 20
SIZE = 64 * MiB
BS = 4096
rng = random.Random(SEED)


def fail(msg):
    raise TestFailure(msg)


def Vbd(spec):
    return HVbd(TAPCTL, spec)


def crc32c(data):
    crc = 0xFFFFFFFF
    for b in data:
        crc = CRC_TABLE[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


CRC_TABLE = []
for i in range(256):
    c = i
    for _ in range(8):
        c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
    CRC_TABLE.append(c)


def read_log(path):
    """The set of extents the log records, read as the format says (newest valid slots)."""
    with open(path, "rb") as f:
        data = f.read()
    hdrs = []
    for s in range(2):
        h = data[s * 512:(s + 1) * 512]
        if h[:8] == b"BCOLODL1" and struct.unpack(">I", h[508:512])[0] == crc32c(h[:508]):
            hdrs.append(h)
    if not hdrs:
        fail("no valid header in the log")
    h = max(hdrs, key=lambda h: struct.unpack(">Q", h[16:24])[0])
    disk, bs, es, extents, pages = struct.unpack(">QIIQI", h[24:52])
    if (disk, bs, es, extents, pages) != (SIZE, BS, MiB, 64, 1):
        fail("log geometry %r" % ((disk, bs, es, extents, pages),))
    if len(data) != 4096 + 8192 * pages:
        fail("log of %d bytes" % len(data))
    out = set()
    for p in range(pages):
        best = None
        for s in range(2):
            off = 4096 + (2 * p + s) * 4096
            pg = data[off:off + 4096]
            if (struct.unpack(">II", pg[:8]) == (0x43444C50, p) and
                    struct.unpack(">I", pg[4092:])[0] == crc32c(pg[:4092])):
                seq = struct.unpack(">Q", pg[8:16])[0]
                if best is None or seq > best[0]:
                    best = (seq, pg)
        if best is None:
            fail("no valid slot of page %d" % p)
        bits = best[1][16:4092]
        for e in range(min(extents - p * 32608, 32608)):
            if bits[e // 8] >> (e % 8) & 1:
                out.add(p * 32608 + e)
    return out, struct.unpack(">Q", h[72:80])[0]


def extents_of(writes):
    out = set()
    for off, n in writes:
        out.update(range(off // MiB, (off + n - 1) // MiB + 1))
    return out


def fmt(s):
    return "{%s}" % ",".join(map(str, sorted(s)))


# Three disjoint sets of extents: A, B, C.
ext = list(range(64))
rng.shuffle(ext)
A, B, C = set(ext[:10]), set(ext[10:20]), set(ext[20:32])
pimg, simg, port, S, P = identical_pair(TAPCTL, TEST_DIR, SIZE, rng)
dlog = "%s/p.dlog" % TEST_DIR
S.colo("start", "secondary")
P.colo("start", "primary", "dirty_log=" + dlog)
st = os.stat(dlog)
if stat.S_IMODE(st.st_mode) != 0o600:
    fail("the new log has mode %o" % stat.S_IMODE(st.st_mode))
s = P.status()
if (s["dirty_log"], s["dirty_log_extents"], s["dirty_bytes"]) != (dlog, 0, 0):
    fail("status of a fresh Primary with a log: %r" % s)

h = connect(P.sock, SIZE)


def write_in(exts, count):
    done = []
    for _ in range(count):
        e = rng.choice(sorted(exts))
        n = rng.choice([512, 4096, 8192, 65536])
        off = e * MiB + rng.randrange(0, MiB - n + 1, 512)
        h.pwrite(rng.randbytes(n), off)
        done.append((off, n))
    return done


def checkpoint():
    P.colo("checkpoint")
    S.colo("checkpoint")


wa = write_in(A, 40)
checkpoint()
# The first checkpoint's contents, which the Secondary holds at least.
with open(pimg, "rb") as f:
    ckpt1 = f.read()
wb = write_in(B, 40)
checkpoint()
s = P.status()
# Epoch 2 (B) is kept: the Secondary's checkpoint of epoch 2 may not have run for all it knows.
want = extents_of(wb)
if s["dirty_log_extents"] < len(want):
    fail("after the second checkpoint the log has %d extents, B alone has %d" %
         (s["dirty_log_extents"], len(want)))

# C: up to 8 writes in flight, kill -9 after a random number completed.
kill_after = rng.randint(1, 60)
issued, completed, inflight = [], [], []
while len(completed) < kill_after:
    while len(inflight) < 8:
        e = rng.choice(sorted(C))
        n = rng.choice([512, 4096, 65536, 256 * 1024])
        off = e * MiB + rng.randrange(0, MiB - n + 1, 512)
        buf = nbd.Buffer.from_bytearray(bytearray(rng.randbytes(n)))
        inflight.append((h.aio_pwrite(buf, off), off, n, buf))
        issued.append((off, n))
    h.poll(1)
    for w in list(inflight):
        if h.aio_command_completed(w[0]):
            inflight.remove(w)
            completed.append((w[1], w[2]))
os.kill(P.pid, 9)
for _ in range(200):
    try:
        os.kill(P.pid, 0)
        time.sleep(0.05)
    except ProcessLookupError:
        break
print("killed the Primary with %d C writes completed, %d issued" %
      (len(completed), len(issued)))

logged, log_epoch = read_log(dlog)
lo, hi = extents_of(wb) | extents_of(completed), extents_of(wb) | extents_of(issued)
print("B %s, C completed %s, logged %s, log epoch %d" %
      (fmt(extents_of(wb)), fmt(extents_of(completed)), fmt(logged), log_epoch))
if not lo <= logged:
    fail("the log lacks extents %s (written since the first checkpoint)" % fmt(lo - logged))
if not logged <= hi:
    fail("the log has extents %s that no write since the first checkpoint touched" %
         fmt(logged - hi))
if log_epoch != 1:
    fail("the log's epoch is %d, expected 1 (the checkpoint both sides completed)" % log_epoch)
with open(pimg, "rb") as f:
    now = f.read()
differ = {b * BS // MiB for b in range(SIZE // BS)
          if now[b * BS:(b + 1) * BS] != ckpt1[b * BS:(b + 1) * BS]}
if not differ <= logged:
    fail("blocks that differ from the first checkpoint lie in unlogged extents %s" %
         fmt(differ - logged))
if differ & A:
    fail("A's extents %s differ from the first checkpoint" % fmt(differ & A))

# Restarted on the same image and log: it knows what the Secondary lacks.  With nobody to
# connect to, its start fails, and status shows the logged extents.
P2 = Vbd("colo:127.0.0.1:%d:%s" % (port, pimg))
r = P2.colo("start", "primary", "dirty_log=" + dlog, "connect_timeout=0", check=False)
if r.returncode != 110:
    fail("start without a listening Secondary: exit %d, %s" % (r.returncode, r.stderr))
s = P2.status()
want = {"role": "none", "dirty_log": dlog, "dirty_log_extents": len(logged),
        "dirty_blocks": len(logged) * MiB // BS, "dirty_bytes": len(logged) * MiB}
got = {k: s[k] for k in want}
if got != want:
    fail("the restarted Primary's status %r, expected %r" % (got, want))
print("restarted Primary: %d extents, %d dirty bytes" % (len(logged), s["dirty_bytes"]))
# The Secondary (broken since the kill, its checkpoint 2 done) listens again: the handshake
# agrees on checkpoint 2, at or after the log's 1, and the resync sends the logged extents
# (all the restarted Primary knows): the Secondary's disk is then the Primary's.
S.start_again("secondary")
P2.colo("start", "primary", "dirty_log=" + dlog)
s, ss = P2.status(), S.status()
got = (s["sync_total_bytes"], s["sync_sent_bytes"], s["dirty_bytes"], s["epoch"], ss["epoch"])
want = (len(logged) * MiB, len(logged) * MiB, 0, 3, 3)
if got != want:
    fail("the resync from the log (total, sent, dirty, epochs) = %r, expected %r" % (got, want))
P2.colo("checkpoint")
S.colo("checkpoint")
with open(pimg, "rb") as f:
    now = f.read()
with open(simg, "rb") as f:
    if f.read() != now:
        fail("after the resync from the log and a checkpoint the images differ")
print("resync from the log: %d bytes sent, the images equal after a checkpoint" %
      (len(logged) * MiB))
PYEOF
	echo "tapdisk log ($TEST_DIR/tapdisk.log), last lines:" >&2
	tail -n 30 "$TEST_DIR/tapdisk.log" >&2 || true
	fail "the dirty log after kill -9 (seed=$seed)"
fi

step "refusals: another disk, mode 0644; nothing written"
dlog=$TEST_DIR/p.dlog
for sock in "$BLKTAP_CONTROL_DIR"/ctl*; do kill -9 "${sock##*/ctl}" 2>/dev/null || true; done
make_image "$TEST_DIR/other.img" 32M
port=$(free_port)
before=$(sha256sum <"$dlog")
colo_vbd O "colo:127.0.0.1:$port:$TEST_DIR/other.img"
err=$("$TAPCTL" colo -p "$O_PID" -m "$O_MINOR" start primary dirty_log="$dlog" connect_timeout=0 tls=none 2>&1) &&
	fail "a log of another disk was accepted"
expect_eq "$err" "tap-ctl: colo start: dirty_log=$dlog: made for a disk of 67108864 bytes, this disk has 33554432 bytes" \
	"the error for a log of another disk"
chmod 0644 "$dlog"
colo_vbd Q "colo:127.0.0.1:$port:$TEST_DIR/p.img"
err=$("$TAPCTL" colo -p "$Q_PID" -m "$Q_MINOR" start primary dirty_log="$dlog" connect_timeout=0 tls=none 2>&1) &&
	fail "a log of mode 0644 was accepted"
expect_eq "$err" "tap-ctl: colo start: dirty_log=$dlog: mode 0644, must be 0600 (owner read-write only)" \
	"the error for mode 0644"
expect_eq "$(sha256sum <"$dlog")" "$before" "the refused log's contents"
expect_eq "$(colo_field Q role)" "none" "the refused Primary's role"
echo "PASS: the dirty log covers every block written since the last checkpoint after kill -9 (seed=$seed)"
