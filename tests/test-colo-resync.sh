#!/bin/bash
# Incremental resync after a lost link (docs/colo-protocol.md, "Resync").
#
# A pair on 64 MiB disks (64 extents of 1 MiB), identical at start (sync=none).  Writes A,
# a checkpoint on both sides (the Secondary completes checkpoint 1), writes B, then the link
# is cut (the Secondary's tapdisk stopped with SIGSTOP until the Primary declares the link
# lost) while writes C go on, and more C once the Primary is broken.  The Secondary, thawed,
# sees the link gone.  `start secondary` and `start primary` again: the handshake agrees on
# checkpoint 1, the Secondary goes on from it, and the Primary sends exactly the extents
# written since: extents(B | C), 1 MiB each.  status: sync_total_bytes = sync_sent_bytes =
# that count (already while the copy runs, bounded by sync_rate), both sides at epoch 2;
# after the first checkpoint the Secondary's image equals the Primary's byte for byte.
# Then the Secondary's tapdisk is replaced by a new one (no pair, no checkpoint): the next
# start finds no common checkpoint and falls back to diff of the whole disk (64 MiB
# examined, only the extents that differ sent), and after a checkpoint the images are equal.
# Last, a pair with reconnect=1 on both sides: after the same cut both start again by
# themselves, the resync sends exactly the extents written since the common checkpoint, and
# the images are equal after a checkpoint.
# SEED=n replays the random choices.
source "$(dirname "$0")/functions.sh"
requires_python_nbd

log_tapdisks

seed=${SEED:-$(od -An -N4 -tu4 /dev/urandom | tr -d ' ')}
echo "seed=$seed (replay with SEED=$seed)"

if ! TESTS_SRCDIR="$top_srcdir/tests" "$PY" - "$TAPCTL" "$TEST_DIR" "$seed" <<'PYEOF'; then
import os, random, signal, sys, time
sys.path.insert(0, os.environ["TESTS_SRCDIR"])
from colo_harness import TestFailure, Vbd as HVbd, connect, identical_pair

TAPCTL, TEST_DIR, SEED = sys.argv[1], sys.argv[2], int(sys.argv[3])
MiB = 1 << 20
SIZE = 64 * MiB
rng = random.Random(SEED)


def fail(msg):
    raise TestFailure(msg)


def Vbd(spec):
    return HVbd(TAPCTL, spec)


def wait_for(what, cond, seconds=30):
    deadline = time.monotonic() + seconds
    while not cond():
        if time.monotonic() > deadline:
            fail("no %s within %d s" % (what, seconds))
        time.sleep(0.05)


pimg, simg, port, S, P = identical_pair(TAPCTL, TEST_DIR, SIZE, rng)
OPTS = ["timeout=1000"]
S.colo("start", "secondary", *OPTS)
P.colo("start", "primary", "sync=none", *OPTS)
h = connect(P.sock, SIZE)
written = []


def write(n_writes, exts):
    for _ in range(n_writes):
        e = rng.choice(exts)
        n = rng.choice([512, 4096, 65536])
        off = e * MiB + rng.randrange(0, MiB - n + 1, 512)
        h.pwrite(rng.randbytes(n), off)
        written.append((off, n))


def extents(ws):
    return {e for off, n in ws for e in range(off // MiB, (off + n - 1) // MiB + 1)}


def images_equal(what):
    with open(pimg, "rb") as a, open(simg, "rb") as b:
        x, y = a.read(), b.read()
    if x != y:
        bad = [i for i in range(0, SIZE, 4096) if x[i:i + 4096] != y[i:i + 4096]]
        fail("%s: the images differ in %d blocks, the first at %d" % (what, len(bad), bad[0]))


# A's extents and B's and C's are apart: a resync since checkpoint 0 would send A's too.
exts = list(range(64))
rng.shuffle(exts)
a_exts, bc_exts = exts[:24], exts[24:44]
write(30, a_exts)
P.colo("checkpoint")
S.colo("checkpoint")
mark = len(written)
write(15, bc_exts)
# The cut: the Secondary stops answering; the Primary goes on writing, then declares it lost.
os.kill(S.pid, signal.SIGSTOP)
write(10, bc_exts)
wait_for("broken Primary", lambda: P.status()["state"] == "broken")
write(10, bc_exts)
os.kill(S.pid, signal.SIGCONT)
wait_for("broken Secondary", lambda: S.status()["state"] == "broken")
want = len(extents(written[mark:])) * MiB
print("writes since checkpoint 1 touch %d extents" % (want // MiB))
since0 = len(extents(written)) * MiB
S.start_again("secondary", *OPTS)
# Bounded to 4 MiB/s, so that status is seen while the copy runs: the bytes it will send are
# known before they are sent.
proc = P.colo_async("start", "primary", "sync_rate=4M", *OPTS)
seen = None
deadline = time.monotonic() + 60
while proc.poll() is None and time.monotonic() < deadline:
    st = P.status()
    if st["state"] == "syncing" and st["sync_total_bytes"] and seen is None:
        seen = (st["sync_total_bytes"], st["sync_sent_bytes"])
    time.sleep(0.02)
out, err = proc.communicate(timeout=60)
if proc.returncode:
    fail("start primary again exited %d: %s" % (proc.returncode, err.strip()))
if seen is None or seen[0] != want or seen[1] >= want:
    fail("while syncing, status (sync_total_bytes, sync_sent_bytes) = %r: expected %d total "
         "before all of it was sent" % (seen, want))
print("while syncing: %d bytes to send, %d sent so far" % seen)
st, ss = P.status(), S.status()
got = (st["state"], st["sync_total_bytes"], st["sync_sent_bytes"], st["epoch"], ss["epoch"])
if got != ("running", want, want, 2, 2):
    fail("after the resync (state, total, sent, epochs) = %r, expected %r" %
         (got, ("running", want, want, 2, 2)))
print("resync: %d bytes sent, exactly the extents written since checkpoint 1 (since 0: %d)"
      % (want, since0))
P.colo("checkpoint")
S.colo("checkpoint")
images_equal("after the resync and a checkpoint")
write(20, list(range(64)))
P.colo("checkpoint")
S.colo("checkpoint")
images_equal("after another checkpoint")

# No common checkpoint: a new Secondary tapdisk, the Primary started again.
os.kill(S.pid, signal.SIGKILL)
wait_for("broken Primary", lambda: P.status()["state"] == "broken")
write(10, list(range(64)))
S2 = Vbd("colo:127.0.0.1:%d:%s" % (port, simg))
S2.colo("start", "secondary", *OPTS)
P.start_again("primary", *OPTS)
st = P.status()
if (st["state"], st["sync_total_bytes"]) != ("running", SIZE):
    fail("the fallback diff: state %s, %d bytes examined, expected %d" %
         (st["state"], st["sync_total_bytes"], SIZE))
print("fallback diff: %d bytes examined, %d sent" % (st["sync_total_bytes"],
                                                      st["sync_sent_bytes"]))
P.colo("checkpoint")
S2.colo("checkpoint")
images_equal("after the fallback diff and a checkpoint")

# reconnect=1: a new pair whose sides start again by themselves after the cut.
pimg, simg, port, S3, P3 = identical_pair(TAPCTL, TEST_DIR, SIZE, rng, tag="3")
S3.colo("start", "secondary", "reconnect=1", *OPTS)
P3.colo("start", "primary", "sync=none", "reconnect=1", *OPTS)
h = connect(P3.sock, SIZE)
written = []
write(20, a_exts)
P3.colo("checkpoint")
S3.colo("checkpoint")
mark = len(written)
write(10, bc_exts)
os.kill(S3.pid, signal.SIGSTOP)
write(5, bc_exts)
wait_for("broken Primary", lambda: P3.status()["state"] == "broken")
write(5, bc_exts)
os.kill(S3.pid, signal.SIGCONT)
want = len(extents(written[mark:])) * MiB
wait_for("both sides running again by themselves",
         lambda: P3.status()["state"] == "running" and S3.status()["state"] == "running" and
         P3.status()["pending"] == "", 60)
st = P3.status()
if (st["sync_total_bytes"], st["sync_sent_bytes"], st["epoch"]) != (want, want, 2):
    fail("reconnect=1: (total, sent, epoch) = %r, expected %r" %
         ((st["sync_total_bytes"], st["sync_sent_bytes"], st["epoch"]), (want, want, 2)))
P3.colo("checkpoint")
S3.colo("checkpoint")
images_equal("after the reconnect's resync and a checkpoint")
print("reconnect=1: both sides started again by themselves; %d bytes resynced" % want)

# reconnect=1 and the Primary's host dies: the Secondary, started again by itself, must still
# fail over to its last checkpoint plus its VM's writes (its buffer kept until a Primary is
# accepted), not to the Primary's writes of the unfinished epoch.
pimg, simg, port, S4, P4 = identical_pair(TAPCTL, TEST_DIR, SIZE, rng, tag="4")
S4.colo("start", "secondary", "reconnect=1", *OPTS)
P4.colo("start", "primary", "sync=none", "reconnect=1", *OPTS)
h, hs = connect(P4.sock, SIZE), connect(S4.sock, SIZE)
h.pwrite(b"\x11" * 65536, 0)
P4.colo("checkpoint")
S4.colo("checkpoint")
h.pwrite(b"\x22" * 65536, 0)            # epoch 2: on the Secondary's disk, 0x11 in its buffer
hs.pwrite(b"\x33" * 65536, 4 * MiB)     # the Secondary VM's, acknowledged: in its buffer
wait_for("the write applied", lambda: P4.status()["inflight_bytes"] == 0)
os.kill(P4.pid, signal.SIGKILL)
wait_for("the Secondary started again by itself",
         lambda: S4.status()["link"] == "listening" and S4.status()["epoch"] == 1)
S4.colo("failover")
hs.shutdown()
with open(simg, "rb") as f:
    got = f.read()
if got[:65536] != b"\x11" * 65536 or got[4 * MiB:4 * MiB + 65536] != b"\x33" * 65536:
    fail("reconnect=1, failover after the Primary died: the disk at 0 is %s (expected the "
         "checkpoint's 11), at 4 MiB %s (expected the Secondary VM's 33)" %
         (got[:8].hex(), got[4 * MiB:4 * MiB + 8].hex()))
print("reconnect=1: the Secondary started again by itself fails over to its checkpoint and "
      "its VM's writes")

# Guest writes that complete while the Primary started again still connects (the Secondary
# not listening yet) are forwarded after the handshake agrees on the resync's checkpoint:
# they must carry the epoch the run goes on with, and count as changed since it.
pimg, simg, port, S5, P5 = identical_pair(TAPCTL, TEST_DIR, SIZE, rng, tag="5")
S5.colo("start", "secondary", *OPTS)
P5.colo("start", "primary", "sync=none", *OPTS)
h = connect(P5.sock, SIZE)
for i in range(3):
    h.pwrite(bytes([0x40 + i]) * 65536, i * MiB)
    P5.colo("checkpoint")
    S5.colo("checkpoint")
os.kill(S5.pid, signal.SIGSTOP)
h.pwrite(b"\x50" * 65536, 8 * MiB)
wait_for("broken Primary", lambda: P5.status()["state"] == "broken")
os.kill(S5.pid, signal.SIGCONT)
wait_for("broken Secondary", lambda: S5.status()["state"] == "broken")
proc = P5.colo_async("start", "primary", "connect_timeout=60000", *OPTS)
wait_for("the Primary connecting", lambda: P5.status()["state"] == "connecting")
h.pwrite(b"\x51" * 65536, 9 * MiB)  # completes while the Primary connects
S5.start_again("secondary", *OPTS)
out, err = proc.communicate()
st = P5.status()
if proc.returncode or st["state"] != "running":
    fail("a write during the resync's connect: start primary exited %d (%s), state %s, "
         "last_error %r" % (proc.returncode, err.strip(), st["state"], st["last_error"]))
P5.colo("checkpoint")
S5.colo("checkpoint")
images_equal("a write during the resync's connect, after a checkpoint")
print("a write completed while the Primary connected is replicated with the resync")

# reconnect=1 and the Secondary gone (kill -9): the Primary starts again by itself, and when
# an attempt finds no Secondary within connect_timeout it stays broken and tries again, as
# long as it takes.  Meanwhile the guest writes several times queue_limit at local speed: the
# resync will copy what it wrote from the dirty map, so nothing waits for a Secondary that does
# not answer, whether an attempt is under way or not.  A Secondary made again is found by the
# next attempt; with no pair identity it gets a diff; the images are equal after a checkpoint.
pimg, simg, port, S6, P6 = identical_pair(TAPCTL, TEST_DIR, SIZE, rng, tag="6")
S6.colo("start", "secondary", "reconnect=1", "queue_limit=1M", *OPTS)
P6.colo("start", "primary", "sync=none", "reconnect=1", "queue_limit=1M",
        "connect_timeout=3000", *OPTS)
h = connect(P6.sock, SIZE)
h.pwrite(b"\x60" * MiB, 0)
P6.colo("checkpoint")
S6.colo("checkpoint")
os.kill(S6.pid, signal.SIGKILL)
gone = "start: no Secondary at 127.0.0.1:%d within 3000 ms" % port
wait_for("an attempt of reconnect=1 to fail", lambda: P6.status()["last_error"].startswith(gone))
for i in range(8):
    h.pwrite(bytes([0x61 + i]) * MiB, (8 + i) * MiB)
    st = P6.status()
    if st["role"] != "primary" or st["state"] not in ("broken", "connecting") or \
            st["inflight_bytes"]:
        fail("reconnect=1, the Secondary gone, after %d MiB of guest writes (queue_limit 1M): "
             "%s %s with %d bytes in flight (expected a broken or connecting Primary, none "
             "queued; last_error %r)" % (i + 1, st["role"], st["state"], st["inflight_bytes"],
                                         st["last_error"]))
failed_at = P6.status()["last_error_at"]
wait_for("another attempt to fail", lambda: P6.status()["last_error_at"] != failed_at)
S6 = Vbd("colo:127.0.0.1:%d:%s" % (port, simg))
S6.colo("start", "secondary", "reconnect=1", "queue_limit=1M", *OPTS)
wait_for("the Primary replicating again", lambda: P6.status()["state"] == "running", 120)
P6.colo("checkpoint")
S6.colo("checkpoint")
images_equal("reconnect=1 after the Secondary came back")
print("reconnect=1, the Secondary gone: the Primary kept trying; 8 MiB of guest writes at "
      "local speed meanwhile; exact after it came back")
PYEOF
	echo "tapdisk log ($TEST_DIR/tapdisk.log), last lines:" >&2
	tail -n 30 "$TEST_DIR/tapdisk.log" >&2 || true
	fail "resync after a lost link (seed=$seed)"
fi
echo "PASS: the resync sent exactly the extents written since the common checkpoint (seed=$seed)"
