#!/bin/bash
# No torn views: the Secondary VM's reads racing forwarded writes return checkpoint contents.
#
# Both 4 MiB images start as pattern A (random, identical).  Then:
#  1. ITER times (300): the Primary overwrites a region (mostly 64 KiB at an unaligned sector
#     offset) with a fresh pattern B_i while, on two other connections, many asynchronous
#     reads of the Secondary VM cover that region before, during and after the forward; most
#     iterations then take a checkpoint (the Primary's, during which the reads go on, then the
#     Secondary's), the others let forwards pile up.  Every read must return exactly the last
#     checkpoint's contents: never B_i, never a mix.
#  2. OVERLAP times (60): several overlapping Primary writes in flight together; after a
#     checkpoint the Secondary's image file holds exactly what the Primary's file holds there,
#     which must be the writes applied in some order.
#  3. MEET times (100): Secondary VM writes to parts of blocks racing a forward to the same
#     region: its view is the checkpoint with its writes over it, and after the next checkpoint
#     the Primary's data.
# At the end both image files are equal.  Prints how many reads raced a forward.
# SEED=n replays the random choices (timing still varies).
source "$(dirname "$0")/functions.sh"
requires_python_nbd

log_tapdisks

seed=${SEED:-$(od -An -N4 -tu4 /dev/urandom | tr -d ' ')}
echo "seed=$seed (replay with SEED=$seed)"
pimg=$TEST_DIR/p.img
simg=$TEST_DIR/s.img
make_image "$simg" 4M "$seed"
cp "$simg" "$pimg"
bs=$("$PY" -c 'import random, sys; print(random.Random(int(sys.argv[1])).choice([512, 4096, 16384]))' "$seed")
echo "block_size=$bs"
colo_pair "$pimg" "$simg" block_size="$bs"

if ! "$PY" - "$TAPCTL" "$seed" "$bs" "$pimg" "$simg" "$P_PID" "$P_MINOR" "$P_SOCK" \
	"$S_PID" "$S_MINOR" "$S_SOCK" "${ITER:-300}" "${OVERLAP:-60}" "${MEET:-100}" <<'PYEOF'; then
import itertools, os, random, select, subprocess, sys, time
import nbd

(TAPCTL, SEED, BS, PIMG, SIMG, P_PID, P_MINOR, P_SOCK, S_PID, S_MINOR, S_SOCK, ITER, OVERLAP,
 MEET) = sys.argv[1:15]
SEED, BS, ITER, OVERLAP, MEET = int(SEED), int(BS), int(ITER), int(OVERLAP), int(MEET)
SIZE = 4 << 20
SECTOR = 512
rng = random.Random(SEED * 7 + 1)
where = ["start"]


class TestFailure(Exception):
    pass


def excepthook(kind, value, tb):
    if issubclass(kind, (TestFailure, nbd.Error, subprocess.TimeoutExpired)):
        print("FAIL (seed=%d, block_size=%d): %s" % (SEED, BS, value), file=sys.stderr)
        sys.exit(1)
    sys.__excepthook__(kind, value, tb)


sys.excepthook = excepthook


def fail(msg):
    raise TestFailure("%s: %s" % (where[0], msg))


def colo_args(pid, minor, *a):
    return [TAPCTL, "colo", "-p", pid, "-m", minor, *a]


def checkpoint_async():
    return subprocess.Popen(colo_args(P_PID, P_MINOR, "checkpoint"), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def finish(proc, who, epoch):
    out, err = proc.communicate(timeout=60)
    if proc.returncode:
        fail("%s checkpoint exited %d: %s" % (who, proc.returncode, err.strip()))
    if out.strip() != "epoch=%d" % epoch:
        fail("%s checkpoint printed %r, expected epoch=%d" % (who, out, epoch))


def checkpoint_secondary(epoch):
    p = subprocess.Popen(colo_args(S_PID, S_MINOR, "checkpoint"), stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    finish(p, "the Secondary's", epoch)


def connect(sock):
    h = nbd.NBD()
    h.connect_unix(sock)
    return h


hp, hp2 = connect(P_SOCK), connect(P_SOCK)
hs1, hs2 = connect(S_SOCK), connect(S_SOCK)
HANDLES = [hp, hp2, hs1, hs2]


def pump(timeout=0.002):
    rl, wl, by = [], [], {}
    for h in HANDLES:
        fd, d = h.aio_get_fd(), h.aio_get_direction()
        by[fd] = h
        if d & nbd.AIO_DIRECTION_READ:
            rl.append(fd)
        if d & nbd.AIO_DIRECTION_WRITE:
            wl.append(fd)
    r, w, _ = select.select(rl, wl, [], timeout)
    for fd in r:
        by[fd].aio_notify_read()
    for fd in w:
        by[fd].aio_notify_write()


class Op:
    def __init__(self, h, off, n, data=None):
        self.h, self.off, self.n, self.data = h, off, n, data
        self.t_issue = time.monotonic()
        self.t_done = None
        if data is None:
            self.buf = nbd.Buffer(n)
            self.cookie = h.aio_pread(self.buf, off)
        else:
            self.buf = nbd.Buffer.from_bytearray(bytearray(data))
            self.cookie = h.aio_pwrite(self.buf, off)

    def check(self):
        if self.t_done is None and self.h.aio_command_completed(self.cookie):
            self.t_done = time.monotonic()
        return self.t_done is not None


def drain(ops):
    deadline = time.monotonic() + 60
    while not all(o.check() for o in ops):
        if time.monotonic() > deadline:
            fail("commands did not complete within 60 s")
        pump()


with open(SIMG, "rb") as f:
    ckpt = bytearray(f.read())      # the Secondary VM's view: the last checkpoint
primary = bytearray(ckpt)           # the Primary's disk
epoch = 1


def check_read(op, what):
    got = bytes(op.buf.to_bytearray())
    exp = ckpt[op.off:op.off + op.n]
    if got == exp:
        return
    diff = [i for i in range(op.n) if got[i] != exp[i]]
    new = [i for i in diff if got[i] == primary[op.off + i]]
    fail("%s: a Secondary read of %d bytes at %d returned %d bytes that are not the "
         "checkpoint's (first at %d, block %d of %d), %d of them the Primary's newer data "
         "(not yet checkpointed)" %
         (what, op.n, op.off, len(diff), op.off + diff[0], (op.off + diff[0]) // BS, BS,
          len(new)))


def read_near(off, n):
    """A read of the region, or of part of it, or reaching past its edges."""
    r = rng.random()
    if r < 0.3:
        o, k = off, n
    elif r < 0.7:
        o = off + rng.randrange(0, n // SECTOR) * SECTOR
        k = rng.randint(1, (off + n - o) // SECTOR) * SECTOR
    else:
        o = off + rng.randrange(-16, n // SECTOR) * SECTOR
        k = rng.randint(1, n // SECTOR + 32) * SECTOR
    o = max(0, min(o, SIZE - SECTOR))
    return o, min(k, SIZE - o)


# ---- 1. reads racing forwards ----

# A read "raced" the forward when it was in flight while the forward reached the Secondary's
# disk: between the last poll of the Secondary's file that still showed the old contents and
# the first that showed B_i.
sfd = os.open(SIMG, os.O_RDONLY)
racing = total_reads = landed_seen = 0
pending_forwards = 0
t0 = time.monotonic()
for it in range(ITER):
    where[0] = "race %d" % it
    n = 64 << 10 if rng.random() < 0.75 else rng.randint(1, 512) * SECTOR
    off = rng.randrange(0, SIZE - n + 1, SECTOR)
    if off % BS == 0 and BS > SECTOR:
        off = min(off + SECTOR * rng.randint(1, BS // SECTOR - 1), SIZE - n)
    data = rng.randbytes(n)
    barrier = rng.random() < 0.7
    depth = rng.choice([4, 8, 16, 32])
    reads = [Op(rng.choice((hs1, hs2)), *read_near(off, n)) for _ in range(depth // 2)]
    pw = Op(rng.choice((hp, hp2)), off, n, data)
    t_write = pw.t_issue
    proc = None
    t_end = time.monotonic() + rng.uniform(0.001, 0.01) if not barrier else None
    live = list(reads)
    t_old, t_new = t_write, None
    while True:
        pump(0.0002)
        live = [o for o in live if not o.check()]
        if t_new is None:
            now = time.monotonic()
            on_disk = os.pread(sfd, n, off)
            if on_disk == data:
                t_new = now
            elif on_disk == ckpt[off:off + n]:
                t_old = now
        if pw.check() and barrier and proc is None:
            proc = checkpoint_async()
        done = (proc is not None and proc.poll() is not None) if barrier else \
            (pw.check() and time.monotonic() >= t_end)
        if done:
            break
        while len(live) < depth:
            o = Op(rng.choice((hs1, hs2)), *read_near(off, n))
            reads.append(o)
            live.append(o)
    drain(reads)
    primary[off:off + n] = data
    for o in reads:
        check_read(o, "reads racing a Primary write of %d bytes at %d" % (n, off))
        if t_new is not None and o.t_issue < t_new and o.t_done > t_old and \
                o.off < off + n and off < o.off + o.n:
            racing += 1
    landed_seen += t_new is not None
    total_reads += len(reads)
    if barrier:
        epoch += 1
        finish(proc, "the Primary's", epoch)
        checkpoint_secondary(epoch)
        ckpt[:] = primary
        pending_forwards = 0
    else:
        pending_forwards += 1
# Whatever piled up goes into a final checkpoint.
where[0] = "race: final checkpoint"
epoch += 1
finish(checkpoint_async(), "the Primary's", epoch)
checkpoint_secondary(epoch)
ckpt[:] = primary
for o in range(0, SIZE, 1 << 20):
    got = hs1.pread(1 << 20, o)
    if got != ckpt[o:o + (1 << 20)]:
        fail("after the last checkpoint the Secondary's view at %d.. differs from the Primary" % o)
print("race: %d iterations, %d Secondary reads; in %d iterations the forward was seen "
      "reaching the Secondary's disk while reads went on, and %d reads were in flight at that "
      "moment (racing reads); none saw a torn view (%.1f s)" %
      (ITER, total_reads, landed_seen, racing, time.monotonic() - t0), flush=True)
if racing == 0 and ITER >= 20:
    fail("no read raced a forward: the test did not test anything")


# ---- 2. overlapping Primary writes ----

def read_file(path, off, n):
    with open(path, "rb") as f:
        f.seek(off)
        return f.read(n)


t0 = time.monotonic()
in_order = 0
for it in range(OVERLAP):
    where[0] = "overlap %d" % it
    base = rng.randrange(0, SIZE - (512 << 10), SECTOR)
    ws = []
    for _ in range(rng.randint(2, 6)):
        o = base + rng.randrange(0, 256) * SECTOR
        k = rng.randint(1, 512) * SECTOR
        ws.append((o, rng.randbytes(k)))
    same_conn = rng.random() < 0.7
    ops = [Op(hp if same_conn else rng.choice((hp, hp2)), o, len(d), d) for o, d in ws]
    drain(ops)
    lo, hi = min(o for o, _ in ws), max(o + len(d) for o, d in ws)
    got = hp.pread(hi - lo, lo)
    for k, perm in enumerate(itertools.permutations(ws)):
        exp = bytearray(primary[lo:hi])
        for o, d in perm:
            exp[o - lo:o - lo + len(d)] = d
        if exp == got:
            in_order += k == 0
            break
    else:
        fail("the Primary's disk after overlapping writes %s matches no order of them" %
             [(len(d), o) for o, d in ws])
    primary[lo:hi] = got
    epoch += 1
    finish(checkpoint_async(), "the Primary's", epoch)
    checkpoint_secondary(epoch)
    ckpt[:] = primary
    pf, sf = read_file(PIMG, lo, hi - lo), read_file(SIMG, lo, hi - lo)
    if pf != got:
        fail("the Primary's file at %d..%d differs from what its export reads" % (lo, hi))
    if sf != pf:
        diff = [i for i in range(hi - lo) if sf[i] != pf[i]]
        i = diff[0]
        fail("after overlapping Primary writes %s and a checkpoint the Secondary's file "
             "differs from the Primary's in %d bytes at %d..%d, first at %d (block %d): "
             "the forwards were applied in another order than the Primary's disk took them" %
             ([(len(d), o) for o, d in ws], len(diff), lo, hi, lo + i, (lo + i) // BS))
print("overlap: %d bursts of overlapping Primary writes, the Secondary's file equals the "
      "Primary's after each checkpoint (%d in submission order) (%.1f s)" %
      (OVERLAP, in_order, time.monotonic() - t0), flush=True)


# ---- 3. Secondary VM writes racing forwards to the same blocks ----

t0 = time.monotonic()
view = bytearray(ckpt)
for it in range(MEET):
    where[0] = "meet %d" % it
    n = rng.randint(1, 256) * SECTOR
    off = rng.randrange(0, SIZE - n + 1, SECTOR)
    data = rng.randbytes(n)
    pw = Op(rng.choice((hp, hp2)), off, n, data)
    sws = []
    for _ in range(rng.randint(1, 4)):
        o = max(0, min(SIZE - SECTOR, off + rng.randrange(-4, n // SECTOR + 4) * SECTOR))
        k = min(rng.randint(1, 8) * SECTOR, SIZE - o)
        if any(o < so + len(sd) and so < o + k for so, sd in sws):
            continue
        sws.append((o, rng.randbytes(k)))
    ops = [Op(rng.choice((hs1, hs2)), o, len(d), d) for o, d in sws]
    drain(ops + [pw])
    primary[off:off + n] = data
    for o, d in sws:
        view[o:o + len(d)] = d
    lo = max(0, off - BS)
    hi = min(SIZE, off + n + BS)
    got = hs1.pread(hi - lo, lo)
    if got != view[lo:hi]:
        diff = [i for i in range(hi - lo) if got[i] != view[lo + i]]
        i = lo + diff[0]
        fail("Secondary VM writes %s racing a forward of %d bytes at %d: its view differs in "
             "%d bytes, first at %d (block %d): got %s, expected %s (the checkpoint's %s, "
             "the Primary's %s)" %
             ([(len(d), o) for o, d in sws], n, off, len(diff), i, i // BS,
              got[i - lo:i - lo + 8].hex(), bytes(view[i:i + 8]).hex(),
              bytes(ckpt[i:i + 8]).hex(), bytes(primary[i:i + 8]).hex()))
    if rng.random() < 0.5:
        epoch += 1
        finish(checkpoint_async(), "the Primary's", epoch)
        checkpoint_secondary(epoch)
        ckpt[:] = primary
        view[:] = primary
        got = hs2.pread(hi - lo, lo)
        if got != view[lo:hi]:
            fail("after a checkpoint the Secondary's view at %d..%d is not the Primary's" %
                 (lo, hi))
where[0] = "end"
epoch += 1
finish(checkpoint_async(), "the Primary's", epoch)
checkpoint_secondary(epoch)
ckpt[:] = primary
print("meet: %d Primary writes raced by Secondary VM writes to the same blocks (%.1f s)" %
      (MEET, time.monotonic() - t0), flush=True)

with open(PIMG, "rb") as f:
    pf = f.read()
with open(SIMG, "rb") as f:
    sf = f.read()
if pf != primary:
    fail("the Primary's file differs from the model of its disk")
if sf != pf:
    fail("after the last checkpoint the Secondary's file differs from the Primary's in %d "
         "bytes" % sum(a != b for a, b in zip(sf, pf)))
for h in HANDLES:
    h.shutdown()
PYEOF
	echo "tapdisk log ($TEST_DIR/tapdisk.log), last lines:" >&2
	tail -n 40 "$TEST_DIR/tapdisk.log" >&2 || true
	fail "a Secondary read saw a torn view or the disks diverged (seed=$seed)"
fi
vbd_destroy "$S_PID" "$S_MINOR"
vbd_destroy "$P_PID" "$P_MINOR"
echo "PASS: no torn views, overlapping writes in order (seed=$seed)"
