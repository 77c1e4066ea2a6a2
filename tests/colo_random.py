#!/usr/bin/python3
"""
Randomized, model-based test of colo replication, run by tests/test-colo-random.sh.

A real Primary and a real Secondary tapdisk replicate over TCP on 127.0.0.1; this script
drives them through their NBD exports (python libnbd, synchronous and asynchronous) and
through `tap-ctl colo`, and checks every read against a byte-array model:

  primary  the Primary's disk (what its NBD export reads)
  ckpt     the last checkpoint (the Primary's disk when its last prepare_checkpoint ran)
  view     the Secondary VM's view = ckpt overlaid with the Secondary VM's writes since

Steps: Primary writes and zeroes (512 B .. 256 KiB, sector- but rarely block-aligned, FUA at
times), Secondary VM writes and zeroes, reads of both exports, checkpoints (Primary then
Secondary, or the Secondary's first), checkpoints after or during a burst of asynchronous
Primary writes, concurrent batches on two connections per side, overlapping Primary writes,
a Primary write racing a Secondary VM write to the same region, flushes and status checks.
After every step a random region of the Secondary's view is compared, and every FULL_EVERY
steps all of both disks.

A run is one or more sessions (a fresh pair each).  A session starts with sync=none on
identical files, or with sync=full or diff on a Secondary's file made to differ, with bursts
of Primary writes (WRITE_ZEROES and TRIM among them) in flight during the copy, and then the
first checkpoint: both disks must then equal the model.  A session ends with a failover of the
Secondary (its image file must then equal the model's view, and it keeps serving as a plain
disk) or with a stop (after a Primary checkpoint: the file must equal the Primary's disk at
that checkpoint).  The next session starts from copies of the Secondary's file.

MODE=ft runs without Secondary VM I/O other than reads (Remus, micro-checkpointing: the
Secondary VM does not run); MODE=colo (the default) has the Secondary VM write.  KILL9=always
makes every failover follow a kill -9 of the Primary, KILL9=never none; by default some do.

usage: colo_random.py TAPCTL TEST_DIR SEED
env:   STEPS (3000), FAILOVERS (1), STOPS (1), FULL_EVERY (250), MODE (colo), KILL9 (random);
       BLKTAP_CONTROL_DIR
"""
import collections
import itertools
import json
import os
import random
import re
import signal
import socket
import subprocess
import sys
import time

import nbd

from colo_harness import pump, tls_words  # tests/, the script's own directory

TAPCTL, TEST_DIR, SEED = sys.argv[1], sys.argv[2], int(sys.argv[3])
CTL = os.environ["BLKTAP_CONTROL_DIR"]


def env_int(name, default):
    v = os.environ.get(name, "")
    return int(v) if v else default


STEPS = env_int("STEPS", 3000)
FAILOVERS = env_int("FAILOVERS", 1)
STOPS = env_int("STOPS", 1)
FULL_EVERY = env_int("FULL_EVERY", 250)
MODE = os.environ.get("MODE") or "colo"
KILL9 = os.environ.get("KILL9") or "random"
if MODE not in ("colo", "ft") or KILL9 not in ("always", "never", "random"):
    raise SystemExit("MODE is colo or ft, KILL9 always, never or random")
SVM = MODE == "colo"  # the Secondary VM writes
SIZE = 8 << 20
EXTENT = 1 << 20  # the start's sync copies by extents of 1 MiB
SECTOR = 512
MAX_IO = 256 << 10
# Larger than every piece size inside: the export's 1 MiB WRITE_ZEROES pieces, the
# write-back's 1 MiB runs, a 1 MiB block.
BIG_IO = 3 << 20
ZERO_PIECE = 1 << 20

rng = random.Random(SEED)
BS = rng.choice([512 << i for i in range(12)])  # every block size, 512 B to 1 MiB
history = collections.deque(maxlen=40)  # the last operations, printed on failure
step_no = -1


class TestFailure(Exception):
    pass


def fail(msg):
    raise TestFailure("step %d: %s" % (step_no, msg))


def note(msg):
    history.append("step %d: %s" % (step_no, msg))


# ---- tap-ctl ----

def tapctl(*args, check=True):
    p = subprocess.run([TAPCTL, *map(str, args)], capture_output=True, text=True, timeout=120)
    if check and p.returncode:
        fail("tap-ctl %s exited %d: %s" % (" ".join(map(str, args)), p.returncode,
                                            p.stderr.strip()))
    return p


class Vbd:
    def __init__(self, spec):
        out = tapctl("create", "-a", spec).stdout.strip()
        self.minor = int(out.rsplit("-", 1)[1])
        line = tapctl("list", "-m", self.minor).stdout
        m = re.search(r"pid=(\d+)", line)
        if not m:
            fail("no pid for minor %d in %r" % (self.minor, line))
        self.pid = int(m.group(1))
        self.sock = "%s/nbd%d.%d" % (CTL, self.pid, self.minor)
        self.spec = spec

    def colo_args(self, *args):
        return [TAPCTL, "colo", "-p", str(self.pid), "-m", str(self.minor), *args,
                *tls_words(args)]

    def colo(self, *args, check=True):
        p = subprocess.run(self.colo_args(*args), capture_output=True, text=True, timeout=120)
        if check and p.returncode:
            fail("tap-ctl colo %s on pid %d exited %d: %s" % (" ".join(args), self.pid,
                                                             p.returncode, p.stderr.strip()))
        return p

    def colo_async(self, *args):
        return subprocess.Popen(self.colo_args(*args), stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)

    def status(self):
        return json.loads(self.colo("status").stdout)

    def destroy(self):
        tapctl("destroy", "-p", self.pid, "-m", self.minor)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def connect(sock):
    h = nbd.NBD()
    h.connect_unix(sock)
    if h.get_size() != SIZE:
        fail("%s: export size %d, expected %d" % (sock, h.get_size(), SIZE))
    return h


def parse_epoch(out, who):
    m = re.fullmatch(r"epoch=(\d+)\n?", out)
    if not m:
        fail("%s checkpoint printed %r, expected epoch=N" % (who, out))
    return int(m.group(1))


# ---- asynchronous I/O on several handles ----

class Op:
    """One asynchronous command: kind is 'pw' (Primary write), 'pr', 'sw', 'sr'."""

    def __init__(self, h, kind, off, n, data=None, how="write"):
        """@how is 'write', 'zero' (WRITE_ZEROES: @data is zeros) or 'trim' (no data)."""
        self.h, self.kind, self.off, self.n, self.data = h, kind, off, n, data
        self.how = how
        self.done = False
        if how == "zero":
            self.cookie = h.aio_zero(n, off)
        elif how == "trim":
            self.cookie = h.aio_trim(n, off)
        elif data is not None:
            self.buf = nbd.Buffer.from_bytearray(bytearray(data))
            self.cookie = h.aio_pwrite(self.buf, off)
        else:
            self.buf = nbd.Buffer(n)
            self.cookie = h.aio_pread(self.buf, off)

    def check(self):
        if not self.done and self.h.aio_command_completed(self.cookie):
            self.done = True
        return self.done

    def result(self):
        return bytes(self.buf.to_bytearray())


def wait_ops(ops, handles, until=None):
    """Pumps until every op in @ops completed (or @until() is true)."""
    deadline = time.monotonic() + 60
    while True:
        if all(op.check() for op in ops) or (until and until()):
            return
        if time.monotonic() > deadline:
            fail("asynchronous commands did not complete within 60 s: %s" %
                 [(o.kind, o.off, o.n) for o in ops if not o.done])
        pump(handles)


# ---- extents ----

def blocks_of(off, n):
    return set(range(off // BS, (off + n - 1) // BS + 1))


def overlaps(a, b):
    return a[0] < b[0] + b[1] and b[0] < a[0] + a[1]


class Extents:
    def __init__(self):
        self.hot = rng.randrange(0, SIZE - (1 << 20) + 1, SECTOR)

    def pick(self, max_n=MAX_IO, big=0.0):
        r = rng.random()
        if rng.random() < big:
            k = rng.randint(ZERO_PIECE // SECTOR + 1, BIG_IO // SECTOR)
            max_n = BIG_IO
        elif r < 0.3:
            k = rng.randint(1, 8)
        elif r < 0.7:
            k = rng.randint(9, 64)
        elif r < 0.9:
            k = rng.randint(65, 256)
        else:
            k = rng.randint(257, 512)
        n = min(k * SECTOR, max_n)
        r = rng.random()
        if r < 0.5:  # a 1 MiB hot window: Primary and Secondary writes meet there
            lo, hi = self.hot, min(self.hot + (1 << 20), SIZE) - n
            off = rng.randrange(lo, max(lo, hi) + 1, SECTOR)
        elif r < 0.65:  # around a block boundary
            b = rng.randrange(1, SIZE // BS)
            off = b * BS + rng.choice([-3, -1, 0, 1, 2]) * SECTOR - rng.choice([0, n // 2])
            off = off // SECTOR * SECTOR
        else:
            off = rng.randrange(0, SIZE - n + 1, SECTOR)
        off = max(0, min(off, SIZE - n))
        return off, n

    def disjoint(self, count, taken=(), big=0.0):
        picked = []
        for _ in range(count * 3):
            e = self.pick(big=big)
            if not any(overlaps(e, t) for t in list(taken) + picked):
                picked.append(e)
            if len(picked) == count:
                break
        return picked


# ---- the model ----

class Model:
    def __init__(self, data):
        self.primary = bytearray(data)
        self.ckpt = bytearray(data)
        self.view = bytearray(data)
        self.svm_blocks = set()  # blocks the Secondary VM wrote since the last checkpoint
        self.p_blocks = set()    # blocks the Primary wrote in the current epoch
        self.sent = 0            # bytes the Primary wrote in the current epoch
        self.epoch = 1

    def pwrite(self, off, data):
        self.primary[off:off + len(data)] = data
        self.p_blocks |= blocks_of(off, len(data))
        self.sent += len(data)

    def swrite(self, off, data):
        self.view[off:off + len(data)] = data
        self.svm_blocks |= blocks_of(off, len(data))

    def checkpoint(self, ckpt):
        self.ckpt = bytearray(ckpt)
        self.view = bytearray(ckpt)
        self.svm_blocks = set()
        self.epoch += 1


def describe(got, m, off, what):
    """A mismatch of @got against the model at @off, with what the bytes look like."""
    exp = m.view if what == "Secondary" else m.primary
    n = len(got)
    diffs = [i for i in range(n) if got[i] != exp[off + i]]
    i, j = diffs[0], diffs[-1]
    # Which model state does the wrong span look like?
    span = slice(i, j + 1)
    src = slice(off + i, off + j + 1)
    looks = []
    for name, arr in (("the Primary's disk", m.primary), ("the last checkpoint", m.ckpt),
                      ("the Secondary VM's view", m.view)):
        if bytes(got[span]) == bytes(arr[src]):
            looks.append(name)
    return ("%s read of %d bytes at %d differs from the model in %d bytes, first at %d "
            "(block %d of %d bytes), last at %d; got %s, expected %s; the wrong span %s" %
            (what, n, off, len(diffs), off + i, (off + i) // BS, BS, off + j,
             bytes(got[i:i + 8]).hex(), bytes(exp[off + i:off + i + 8]).hex(),
             "equals " + " and ".join(looks) if looks else "matches no model state"))


# ---- one session: a pair, steps, and an end event ----

class Session:
    def __init__(self, no, pimg, simg, model, ext):
        self.no, self.m, self.ext = no, model, ext
        self.pimg, self.simg = pimg, simg
        self.opts = ["block_size=%d" % BS]
        if rng.random() < 0.3:
            self.opts.append("queue_limit=1M")
        if rng.random() < 0.3:
            self.opts += ["ram_limit=1M", "spill=%s/spill-%d" % (TEST_DIR, no)]
        # The start's sync: none on identical copies (with verify=1, or so), else full or
        # diff on a Secondary's file made to differ, with Primary writes in flight.
        sync = "none" if rng.random() < 0.2 else rng.choice(["none", "full", "diff"])
        if sync == "none" and rng.random() < 0.3:
            self.opts.append("verify=1")
        if sync != "none":
            self.spoil(simg)
        port = free_port()
        self.S = Vbd("colo:127.0.0.1:%d:%s" % (port, simg))
        self.P = Vbd("colo:127.0.0.1:%d:%s" % (port, pimg))
        self.S.colo("start", "secondary", *self.opts)
        popts = [o for o in self.opts if not o.startswith(("ram_limit=", "spill="))]
        popts.append("sync=" + sync)
        if sync != "none" and rng.random() < 0.5:
            popts.append("sync_rate=%dM" % rng.choice([4, 16]))
        # A paced backlog (colo-pace.c): 1 ms keeps the bound at its 1M floor.
        if rng.random() < 0.3:
            popts.append("pause_target=%d" % rng.choice([1, 5, 50]))
        self.hp = [connect(self.P.sock), connect(self.P.sock)]
        self.hs = [connect(self.S.sock), connect(self.S.sock)]
        self.all = self.hp + self.hs
        self.primary_killed = False
        note("session %d: Primary pid %d, Secondary pid %d, options %s" %
             (no, self.P.pid, self.S.pid, " ".join(popts)))
        print("session %d: options %s" % (no, " ".join(popts)), flush=True)
        if sync == "none":
            self.P.colo("start", "primary", *popts)
        else:
            self.start_with_sync(popts, sync)

    def spoil(self, simg):
        """Makes the Secondary's file differ from the Primary's: random bytes in some
        extents (a sector in some, whole extents in others)."""
        with open(simg, "r+b") as f:
            for e in rng.sample(range(SIZE // EXTENT), max(1, SIZE // EXTENT // 3)):
                n = rng.choice([512, EXTENT])
                f.seek(e * EXTENT + (rng.randrange(0, EXTENT // 512) * 512 if n == 512 else 0))
                f.write(rng.randbytes(n))

    def start_with_sync(self, popts, sync):
        """start primary with a sync while bursts of Primary writes are in flight, aimed at
        the whole disk (so at the extents being copied); then the first checkpoint, which
        makes the Secondary's disk the model's checkpoint."""
        proc = self.P.colo_async("start", "primary", *popts)
        bursts = 0
        while proc.poll() is None or bursts == 0:
            pw = self.issue_pwrites(rng.randint(2, 12), mixed=True)
            wait_ops(pw, self.hp)
            for op in pw:
                if op.how != "trim":  # advisory: changes nothing
                    self.m.pwrite(op.off, op.data)
            bursts += 1
        out, err = proc.communicate(timeout=120)
        if proc.returncode:
            fail("start primary %s exited %d: %s" % (" ".join(popts), proc.returncode,
                                                      err.strip()))
        st = self.P.status()
        if st["state"] != "running" or st["sync_done_bytes"] != SIZE or \
                st["sync_total_bytes"] != SIZE:
            fail("after the start's sync the Primary's status is %s" % st)
        note("sync: %d bursts of Primary writes during the copy; %d bytes sent" %
             (bursts, st["sync_sent_bytes"]))
        print("session %d: sync=%s, %d bursts of writes during it, %d of %d bytes sent" %
              (self.no, sync, bursts, st["sync_sent_bytes"], SIZE), flush=True)
        # The first checkpoint: the Secondary becomes the Primary's disk at the marker.
        self.checkpoint_primary()
        self.checkpoint_secondary()
        self.m.checkpoint(self.m.primary)
        self.m.p_blocks, self.m.sent = set(), 0
        self.check_all()

    # -- checks --

    def check_view(self, off, n, h=None):
        got = (h or rng.choice(self.hs)).pread(n, off)
        if got != self.m.view[off:off + n]:
            fail(describe(got, self.m, off, "Secondary"))

    def check_primary(self, off, n, h=None):
        got = (h or rng.choice(self.hp)).pread(n, off)
        if got != self.m.primary[off:off + n]:
            fail(describe(got, self.m, off, "Primary"))

    def check_all(self):
        for off in range(0, SIZE, 1 << 20):
            self.check_view(off, 1 << 20)
            self.check_primary(off, 1 << 20)

    def check_op(self, op):
        exp = self.m.view if op.kind == "sr" else self.m.primary
        got = op.result()
        if got != exp[op.off:op.off + op.n]:
            fail("concurrent " + describe(got, self.m, op.off,
                                          "Secondary" if op.kind == "sr" else "Primary"))

    def check_status(self):
        ps, ss = self.P.status(), self.S.status()
        for st, role in ((ps, "primary"), (ss, "secondary")):
            if (st["role"], st["state"], st["link"]) != (role, "running", "up"):
                fail("%s status is not running with the link up: %s" % (role, st))
            if st["epoch"] != self.m.epoch or st["block_size"] != BS:
                fail("%s status: epoch %d block_size %d, expected %d and %d: %s" %
                     (role, st["epoch"], st["block_size"], self.m.epoch, BS, st))
        if ps["sent_bytes"] != self.m.sent:
            fail("Primary sent_bytes %d, but %d bytes were written since the last checkpoint"
                 % (ps["sent_bytes"], self.m.sent))
        if ss["buffer_blocks"] < len(self.m.svm_blocks):
            fail("Secondary buffer holds %d blocks, fewer than the %d the Secondary VM wrote"
                 % (ss["buffer_blocks"], len(self.m.svm_blocks)))
        if ss["buffer_bytes"] != ss["buffer_blocks"] * BS:
            fail("Secondary buffer_bytes %d != buffer_blocks %d * %d" %
                 (ss["buffer_bytes"], ss["buffer_blocks"], BS))

    # -- steps --

    def op_pwrite(self):
        off, n = self.ext.pick()
        if rng.random() < 0.1:
            rng.choice(self.hp).zero(n, off)
            data = bytes(n)
            note("Primary zero %d@%d" % (n, off))
        else:
            data = rng.randbytes(n)
            fua = rng.random() < 0.1
            rng.choice(self.hp).pwrite(data, off, nbd.CMD_FLAG_FUA if fua else 0)
            note("Primary write %d@%d%s" % (n, off, " fua" if fua else ""))
        self.m.pwrite(off, data)

    def op_swrite(self):
        off, n = self.ext.pick()
        if rng.random() < 0.1:
            rng.choice(self.hs).zero(n, off)
            data = bytes(n)
            note("Secondary VM zero %d@%d" % (n, off))
        else:
            data = rng.randbytes(n)
            rng.choice(self.hs).pwrite(data, off)
            note("Secondary VM write %d@%d" % (n, off))
        self.m.swrite(off, data)

    def op_sread(self):
        off, n = self.ext.pick()
        note("Secondary read %d@%d" % (n, off))
        self.check_view(off, n)

    def op_pread(self):
        off, n = self.ext.pick()
        note("Primary read %d@%d" % (n, off))
        self.check_primary(off, n)

    def op_flush(self):
        h = rng.choice(self.all)
        note("flush on %s" % ("the Primary" if h in self.hp else "the Secondary"))
        h.flush()

    def op_status(self):
        note("status")
        self.check_status()

    def checkpoint_primary(self):
        ep = parse_epoch(self.P.colo("checkpoint").stdout, "the Primary's")
        if ep != self.m.epoch + 1:
            fail("the Primary's checkpoint returned epoch %d, expected %d" % (ep, self.m.epoch + 1))

    def checkpoint_secondary(self):
        ep = parse_epoch(self.S.colo("checkpoint").stdout, "the Secondary's")
        if ep != self.m.epoch + 1:
            fail("the Secondary's checkpoint returned epoch %d, expected %d" %
                 (ep, self.m.epoch + 1))

    def op_checkpoint(self):
        """Primary then Secondary, with exact buffer accounting in between; or the
        Secondary's first (it waits for the marker)."""
        m = self.m
        if rng.random() < 0.25:
            note("checkpoint, the Secondary's called first")
            proc = self.S.colo_async("checkpoint")
            time.sleep(rng.choice([0, 0.001, 0.005]))
            self.checkpoint_primary()
            out, err = proc.communicate(timeout=60)
            if proc.returncode:
                fail("the Secondary's checkpoint (called first) exited %d: %s" %
                     (proc.returncode, err.strip()))
            ep = parse_epoch(out, "the Secondary's")
            if ep != m.epoch + 1:
                fail("the Secondary's checkpoint returned epoch %d, expected %d" %
                     (ep, m.epoch + 1))
            m.checkpoint(m.primary)
            m.p_blocks, m.sent = set(), 0
            return
        note("checkpoint")
        self.checkpoint_primary()
        ps, ss = self.P.status(), self.S.status()
        want = len(m.svm_blocks | m.p_blocks)
        if ss["buffer_blocks"] != want:
            fail("after the Primary's checkpoint the Secondary's buffer holds %d blocks; "
                 "expected %d (the Secondary VM wrote %d blocks, the Primary %d, %d in both)"
                 % (ss["buffer_blocks"], want, len(m.svm_blocks), len(m.p_blocks),
                    len(m.svm_blocks & m.p_blocks)))
        if ps["sent_bytes"] != 0 or ps["inflight_bytes"] != 0:
            fail("after its checkpoint the Primary reports sent_bytes %d inflight_bytes %d, "
                 "expected 0 and 0" % (ps["sent_bytes"], ps["inflight_bytes"]))
        marker = bytes(m.primary)
        p_blocks, sent = set(), 0
        # Sometimes write between the two: the Primary's writes wait for the Secondary's
        # checkpoint, the Secondary VM's are dropped by it.
        for _ in range(rng.choice([0, 0, 0, 1, 3])):
            if rng.random() < 0.5:
                off, n = self.ext.pick()
                data = rng.randbytes(n)
                rng.choice(self.hp).pwrite(data, off)
                m.primary[off:off + n] = data
                p_blocks |= blocks_of(off, n)
                sent += n
                note("  Primary write %d@%d between the checkpoints" % (n, off))
            else:
                self.op_swrite()
            off, n = self.ext.pick()
            self.check_view(off, n)
        self.checkpoint_secondary()
        m.checkpoint(marker)
        m.p_blocks, m.sent = p_blocks, sent
        if not p_blocks:
            ss = self.S.status()
            if ss["buffer_blocks"] != 0:
                fail("after the Secondary's checkpoint its buffer holds %d blocks, expected 0"
                     % ss["buffer_blocks"])

    def issue_pwrites(self, count, mixed=False):
        """@count disjoint Primary writes; @mixed: some larger than every internal piece
        size, and WRITE_ZEROES and TRIM among them."""
        ops = []
        for off, n in self.ext.disjoint(count, big=0.25 if mixed else 0.0):
            how = rng.choices(["write", "zero", "trim"], [6, 2, 1])[0] if mixed else "write"
            data = bytes(n) if how == "zero" else None if how == "trim" else rng.randbytes(n)
            ops.append(Op(rng.choice(self.hp), "pw", off, n, data, how))
        return ops

    def issue_swrites(self, count):
        """@count disjoint Secondary VM writes of every shape: inside a block at an unaligned
        offset (a fill read each), whole blocks, across blocks, larger than 1 MiB, zeroes."""
        ops = []
        if not SVM:
            return ops
        for off, n in self.ext.disjoint(count, big=0.2):
            if rng.random() < 0.3 and BS > 512:
                b = rng.randrange(SIZE // BS)
                n = min(n, BS // 2, 4096)
                off = b * BS + rng.randrange(1, (BS - n) // SECTOR + 1) * SECTOR - SECTOR
            # The moved ones may meet any other: writes in flight together stay disjoint.
            if any(overlaps((off, n), (o.off, o.n)) for o in ops):
                continue
            zero = rng.random() < 0.15
            ops.append(Op(rng.choice(self.hs), "sw", off, n, bytes(n) if zero else
                          rng.randbytes(n), "zero" if zero else "write"))
        return ops

    @staticmethod
    def pieces(op):
        """The parts of a request in flight at a checkpoint that each go into it whole or not
        at all (docs/colo.md): a WRITE whole, a WRITE_ZEROES in 1 MiB pieces from its
        offset."""
        step = ZERO_PIECE if op.how == "zero" else op.n
        return [(op.off + i, min(step, op.n - i)) for i in range(0, op.n, step)]

    def issue_sreads(self, count, near=()):
        ops = []
        for _ in range(count):
            if near and rng.random() < 0.7:
                o = rng.choice(near)
                off = max(0, min(SIZE - SECTOR, o.off + rng.randrange(-8, 8) * SECTOR))
                n = min(SIZE - off, rng.randint(1, (o.n + 8 * SECTOR) // SECTOR) * SECTOR)
            else:
                off, n = self.ext.pick()
            ops.append(Op(rng.choice(self.hs), "sr", off, n))
        return ops

    def op_ckpt_after_burst(self):
        """Primary writes in flight while the Secondary is read; the checkpoint once they
        completed."""
        pw = self.issue_pwrites(rng.randint(2, 12))
        sr = self.issue_sreads(rng.randint(2, 10), pw)
        note("burst of %d Primary writes %s, %d Secondary reads, then checkpoint" %
             (len(pw), [(o.n, o.off) for o in pw], len(sr)))
        wait_ops(sr, self.all)
        for op in sr:
            self.check_op(op)
        wait_ops(pw, self.all)
        for op in pw:
            self.m.pwrite(op.off, op.data)
        self.op_checkpoint()

    def op_ckpt_racing(self):
        """The Primary's checkpoint called while Primary writes are in flight: the writes
        completed before the call must be in the checkpoint; each of the others is in it
        entirely or not at all."""
        m = self.m
        before = bytes(m.primary)
        pw = self.issue_pwrites(rng.randint(2, 12), mixed=True)
        for _ in range(rng.choice([0, 1, 2, 5, 20])):
            pump(self.all, 0.0005)
        done_before = [op for op in pw if op.check()]
        note("checkpoint racing %d Primary writes %s, %d completed before the call" %
             (len(pw), [(o.n, o.off) for o in pw], len(done_before)))
        proc = self.P.colo_async("checkpoint")
        sr = self.issue_sreads(rng.randint(1, 6), pw)
        wait_ops(pw + sr, self.all, until=lambda: proc.poll() is not None and
                 all(o.check() for o in sr))
        out, err = proc.communicate(timeout=60)
        if proc.returncode:
            fail("the Primary's checkpoint racing writes exited %d: %s" % (proc.returncode,
                                                                        err.strip()))
        ep = parse_epoch(out, "the Primary's")
        if ep != m.epoch + 1:
            fail("the Primary's checkpoint returned epoch %d, expected %d" % (ep, m.epoch + 1))
        for op in sr:
            self.check_op(op)
        self.checkpoint_secondary()
        wait_ops(pw, self.all)
        ckpt = bytearray(before)
        included, excluded, unknown = [], [], False
        for op in pw:
            if op.how == "trim":  # advisory: changes nothing on either side
                got = rng.choice(self.hs).pread(op.n, op.off)
                if got != before[op.off:op.off + op.n]:
                    fail("a TRIM of %d bytes at %d in flight at the checkpoint changed the "
                         "Secondary's view" % (op.n, op.off))
                continue
            for off, n in self.pieces(op):
                got = rng.choice(self.hs).pread(n, off)
                old = before[off:off + n]
                new = op.data[off - op.off:off - op.off + n]
                what = "%s of %d bytes at %d (its piece of %d bytes at %d)" % (
                    "WRITE_ZEROES" if op.how == "zero" else "write", op.n, op.off, n, off)
                if got == new and new == old and op not in done_before:
                    unknown = True  # in the checkpoint or after it: the bytes cannot tell
                    ckpt[off:off + n] = new
                elif got == new:
                    included.append((off, n))
                    ckpt[off:off + n] = new
                elif op in done_before:
                    fail("a Primary %s completed before the checkpoint was called, but the "
                         "Secondary's view after the checkpoint lacks it (%s)" %
                         (what, "it holds the old contents" if got == old
                          else "it holds neither old nor new contents"))
                elif got == old:
                    excluded.append((off, n))
                else:
                    diff = [i for i in range(n) if got[i] != new[i]]
                    fail("torn checkpoint: the Secondary's view of a Primary %s, in flight at "
                         "the checkpoint, is neither the old nor the new contents (first "
                         "difference from the new at %d, %d bytes differ)" %
                         (what, off + diff[0], len(diff)))
        note("  %d pieces of the requests in flight went into the checkpoint, %d after" %
             (len(included), len(excluded)))
        for op in pw:
            if op.how != "trim":
                m.primary[op.off:op.off + op.n] = op.data
        m.checkpoint(ckpt)
        m.p_blocks = set().union(*[blocks_of(o, n) for o, n in excluded])
        m.sent = sum(n for _, n in excluded)
        self.stats["racing pieces in the checkpoint"] += len(included)
        self.stats["racing pieces after it"] += len(excluded)
        if unknown:
            # What the Primary has sent since is known again after an empty epoch.
            self.checkpoint_primary()
            self.checkpoint_secondary()
            m.checkpoint(m.primary)
            m.p_blocks, m.sent = set(), 0

    def op_batch(self):
        """Concurrent Primary writes and reads, Secondary VM writes and reads, on two
        connections per side: Primary writes disjoint from each other and from Primary
        reads, Secondary VM writes disjoint from each other and from Secondary reads."""
        pw = self.ext.disjoint(rng.randint(0, 8))
        sw = self.ext.disjoint(rng.randint(0, 4) if SVM else 0)
        pr = self.ext.disjoint(rng.randint(0, 4), pw)
        sr = self.ext.disjoint(rng.randint(1, 8), sw)
        kinds = [("pw", e) for e in pw] + [("sw", e) for e in sw] + \
                [("pr", e) for e in pr] + [("sr", e) for e in sr]
        rng.shuffle(kinds)
        note("batch: %s" % kinds)
        ops = []
        for kind, (off, n) in kinds:
            h = rng.choice(self.hp if kind[0] == "p" else self.hs)
            ops.append(Op(h, kind, off, n, rng.randbytes(n) if kind[1] == "w" else None))
        wait_ops(ops, self.all)
        for op in ops:
            if op.kind in ("pr", "sr"):
                self.check_op(op)
        for op in ops:
            if op.kind == "pw":
                self.m.pwrite(op.off, op.data)
            elif op.kind == "sw":
                self.m.swrite(op.off, op.data)

    def op_poverlap(self):
        """Overlapping Primary writes in flight together: the Primary's disk takes them in
        some order (the driver serialises overlapping writes); the model follows the disk."""
        off, n = self.ext.pick()
        ws = []
        for _ in range(rng.randint(2, 4)):
            o = max(0, min(SIZE - SECTOR, off + rng.randrange(-16, 16) * SECTOR))
            k = min(SIZE - o, rng.randint(1, 2 * n // SECTOR + 1) * SECTOR, MAX_IO)
            ws.append((o, rng.randbytes(k)))
        note("overlapping Primary writes %s" % [(len(d), o) for o, d in ws])
        ops = [Op(rng.choice(self.hp), "pw", o, len(d), d) for o, d in ws]
        wait_ops(ops, self.all)
        lo = min(o for o, _ in ws)
        hi = max(o + len(d) for o, d in ws)
        got = self.hp[0].pread(hi - lo, lo)
        for perm in itertools.permutations(ws):
            exp = bytearray(self.m.primary[lo:hi])
            for o, d in perm:
                exp[o - lo:o - lo + len(d)] = d
            if exp == got:
                break
        else:
            fail("after overlapping writes %s the Primary's disk at %d..%d matches no order "
                 "of them" % ([(len(d), o) for o, d in ws], lo, hi))
        self.m.primary[lo:hi] = got
        for o, d in ws:
            self.m.p_blocks |= blocks_of(o, len(d))
            self.m.sent += len(d)
        self.check_view(lo, hi - lo)

    def op_meet(self):
        """A Primary write and a Secondary VM write to the same region, racing: the
        Secondary VM's bytes win in its view, the rest stays the checkpoint's."""
        off, n = self.ext.pick()
        pw = Op(rng.choice(self.hp), "pw", off, n, rng.randbytes(n))
        pump(self.all, 0)
        so = max(0, min(SIZE - SECTOR, off + rng.randrange(-4, n // SECTOR + 4) * SECTOR))
        sn = min(SIZE - so, rng.randint(1, 16) * SECTOR)
        sdata = rng.randbytes(sn)
        note("Primary write %d@%d racing Secondary VM write %d@%d" % (n, off, sn, so))
        sw = Op(rng.choice(self.hs), "sw", so, sn, sdata)
        wait_ops([sw], self.all)
        self.m.swrite(so, sdata)
        lo, hi = min(off, so), max(off + n, so + sn)
        self.check_view(lo, hi - lo)
        wait_ops([pw], self.all)
        self.m.pwrite(off, pw.data)
        self.check_view(lo, hi - lo)

    def block_pieces(self, op):
        """A Secondary VM write cut at block boundaries (each piece reaches the buffer on its
        own), and a WRITE_ZEROES also at its 1 MiB pieces from its offset (each a request of
        its own): one in flight at a checkpoint may be split there."""
        out, off = [], op.off
        while off < op.off + op.n:
            end = min(op.off + op.n, (off // BS + 1) * BS)
            if op.how == "zero":
                end = min(end, op.off + ((off - op.off) // ZERO_PIECE + 1) * ZERO_PIECE)
            out.append((off, end - off))
            off = end
        return out

    def op_svm_ckpt_racing(self):
        """Secondary VM writes of every shape in flight at the Secondary's checkpoint: after
        it, each block piece of each write is in the new epoch's view or not, and all else
        is the new checkpoint (never what a fill read saw before the drop)."""
        m = self.m
        self.checkpoint_primary()
        marker = bytes(m.primary)
        sw = self.issue_swrites(rng.randint(1, 10))
        for _ in range(rng.choice([0, 0, 1, 3])):
            pump(self.all, 0.0005)
        note("the Secondary's checkpoint racing %d Secondary VM writes %s" %
             (len(sw), [(o.how, o.n, o.off) for o in sw]))
        proc = self.S.colo_async("checkpoint")
        wait_ops(sw, self.all)
        out, err = proc.communicate(timeout=60)
        if proc.returncode:
            fail("the Secondary's checkpoint racing Secondary VM writes exited %d: %s" %
                 (proc.returncode, err.strip()))
        ep = parse_epoch(out, "the Secondary's")
        if ep != m.epoch + 1:
            fail("the Secondary's checkpoint returned epoch %d, expected %d" % (ep, m.epoch + 1))
        m.checkpoint(marker)
        m.p_blocks, m.sent = set(), 0
        kept, unknown = 0, False
        for op in sw:
            for off, n in self.block_pieces(op):
                got = rng.choice(self.hs).pread(n, off)
                new = op.data[off - op.off:off - op.off + n]
                if got == new and new == marker[off:off + n]:
                    unknown = True  # in the buffer or not: the bytes cannot tell
                elif got == new:
                    m.swrite(off, new)
                    kept += 1
                elif got != marker[off:off + n]:
                    fail("after the Secondary's checkpoint, the piece of %d bytes at %d of a "
                         "Secondary VM %s of %d bytes at %d in flight is neither the new "
                         "checkpoint nor the write" % (n, off, op.how, op.n, op.off))
        for op in sw:  # the rest of every block touched is the new checkpoint
            lo = op.off // BS * BS
            self.check_view(lo, min(SIZE, -(-(op.off + op.n) // BS) * BS) - lo)
        self.stats["Secondary VM pieces kept by a racing checkpoint"] += kept
        if unknown:
            # What the buffer holds is known again after an empty epoch.
            self.checkpoint_primary()
            self.checkpoint_secondary()
            m.checkpoint(m.primary)

    OPS = [("pwrite", 22), ("swrite", 12), ("sread", 16), ("pread", 6), ("checkpoint", 4),
           ("ckpt_after_burst", 3), ("ckpt_racing", 3), ("svm_ckpt_racing", 3), ("batch", 8),
           ("poverlap", 3), ("meet", 4), ("flush", 2), ("status", 2)]

    SVM_OPS = ("swrite", "svm_ckpt_racing", "meet")

    def run(self, first, last, stats):
        self.stats = stats
        ops = [(o, w) for o, w in self.OPS if SVM or o not in self.SVM_OPS]
        names = [o for o, _ in ops]
        weights = [w for _, w in ops]
        global step_no
        for step_no in range(first, last):
            op = rng.choices(names, weights)[0]
            stats[op] += 1
            getattr(self, "op_" + op)()
            off, n = self.ext.pick()
            self.check_view(off, n)
            if step_no % FULL_EVERY == FULL_EVERY - 1:
                self.check_all()

    # -- end events --

    def wait_primary_broken(self):
        deadline = time.monotonic() + 10
        while True:
            st = self.P.status()
            # The Secondary's failover or stop says GOODBYE: the link is closed, not lost.
            if st["state"] == "broken" and st["link"] == "closed":
                return
            if time.monotonic() > deadline:
                fail("the Primary did not notice the end of replication within 10 s: %s" % st)
            time.sleep(0.05)

    def wait_pending(self, vbd, what, proc):
        """Waits until @vbd's status lists @what as accepted and not done (its tap-ctl @proc
        has not returned: the command waits for something that has not happened yet)."""
        deadline = time.monotonic() + 60
        while True:
            st = vbd.status()
            if what in st["pending"].split():
                return
            if proc.poll() is not None:
                out, err = proc.communicate()
                fail("%s returned before it was seen pending: exit %d %s %s; status %s" %
                     (what, proc.returncode, out.strip(), err.strip(), st))
            if time.monotonic() > deadline:
                fail("%s was not accepted within 60 s: status %s" % (what, st))
            time.sleep(0.01)

    def read_file(self, path):
        with open(path, "rb") as f:
            return f.read()

    def plain_disk(self, expected):
        """The Secondary serves a plain disk now: writes and reads, then its file."""
        for _ in range(20):
            off, n = self.ext.pick()
            if rng.random() < 0.5:
                data = rng.randbytes(n)
                rng.choice(self.hs).pwrite(data, off)
                expected[off:off + n] = data
            got = rng.choice(self.hs).pread(n, off)
            if got != expected[off:off + n]:
                fail("after the end of replication the Secondary's export read %d@%d "
                     "differs from what was written" % (n, off))
        self.hs[0].flush()
        if self.read_file(self.simg) != expected:
            fail("after the end of replication and plain writes the Secondary's file "
                 "differs from its writes")
        if self.primary_killed:
            return
        # The Primary still serves too.
        off, n = self.ext.pick()
        data = rng.randbytes(n)
        self.hp[0].pwrite(data, off)
        self.m.primary[off:off + n] = data
        self.check_primary(off, n)

    def compare_file(self, expected, what):
        got = self.read_file(self.simg)
        if got != expected:
            diffs = [i for i in range(SIZE) if got[i] != expected[i]]
            i = diffs[0]
            blocks = sorted({d // BS for d in diffs})
            fail("%s: the Secondary's image file differs from the model in %d bytes, "
                 "%d blocks (first %s), first at byte %d; there it holds %s, the "
                 "Primary's disk has %s, the checkpoint %s, the Secondary VM's view %s" %
                 (what, len(diffs), len(blocks), blocks[:8], i, got[i:i + 8].hex(),
                  bytes(self.m.primary[i:i + 8]).hex(), bytes(self.m.ckpt[i:i + 8]).hex(),
                  bytes(self.m.view[i:i + 8]).hex()))

    def end_failover(self):
        m = self.m
        # Primary writes since the checkpoint must not reach the file.
        for _ in range(rng.randint(0, 5)):
            self.op_pwrite()
        v = 1.0 if KILL9 == "always" else rng.random()
        if v < 0.3:
            # A failover asked for while the Secondary's checkpoint waits for its marker
            # runs after that checkpoint.
            note("the Secondary's checkpoint, then failover, then the Primary's checkpoint")
            # Each command is issued once the one before is accepted (status "pending"),
            # however slowly the machine answers.
            sck = self.S.colo_async("checkpoint")
            self.wait_pending(self.S, "checkpoint", sck)
            fo = self.S.colo_async("failover")
            self.wait_pending(self.S, "failover", fo)
            pck = self.P.colo("checkpoint", check=False)
            out, err = sck.communicate(timeout=60)
            fo_out, fo_err = fo.communicate(timeout=60)
            if fo.returncode:
                fail("failover asked for during the Secondary's checkpoint exited %d: %s" %
                     (fo.returncode, fo_err.strip()))
            if sck.returncode:
                fail("the Secondary's checkpoint followed by a failover exited %d: %s" %
                     (sck.returncode, err.strip()))
            if out.strip() != "epoch=%d" % (m.epoch + 1):
                fail("the Secondary's checkpoint printed %r, expected epoch=%d" %
                     (out, m.epoch + 1))
            note("  the Primary's checkpoint exited %d %s" % (pck.returncode,
                                                             (pck.stdout + pck.stderr).strip()))
            self.stats["Primary checkpoint before failover: exit %d" % pck.returncode] += 1
            m.checkpoint(m.primary)
        elif v < 0.6:
            pw = self.issue_pwrites(rng.randint(1, 8))
            sw = self.issue_swrites(rng.randint(1, 8)) if rng.random() < 0.6 else []
            pump(self.all, 0)
            note("failover of the Secondary with %d Primary writes and %d Secondary VM "
                 "writes %s in flight" % (len(pw), len(sw), [(o.how, o.n, o.off) for o in sw]))
            self.S.colo("failover")
            wait_ops(pw + sw, self.all)
            for op in pw:
                m.primary[op.off:op.off + op.n] = op.data
            for op in sw:  # acknowledged: each must be on the disk after the failover
                m.swrite(op.off, op.data)
        else:
            if KILL9 == "always" or (KILL9 == "random" and rng.random() < 0.5):
                note("kill -9 of the Primary (pid %d)" % self.P.pid)
                self.stats["failover after kill -9 of the Primary"] += 1
                os.kill(self.P.pid, signal.SIGKILL)
                self.primary_killed = True
            sw = self.issue_swrites(rng.randint(1, 8)) if rng.random() < 0.6 else []
            for _ in range(rng.choice([0, 0, 1, 3])):
                pump(self.all, 0.0005)
            note("failover of the Secondary with %d Secondary VM writes %s in flight" %
                 (len(sw), [(o.how, o.n, o.off) for o in sw]))
            self.S.colo("failover")
            wait_ops(sw, self.hs)
            for op in sw:
                m.swrite(op.off, op.data)
        st = self.S.status()
        if st["state"] != "failed-over" or st["buffer_blocks"] != 0:
            fail("after failover the Secondary's status is %s" % st)
        self.compare_file(bytes(m.view), "after failover")
        for off in range(0, SIZE, 1 << 20):
            self.check_view(off, 1 << 20)
        if not self.primary_killed:
            self.wait_primary_broken()
        self.plain_disk(m.view)

    def end_stop(self):
        m = self.m
        note("the Primary's checkpoint, then stop of the Secondary")
        self.checkpoint_primary()
        marker = bytearray(m.primary)
        # The Secondary VM's writes are dropped by the stop.
        for _ in range(rng.randint(0, 3) if SVM else 0):
            self.op_swrite()
        sw = self.issue_swrites(rng.randint(1, 8)) if rng.random() < 0.5 else []
        for _ in range(rng.choice([0, 0, 1, 3])):
            pump(self.all, 0.0005)
        note("stop of the Secondary with %d Secondary VM writes %s in flight" %
             (len(sw), [(o.how, o.n, o.off) for o in sw]))
        self.S.colo("stop")
        wait_ops(sw, self.hs)
        # Each is dropped with the buffer or, turned away until the stop was done, on the
        # plain disk: whole, never torn, and the rest is the checkpoint.
        got = self.read_file(self.simg)
        for op in sw:
            if got[op.off:op.off + op.n] == op.data:
                marker[op.off:op.off + op.n] = op.data
                self.stats["Secondary VM writes in flight at stop, after it"] += 1
            elif got[op.off:op.off + op.n] != marker[op.off:op.off + op.n]:
                fail("a Secondary VM %s of %d bytes at %d in flight at the stop is torn on "
                     "the disk" % (op.how, op.n, op.off))
        st = self.S.status()
        if st["state"] != "stopped" or st["buffer_blocks"] != 0:
            fail("after stop the Secondary's status is %s" % st)
        self.compare_file(bytes(marker), "after stop (expected: the Primary's disk at its "
                          "last checkpoint)")
        m.view = marker
        for off in range(0, SIZE, 1 << 20):
            self.check_view(off, 1 << 20)
        self.wait_primary_broken()
        self.plain_disk(m.view)

    def close(self):
        for h in self.hs if self.primary_killed else self.all:
            h.shutdown()
        self.all = self.hp = self.hs = None  # libnbd closes a handle when it is freed
        self.S.destroy()
        if not self.primary_killed:
            self.P.destroy()


def main():
    print("seed=%d block_size=%d steps=%d size=%d mode=%s kill9=%s" %
          (SEED, BS, STEPS, SIZE, MODE, KILL9), flush=True)
    t0 = time.monotonic()
    events = ["failover"] * FAILOVERS + ["stop"] * STOPS
    rng.shuffle(events)
    if not events:
        events = ["none"]
    cuts = sorted(rng.sample(range(1, STEPS), len(events) - 1)) if STEPS > len(events) else \
        [0] * (len(events) - 1)
    bounds = list(zip([0] + cuts, cuts + [STEPS]))
    stats = collections.Counter()
    base = open(os.path.join(TEST_DIR, "base.img"), "rb").read()
    if len(base) != SIZE:
        raise SystemExit("base.img must be %d bytes" % SIZE)
    for no, (event, (first, last)) in enumerate(zip(events, bounds)):
        pimg = os.path.join(TEST_DIR, "p%d.img" % no)
        simg = os.path.join(TEST_DIR, "s%d.img" % no)
        for p in (pimg, simg):
            with open(p, "wb") as f:
                f.write(base)
        model = Model(base)
        s = Session(no, pimg, simg, model, Extents())
        s.run(first, last, stats)
        s.check_all()
        if event == "failover":
            s.end_failover()
        elif event == "stop":
            s.end_stop()
        s.close()
        base = s.read_file(simg)
        print("session %d: steps %d..%d, ended by %s: the Secondary's file matches the model"
              % (no, first, last - 1, event), flush=True)
    print("%d steps in %.1f s: %s" % (STEPS, time.monotonic() - t0,
                                      ", ".join("%s %d" % kv for kv in sorted(stats.items()))))


if __name__ == "__main__":
    try:
        main()
    except (TestFailure, nbd.Error, subprocess.TimeoutExpired) as e:
        print("FAIL (seed=%d, block_size=%d): %s" % (SEED, BS, e), file=sys.stderr)
        print("the last operations:", file=sys.stderr)
        for h in history:
            print("  " + h, file=sys.stderr)
        sys.exit(1)
