"""
The whole HA cycle, randomized against a byte-array model, on the same two VBDs throughout:

    protect (sync=full|diff while the guest writes) -> epochs of writes and checkpoints
    [-> link cut -> resync] -> failover (the Primary alive, cut off, or killed with kill -9)
    -> re-protect in the other direction on the same VBDs (a killed Primary's VBD made again
    on the same image, with its dirty log) -> ... -> failback, CYCLES times.

    colo_lifecycle.py TAPCTL TEST_DIR SEED

Host A and host B each have one VBD and one listening address; the guest runs on the
Primary.  After every completed sync and every checkpoint the Secondary's image file equals
the guest's disk byte for byte; after every failover it equals the last checkpoint plus the
Secondary VM's writes.  A resync after a cut must announce exactly the model's dirty extents.
Between a copy (sync, resync, re-protect) and the first checkpoint after it, a failover of
the Secondary is refused (its disk is inconsistent) and the pair goes on.
kill -9 of the Secondary (guest writes in flight on the Primary, or during a copy) and of the
Primary during a copy: the Primary keeps serving (its image byte for byte the guest's acknowledged
writes), the killed side's VBD is made again on the same image, a failover of a Secondary that
has no checkpoint since it became one is refused (its image may hold part of an epoch or of a
copy), and the next protect makes the images equal again (a restarted Secondary has no pair
identity: a diff of the whole disk).
Environment: CYCLES (20), BS (random, 512 to 1 MiB), MODE colo|ft (random), CUTS (1: link
cuts happen), KILLS (1: kill -9 of the Secondary, and of either side during a copy), TLS
psk|none (random when TLS_PSK names a psktool file with the identity "primary").
"""
import collections
import os
import random
import signal
import subprocess
import sys
import time

import nbd

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from colo_harness import TestFailure, Vbd, free_port, pump, run  # noqa: E402

TAPCTL, TEST_DIR, SEED = sys.argv[1], sys.argv[2], int(sys.argv[3])
rng = random.Random(SEED)
SECTOR = 512
MiB = 1 << 20
CYCLES = int(os.environ.get("CYCLES", "20"))
BS = int(os.environ.get("BS") or rng.choice([512 << i for i in range(12)]))  # 512 to 1 MiB
SIZE = rng.choice([8 * MiB, 6 * MiB + 512 * 1024 + 3 * SECTOR])
MODE = os.environ.get("MODE") or rng.choice(["colo", "ft"])
CUTS = os.environ.get("CUTS", "1") == "1"
KILLS = os.environ.get("KILLS", "1") == "1"
# A Secondary that completed no checkpoint since it became one (a restarted tapdisk) refuses
# a failover unless forced: its image may hold part of an epoch or of a copy.
NO_CKPT = ("failover: the disk is inconsistent: no checkpoint since this VBD became a "
           "Secondary; 'failover force' fails over anyway")
FORCED = ("failover forced: the disk is inconsistent: no checkpoint since this VBD became a "
          "Secondary")
# The link: TLS with a pre-shared key when the test made one (TLS_PSK), or plain text.
TLS = os.environ.get("TLS") or (rng.choice(["psk", "none"]) if os.environ.get("TLS_PSK")
                                else "none")
LOG = open(os.path.join(TEST_DIR, "lifecycle.log"), "a")
stats = collections.Counter()


def note(msg):
    LOG.write(msg + "\n")
    LOG.flush()


def fail(msg):
    raise TestFailure(msg)


def first_diff(got, want):
    for i in range(min(len(got), len(want))):
        if got[i] != want[i]:
            return i
    return min(len(got), len(want))


def expect_bytes(got, want, what):
    if got == want:
        return
    if len(got) != len(want):
        fail("%s: %d bytes, expected %d" % (what, len(got), len(want)))
    diffs = sum(1 for a, b in zip(got, want) if a != b)
    i = first_diff(got, want)
    fail("%s: %d bytes differ, first at %d (block %d of %d): got %s, expected %s" %
         (what, diffs, i, i // BS, BS, got[i:i + 8].hex(), want[i:i + 8].hex()))


def read_file(path):
    with open(path, "rb") as f:
        return f.read()


def extent(max_n=512 * SECTOR, rng=rng):
    """A sector-aligned extent: inside one block, across a boundary, or large."""
    r = rng.random()
    if r < 0.1:
        n = rng.randint(MiB // SECTOR + 1, 3 * MiB // SECTOR) * SECTOR  # over 1 MiB
    elif r < 0.4:
        n = rng.randint(1, 8) * SECTOR
    else:
        n = rng.randint(1, max_n // SECTOR) * SECTOR
    n = min(n, SIZE)
    if rng.random() < 0.3:  # around a block boundary
        b = rng.randrange(0, SIZE // BS + 1) * BS
        off = b - rng.randrange(0, min(n, b) + 1, SECTOR) if b else 0
    else:
        off = rng.randrange(0, SIZE - n + 1, SECTOR)
    return max(0, min(off, SIZE - n)), n


def blocks(off, n):
    return set(range(off // BS, (off + n - 1) // BS + 1))


def extent_bytes(blks):
    """Bytes of the sync's 1 MiB extents that hold @blks (the last extent may be short)."""
    ext = set()
    for b in blks:
        ext |= set(range(b * BS // MiB, (min((b + 1) * BS, SIZE) - 1) // MiB + 1))
    return sum(min(MiB, SIZE - e * MiB) for e in ext)


def overlaps(a, b):
    return a[0] < b[0] + b[1] and b[0] < a[0] + a[1]


class Host:
    """One host: its image, its VBD (made again if its tapdisk is killed), its address."""

    def __init__(self, name, port, peer_port):
        self.name = name
        self.img = os.path.join(TEST_DIR, "%s.img" % name)
        self.addr = "127.0.0.1:%d" % port
        self.log = os.path.join(TEST_DIR, "%s.dirty" % name)
        # Each VBD is named after the host it replicates to first; address= says the rest.
        self.spec = "colo:127.0.0.1:%d:%s" % (peer_port, self.img)
        self.vbd = None
        self.h = None

    def create(self):
        self.vbd = Vbd(TAPCTL, self.spec)
        self.h = nbd.NBD()
        self.h.connect_unix(self.vbd.sock)
        if self.h.get_size() != SIZE:
            fail("%s: export size %d, expected %d" % (self.name, self.h.get_size(), SIZE))
        note("%s: VBD pid %d minor %d" % (self.name, self.vbd.pid, self.vbd.minor))

    def kill9(self):
        note("%s: kill -9 of tapdisk %d" % (self.name, self.vbd.pid))
        os.kill(self.vbd.pid, signal.SIGKILL)
        for _ in range(6000):
            try:
                os.kill(self.vbd.pid, 0)
            except ProcessLookupError:
                break
            if open("/proc/%d/stat" % self.vbd.pid).read().rsplit(")", 1)[1].split()[0] == "Z":
                break
            time.sleep(0.01)
        # tap-ctl forgets the minor of a dead tapdisk
        run([TAPCTL, "destroy", "-p", self.vbd.pid, "-m", self.vbd.minor], check=False)
        run([TAPCTL, "free", "-m", self.vbd.minor], check=False)
        self.h = None
        self.vbd = None

    def status(self):
        return self.vbd.status()

    def colo(self, *args, check=True):
        return self.vbd.colo(*args, check=check)

    def destroy(self):
        if self.vbd:
            if self.h:
                self.h.shutdown()
            self.h = None
            self.vbd.destroy()
            self.vbd = None


class Writes:
    """Asynchronous guest writes on one handle, never overlapping while in flight."""

    def __init__(self, h, rng=rng):
        self.h, self.ops, self.rng = h, [], rng

    def issue(self):
        off, n = extent(rng=self.rng)
        if any(overlaps((off, n), (o, len(d))) for o, d, _, _ in self.ops):
            return
        data = self.rng.randbytes(n)
        note("  write %d at %d in flight" % (n, off))
        buf = nbd.Buffer.from_bytearray(bytearray(data))
        self.ops.append((off, data, buf, self.h.aio_pwrite(buf, off)))

    def reap(self, apply):
        left = []
        for off, data, buf, cookie in self.ops:
            if self.h.aio_command_completed(cookie):
                apply(off, data)
            else:
                left.append((off, data, buf, cookie))
        self.ops = left

    def drain(self, apply, seconds=120):
        deadline = time.monotonic() + seconds
        while self.ops:
            if time.monotonic() > deadline:
                fail("%d guest writes did not complete within %d s" % (len(self.ops), seconds))
            pump([self.h], 0.05)
            self.reap(apply)


class Pair:
    def __init__(self):
        pa, pb = free_port(), free_port()
        self.A, self.B = Host("A", pa, pb), Host("B", pb, pa)
        for h, seed in ((self.A, 1), (self.B, 2)):
            with open(h.img, "wb") as f:
                f.write(random.Random(SEED * 10 + seed).randbytes(SIZE))
        self.A.create()
        self.B.create()
        self.P, self.S = self.A, self.B
        self.guest = bytearray(read_file(self.A.img))  # what the guest wrote, on P
        self.ckpt = None    # the Secondary's disk at the last checkpoint
        self.view = None    # what the Secondary VM sees: ckpt + its own writes
        # Blocks the Primary wrote in the epoch before the last checkpoint and since: its
        # dirty map keeps both, not knowing whether the Secondary's half of the last
        # checkpoint was done.  Known once two checkpoints passed since a start, which may
        # mark blocks of its own (a failed-over Secondary's write-back).
        self.dirty_prev, self.dirty = set(), set()
        self.ckpts_since_start = 0
        self.svm = set()  # blocks the Secondary VM wrote since the last checkpoint
        # A re-protect's set: blocks the old Primary wrote after the last checkpoint, those
        # the Secondary VM wrote (both written back at the failover), or None: unknown.
        self.rp_base = None
        self.old_killed = False
        self.opts = ["block_size=%d" % BS, "timeout=30000"]
        self.popts = []  # the Primary's only
        if TLS == "psk":
            self.opts += ["tls=psk", "tls_psk=" + os.environ["TLS_PSK"]]
            self.popts = ["tls_user=primary"]
        else:
            self.opts.append("tls=none")
        self.logs = rng.random() < 0.7  # the Primary keeps a dirty log
        self.epoch = None

    # -- guest I/O --

    def pwrite_done(self, off, data):
        self.guest[off:off + len(data)] = data
        self.dirty |= blocks(off, len(data))

    def dirty_bytes(self, blocks):
        return sum(min(BS, SIZE - b * BS) for b in blocks)

    def pwrite(self):
        off, n = extent()
        data = rng.randbytes(n)
        self.P.h.pwrite(data, off)
        note("  %s: guest write %d at %d" % (self.P.name, n, off))
        self.pwrite_done(off, data)

    def swrite(self):
        off, n = extent()
        data = rng.randbytes(n)
        self.S.h.pwrite(data, off)
        note("  %s: Secondary VM write %d at %d" % (self.S.name, n, off))
        self.view[off:off + n] = data
        self.svm |= blocks(off, n)

    def check_reads(self):
        off, n = extent()
        expect_bytes(self.P.h.pread(n, off), bytes(self.guest[off:off + n]),
                     "the Primary's read of %d at %d" % (n, off))
        if self.view is not None and self.S.h:
            expect_bytes(self.S.h.pread(n, off), bytes(self.view[off:off + n]),
                         "the Secondary VM's read of %d at %d" % (n, off))

    # -- commands --

    def start(self, how):
        """Protect or re-protect: S listens, P starts with a sync while the guest writes;
        maybe kill -9 of either side during the copy (after_copy_kill)."""
        sync = rng.choice(["full", "diff", "diff"])
        popts = self.opts + self.popts + ["address=" + self.S.addr, "sync=" + sync]
        if rng.random() < 0.3:
            popts.append("sync_rate=%d" % rng.choice([4 * MiB, 16 * MiB]))
        kill = self.copy_kill(popts)
        if self.logs:
            popts.append("dirty_log=" + self.P.log)
        sopts = ["address=" + self.S.addr] + self.opts
        # An old Primary whose tapdisk was restarted knows its writes only from its log.
        if self.logs and self.old_killed and os.path.exists(self.S.log):
            sopts.append("dirty_log=" + self.S.log)
        self.S.colo("start", "secondary", *sopts)
        note("%s: %s -> %s, start primary %s" % (how, self.P.name, self.S.name, " ".join(popts)))
        self.dirty_since_failover = set(self.dirty)
        proc = self.P.vbd.colo_async("start", "primary", *popts)
        n, during = self.start_primary_writing(how, proc, kill=kill)
        if self.killed:
            self.after_copy_kill(how)
            return
        st = self.P.status()
        if st["state"] != "running":
            fail("%s: after start the Primary is %s" % (how, st))
        if how == "re-protect":
            self.check_reprotect(st, during)
        else:
            stats["%s with sync=%s" % (how, sync)] += 1
        stats["guest writes during a sync"] += n
        self.fresh_run(how)

    def start_primary_writing(self, how, proc, after_accept=False, kill=None):
        """Guest writes in flight on the Primary while its start @proc runs; returns how
        many were issued and the blocks they wrote.  @after_accept: only once tapdisk has
        the start (a VBD made again has no dirty map before: its writes would be untracked,
        which the driver answers with a diff, tested on its own).  @kill "S" or "P": kill -9
        of that side once the copy is under way (the Primary syncing, some bytes done); then
        the start's exit is the caller's to check, and self.killed says whether it happened
        (the copy may end first)."""
        deadline = time.monotonic() + 60
        while after_accept and proc.poll() is None and \
                "start" not in self.P.status()["pending"].split():
            if time.monotonic() > deadline:
                fail("%s: the start was not accepted within 60 s" % how)
            time.sleep(0.005)
        # How many writes go in depends on the machine's speed: they draw from a generator
        # of their own, so that the run stays replayable.
        w = Writes(self.P.h, random.Random(rng.getrandbits(64)))
        n, during = 0, set()
        self.killed = None
        while proc.poll() is None:
            if len(w.ops) < 8:
                w.issue()
                n += 1
                if w.ops:
                    during |= blocks(w.ops[-1][0], len(w.ops[-1][1]))
            pump([self.P.h], 0.002)
            w.reap(self.pwrite_done)
            if kill and not self.killed:
                st = self.P.status()
                if st["state"] == "syncing" and st["sync_done_bytes"] > 0:
                    note("%s: kill -9 of %s during the copy (%d of %d bytes done)" %
                         (how, kill, st["sync_done_bytes"], st["sync_total_bytes"]))
                    self.killed = kill
                    if kill == "P":
                        self.P.kill9()
                        break
                    self.S.kill9()
        out, err = proc.communicate()
        if self.killed == "P":
            # Writes in flight on the killed Primary: each sector old or new on its image.
            img = read_file(self.P.img)
            for off, data, _, _ in w.ops:
                for i in range(0, len(data), SECTOR):
                    got = img[off + i:off + i + SECTOR]
                    if got not in (bytes(self.guest[off + i:off + i + SECTOR]),
                                   data[i:i + SECTOR]):
                        fail("%s: after kill -9 of the Primary, sector %d of a write in "
                             "flight is neither old nor new" % (how, (off + i) // SECTOR))
                self.pwrite_done(off, img[off:off + len(data)])
            return n, during
        w.drain(self.pwrite_done)
        if self.killed:
            self.start_err = (proc.returncode, err.strip())
        elif proc.returncode:
            fail("%s: start primary on %s exited %d: %s" % (how, self.P.name, proc.returncode,
                                                           err.strip()))
        return n, during

    def refuse_failover(self, how):
        """After a copy and before the first checkpoint the Secondary's disk is inconsistent:
        a failover (not forced) is refused, and the pair goes on."""
        r = self.S.colo("failover", check=False)
        want = ("failover: the disk is inconsistent: no checkpoint since the Primary's copy; "
                "'failover force' fails over anyway")
        if r.returncode == 0 or want not in r.stderr:
            fail("%s: a failover of %s before the first checkpoint exited %d: %s (expected "
                 "EBUSY: %s)" % (how, self.S.name, r.returncode, r.stderr.strip(), want))
        stats["failovers refused before the first checkpoint"] += 1

    def check_reprotect(self, st, during):
        """A re-protect copies exactly both sides' sets (docs/colo.md): the blocks the old
        Primary wrote after the last checkpoint, those written back at the failover, the
        guest's writes since; and, as they raced the start, maybe those issued meanwhile.
        An old Primary restarted without a log knows nothing: a diff of the whole disk."""
        kind = st["reprotect"]
        want = "diff" if self.rp_base is None else "exact"
        if kind != want:
            fail("re-protect: status reprotect is %r, expected %r (the old Primary %s, "
                 "dirty log %s)" % (kind, want, "killed" if self.old_killed else "alive",
                                    "kept" if self.logs else "none"))
        stats["re-protect, %s" % kind] += 1
        if kind != "exact":
            return
        lo = extent_bytes(self.rp_base | self.dirty_since_failover)
        hi = extent_bytes(self.rp_base | self.dirty_since_failover | during)
        got = st["sync_total_bytes"]
        # A restarted old Primary's log is coarse and cleared lazily: a superset.
        if got < lo or (got > hi and not self.old_killed):
            fail("re-protect: sync_total_bytes %d, expected %d%s (the sets in 1 MiB extents: "
                 "%d blocks of the old Primary and the Secondary VM, %d written since the "
                 "failover, %d during the start)" %
                 (got, lo, "" if lo == hi else " to %d" % hi, len(self.rp_base),
                  len(self.dirty_since_failover), len(during)))
        stats["re-protect sets checked"] += 1

    def checkpoint(self, what):
        note("%s" % what)
        outp = self.P.colo("checkpoint").stdout.strip()
        outs = self.S.colo("checkpoint").stdout.strip()
        if outp != outs or not outp.startswith("epoch="):
            fail("%s: the Primary's checkpoint printed %r, the Secondary's %r" %
                 (what, outp, outs))
        ep = int(outp[6:])
        if self.epoch is not None and ep != self.epoch + 1:
            fail("%s: epoch %d after epoch %d" % (what, ep, self.epoch))
        self.epoch = ep
        expect_bytes(read_file(self.S.img), bytes(self.guest),
                     "%s: the Secondary's image (%s) against the guest's disk" %
                     (what, self.S.name))
        self.ckpt = bytearray(self.guest)
        self.view = bytearray(self.guest)
        self.dirty_prev, self.dirty = self.dirty, set()
        self.svm = set()
        self.ckpts_since_start += 1
        stats["checkpoints"] += 1

    def epochs(self):
        for _ in range(rng.randint(1, 3)):
            for _ in range(rng.randint(0, 12)):
                r = rng.random()
                if r < 0.55:
                    self.pwrite()
                elif r < 0.8 and MODE == "colo":
                    self.swrite()
                else:
                    self.check_reads()
            self.checkpoint("checkpoint")

    def cut_and_resync(self):
        """The link cut (both ends' sockets killed), the Primary goes on alone, then a
        resync of exactly the blocks dirty since the last checkpoint."""
        port = self.S.addr.rsplit(":", 1)[1]
        note("cut: link %s -> %s" % (self.P.name, self.S.addr))
        for f in (["dport", "=", port], ["sport", "=", port]):
            run(["ss", "-K", "-t", *f], check=False)
        deadline = time.monotonic() + 60
        while self.P.status()["state"] != "broken":
            if time.monotonic() > deadline:
                fail("the Primary did not notice the cut within 60 s: %s" % self.P.status())
            time.sleep(0.01)
        for _ in range(rng.randint(0, 8)):
            self.pwrite()
        st = self.P.status()
        note("cut: the Primary is broken with %d blocks dirty since the last checkpoint, %d "
             "in the epoch before; status %s" % (len(self.dirty), len(self.dirty_prev), st))
        if self.ckpts_since_start >= 2:
            want = self.dirty_bytes(self.dirty | self.dirty_prev)
            if st["dirty_bytes"] != want:
                fail("after the cut the Primary reports dirty_bytes %d, the model %d (%d "
                     "blocks of %d)" % (st["dirty_bytes"], want,
                                        len(self.dirty | self.dirty_prev), BS))
            stats["dirty bytes checked after a cut"] += 1
        self.resync("cut")

    def primary_restart(self):
        """The Primary's tapdisk killed with kill -9 and started again on the same image
        (its host rebooted): with its dirty log it resyncs at least what the Secondary lacks,
        without one a diff; the Secondary, broken meanwhile, keeps its buffer until then.
        Guest writes before the start reach the disk with no map to record them: a diff."""
        for _ in range(rng.randint(0, 5)):
            self.pwrite()
        self.P.kill9()
        self.P.create()
        untracked = rng.random() < 0.25
        if untracked:
            for _ in range(rng.randint(1, 3)):
                self.pwrite()
        self.resync("restart", untracked)

    def resync(self, why, untracked=False):
        """Both sides started again in their roles, guest writes in flight on the Primary:
        the copy is exactly the extents written since the last checkpoint (with those of the
        writes racing the start, maybe), or, from a restarted Primary's coarse log, more."""
        lo = extent_bytes(self.dirty)
        self.S.colo("start", "secondary", "address=" + self.S.addr, *self.opts)
        popts = ["address=" + self.S.addr] + self.opts + self.popts
        kill = self.copy_kill(popts)
        if self.logs:
            popts.append("dirty_log=" + self.P.log)
        note("resync after a %s: start primary %s" % (why, " ".join(popts)))
        n, during = self.start_primary_writing("resync after a " + why,
                                               self.P.vbd.colo_async("start", "primary", *popts),
                                               after_accept=why == "restart", kill=kill)
        if self.killed:
            self.after_copy_kill("resync after a " + why)
            return
        hi = extent_bytes(self.dirty | during) if why == "cut" else SIZE
        st = self.P.status()
        if st["state"] != "running":
            fail("resync after a %s: after start the Primary is %s" % (why, st))
        tot, sent = st["sync_total_bytes"], st["sync_sent_bytes"]
        if why == "restart" and (untracked or not self.logs):
            # Nothing known, or not all: a diff of the whole disk, which sends what differs
            # (not what the Secondary got before the Primary died); the images then agree.
            ok = tot == SIZE and sent <= extent_bytes(self.dirty | during)
        else:
            ok = lo <= sent == tot <= hi
        if not ok:
            fail("resync after a %s: sync_total_bytes %d, sync_sent_bytes %d, expected %d%s "
                 "(%d blocks written since the last checkpoint, %d during the start, in 1 MiB "
                 "extents)" % (why, tot, sent, lo, "" if lo == hi else " to %d" % hi,
                               len(self.dirty), len(during)))
        stats["resyncs after a %s%s" % (why, ", writes before the start" if untracked else
                                         ", from the log" if self.logs and why == "restart"
                                         else "")] += 1
        stats["guest writes during a resync"] += n
        # The pair goes on from the next epoch; after a diff, epochs start again.
        if why == "restart" and (untracked or not self.logs):
            self.epoch = None
        self.refuse_failover("resync")
        self.checkpoint("the first checkpoint after a resync")

    # -- kill -9 of the Secondary, and of either side during a copy --

    def copy_kill(self, popts):
        """Whether this start's copy is cut by kill -9 of the Secondary ("S") or of the
        Primary ("P"), or None; a cut copy is slowed down so that the kill finds it going."""
        if not KILLS or rng.random() >= 0.15:
            return None
        popts[:] = [o for o in popts if not o.startswith("sync_rate=")] + ["sync_rate=4M"]
        return rng.choice(["S", "P"])

    def primary_alone(self, how, state):
        """The Secondary is gone: the Primary is @state (broken after a running link, idle
        after a start that failed), keeps serving the guest, and its image holds every
        acknowledged write byte for byte."""
        deadline = time.monotonic() + 60
        while self.P.status()["state"] != state:
            if time.monotonic() > deadline:
                fail("%s: the Primary is not %s within 60 s: %s" % (how, state, self.P.status()))
            time.sleep(0.01)
        st = self.P.status()
        # The link's end as the Primary saw it: end of stream, a reset, or a broken pipe.
        lost = "replication link to %s lost: " % self.S.addr
        if st["role"] != ("primary" if state == "broken" else "none") or \
                st["link"] != ("lost" if state == "broken" else "none") or \
                not st["last_error"].startswith(lost):
            fail("%s: the %s Primary's status %s (expected link lost, last_error %r...)" %
                 (how, state, st, lost))
        for _ in range(rng.randint(0, 5)):
            self.pwrite()
        expect_bytes(read_file(self.P.img), bytes(self.guest),
                     "%s: the Primary's image (%s) against the guest's acknowledged writes" %
                     (how, self.P.name))
        stats["Primary %s and serving after the Secondary's kill -9" % state] += 1

    def secondary_kill(self):
        """kill -9 of the Secondary's tapdisk with guest writes in flight on the Primary:
        they complete, the Primary goes broken and serves on; the image the Secondary left
        is no checkpoint (its buffer, the saved originals of the open epoch, died with it)."""
        w = Writes(self.P.h, random.Random(rng.getrandbits(64)))
        for _ in range(rng.randint(0, 6)):
            w.issue()
        pump([self.P.h], 0.0005)
        note("kill -9 of the Secondary %s with %d guest writes in flight" %
             (self.S.name, len(w.ops)))
        self.S.kill9()
        w.drain(self.pwrite_done)
        self.primary_alone("kill -9 of the Secondary", "broken")
        self.S.create()
        self.secondary_restarted("kill -9 of the Secondary")

    def secondary_restarted(self, how):
        """The operator makes the killed Secondary's VBD again on the same image and starts
        it: it has no checkpoint and no pair identity, so a failover is refused (EBUSY) unless
        forced, and the next protect is a diff of the whole disk (the Primary's RESUME is not
        granted) that makes the images equal at the first checkpoint.  Before it, maybe
        `failover force` on the restarted Secondary (then started again: a new run), or a
        failover of the broken Primary (it then starts a new run: a protect)."""
        self.view = None
        # Its host's dirty log, left from when it was a Primary, is read and cleared at
        # the first checkpoint (a stale one would make a later re-protect send more).
        sopts = ["address=" + self.S.addr] + self.opts
        self.s_log = self.logs and os.path.exists(self.S.log)
        if self.s_log:
            sopts.append("dirty_log=" + self.S.log)
        self.S.colo("start", "secondary", *sopts)
        r = self.S.colo("failover", check=False)
        if r.returncode != 16 or NO_CKPT not in r.stderr:
            fail("%s: failover of the restarted Secondary exited %d: %s (expected EBUSY: %s)" %
                 (how, r.returncode, r.stderr.strip(), NO_CKPT))
        stats["failovers refused on a restarted Secondary"] += 1
        what = rng.choice(["protect", "protect", "force", "Primary failover"])
        if what == "force":
            r = self.S.colo("failover", "force")
            st = self.S.status()
            if FORCED not in r.stdout + r.stderr or st["state"] != "failed-over" or \
                    st["last_error"] != FORCED:
                fail("%s: failover force of the restarted Secondary printed %r %r, then its "
                     "status is %s (expected %r)" % (how, r.stdout, r.stderr, st, FORCED))
            # A forced failover leaves no set (the disk is unknown): no dirty_log= either.
            self.S.colo("start", "secondary", "address=" + self.S.addr, *self.opts)
            self.s_log = False
            stats["failover force of a restarted Secondary"] += 1
        elif what == "Primary failover" and self.P.status()["state"] == "broken":
            self.P.colo("failover")
            for _ in range(rng.randint(0, 4)):
                self.pwrite()
            stats["failovers of the Primary after the Secondary's kill -9"] += 1
        self.protect_again(how)

    def protect_again(self, how):
        """The Secondary restarted and listening: start primary, guest writes in flight; the
        copy is a diff of the whole disk (sync_total_bytes the disk's size), but for a
        re-protect whose old Primary was restarted with its dirty log: that copies exactly
        both sides' sets (the cut copy wrote only extents of them), checked at the first
        checkpoint."""
        popts = ["address=" + self.S.addr] + self.opts + self.popts
        if self.logs:
            popts.append("dirty_log=" + self.P.log)
        note("%s: protect again, start primary %s" % (how, " ".join(popts)))
        self.start_primary_writing(how + ", protect again",
                                   self.P.vbd.colo_async("start", "primary", *popts))
        st = self.P.status()
        exact = how.startswith("re-protect") and self.s_log
        if st["state"] != "running" or st["sync_sent_bytes"] > st["sync_total_bytes"] or \
                (st["reprotect"] == "exact") != exact or \
                (not exact and st["sync_total_bytes"] != SIZE):
            fail("%s: after protecting again the Primary's status is %s (expected running, %s)"
                 % (how, st, "the re-protect's exact set" if exact else
                    "a diff of the whole disk: sync_total_bytes %d" % SIZE))
        stats["protects again after a kill -9%s" % (", exact" if exact else "")] += 1
        self.fresh_run(how)

    def fresh_run(self, how):
        """A start that made the images equal by a copy of its own: the model's epochs and
        sets start again; a failover is refused until the first checkpoint."""
        self.ckpts_since_start = 0
        self.old_killed = False
        self.view = None
        self.epoch = None
        self.refuse_failover(how)
        self.checkpoint("the first checkpoint after %s" % how)

    def after_copy_kill(self, how):
        """A copy cut by kill -9.  Of the Secondary: the Primary's start fails, it is idle
        and serves on; the Secondary is made again (secondary_restarted).  Of the Primary:
        the Secondary, which was writing the copy straight to its disk, goes idle (no
        replication to fail over); the Primary's VBD is made again on its image (with its
        dirty log) and both start again: equal images at the first checkpoint."""
        if self.killed == "S":
            rc, err = self.start_err
            note("%s: the start after the Secondary's kill -9 exited %d: %s" % (how, rc, err))
            want = "tap-ctl: colo start: replication link to %s lost: " % self.S.addr
            # A reset, a broken pipe, or (TLS) a failed pull of the next record.
            if rc not in (32, 71, 104) or not err.startswith(want):
                fail("%s: start primary, the Secondary killed during the copy, exited %d: %s "
                     "(expected ECONNRESET, EPIPE or EPROTO: %s...)" % (how, rc, err, want))
            self.primary_alone(how + ", the Secondary killed during the copy", "idle")
            self.S.create()
            stats["kill -9 of the Secondary during a copy"] += 1
            self.secondary_restarted(how + ", the Secondary killed during the copy")
            return
        deadline = time.monotonic() + 60
        while self.S.status()["state"] != "idle":
            if time.monotonic() > deadline:
                fail("%s: the Secondary is not idle after the Primary's kill -9 during the "
                     "copy: %s" % (how, self.S.status()))
            time.sleep(0.01)
        r = self.S.colo("failover", check=False)
        note("%s: failover of the Secondary after the Primary's kill -9 during the copy: %d %s"
             % (how, r.returncode, r.stderr.strip()))
        if r.returncode != 22 or "failover: replication is not started" not in r.stderr:
            fail("%s: failover of the Secondary whose copy was cut exited %d: %s" %
                 (how, r.returncode, r.stderr.strip()))
        self.P.create()
        sopts = ["address=" + self.S.addr] + self.opts
        if self.logs and self.old_killed and os.path.exists(self.S.log):
            sopts.append("dirty_log=" + self.S.log)
        self.S.colo("start", "secondary", *sopts)
        r = self.S.colo("failover", check=False)
        if r.returncode != 16 or "failover: the disk is inconsistent" not in r.stderr:
            fail("%s: failover of the Secondary whose copy was cut, started again, exited %d: "
                 "%s (expected EBUSY)" % (how, r.returncode, r.stderr.strip()))
        popts = ["address=" + self.S.addr] + self.opts + self.popts
        if self.logs:
            popts.append("dirty_log=" + self.P.log)
        note("%s: the Primary made again, start primary %s" % (how, " ".join(popts)))
        self.start_primary_writing(how + ", the Primary made again",
                                   self.P.vbd.colo_async("start", "primary", *popts),
                                   after_accept=True)
        st = self.P.status()
        if st["state"] != "running" or (not self.logs and st["sync_total_bytes"] != SIZE):
            fail("%s: after the Primary's kill -9 and start its status is %s" % (how, st))
        stats["kill -9 of the Primary during a copy"] += 1
        self.fresh_run(how + ", the Primary killed during the copy")

    def failover(self):
        how = rng.choice(["alive", "killed", "killed", "cut"])
        # Writes the Primary made after the last checkpoint: lost with it.
        for _ in range(rng.randint(0, 5)):
            self.pwrite()
        sw = []
        if how == "killed":
            self.P.kill9()
        elif how == "cut":
            port = self.S.addr.rsplit(":", 1)[1]
            for f in (["dport", "=", port], ["sport", "=", port]):
                run(["ss", "-K", "-t", *f], check=False)
        if MODE == "colo" and rng.random() < 0.6:
            w = Writes(self.S.h)
            for _ in range(rng.randint(1, 6)):
                w.issue()
            pump([self.S.h], 0.0005)
            sw = [w]
        note("failover of %s (the Primary %s) with %d Secondary VM writes in flight" %
             (self.S.name, how, sum(len(w.ops) for w in sw)))
        self.S.colo("failover")
        for w in sw:
            for off, data, _, _ in w.ops:
                self.svm |= blocks(off, len(data))
            w.drain(lambda off, data: self.view.__setitem__(slice(off, off + len(data)), data))
        st = self.S.status()
        if st["state"] != "failed-over" or st["buffer_blocks"] != 0:
            fail("after failover the Secondary's status is %s" % st)
        expect_bytes(read_file(self.S.img), bytes(self.view),
                     "after failover (the Primary %s): %s's image against the last checkpoint "
                     "plus the Secondary VM's writes" % (how, self.S.name))
        stats["failovers, the Primary %s" % how] += 1
        # The guest now runs on the old Secondary.
        old = self.P
        if how != "killed":
            deadline = time.monotonic() + 60
            while old.status()["state"] != "broken":
                if time.monotonic() > deadline:
                    fail("the old Primary did not see the end: %s" % old.status())
                time.sleep(0.01)
        else:
            old.create()  # its host comes back: the VBD again, on the same image
        self.P, self.S = self.S, old
        self.guest = bytearray(self.view)
        self.view = None
        # What the re-protect must copy, as far as both sides know it.
        self.old_killed = how == "killed"
        self.rp_base = None if self.old_killed and not self.logs else self.dirty | self.svm
        self.dirty, self.svm = set(), set()
        for _ in range(rng.randint(0, 6)):
            self.pwrite()

    def close(self):
        self.A.destroy()
        self.B.destroy()


def main():
    print("seed=%d cycles=%d block_size=%d size=%d mode=%s tls=%s cuts=%d kills=%d" %
          (SEED, CYCLES, BS, SIZE, MODE, TLS, CUTS, KILLS), flush=True)
    t0 = time.monotonic()
    pair = Pair()
    try:
        pair.start("protect")
        for cycle in range(CYCLES):
            pair.epochs()
            # Before the cut: a resync must then go on from the new run's checkpoints.
            if KILLS and rng.random() < 0.25:
                pair.secondary_kill()
                pair.epochs()
            if CUTS and rng.random() < 0.4:
                pair.cut_and_resync()
                pair.epochs()
            if rng.random() < 0.25:
                pair.primary_restart()
                pair.epochs()
            pair.failover()
            pair.start("re-protect")
            print("cycle %d: %s is the Primary, epoch %d, disks equal" %
                  (cycle + 1, pair.P.name, pair.epoch), flush=True)
        pair.epochs()
        pair.close()
    except TestFailure as e:
        print("FAIL (seed %d): %s" % (SEED, e), flush=True)
        sys.exit(1)
    print("%d cycles in %.1f s: %s" % (CYCLES, time.monotonic() - t0,
                                      ", ".join("%s %d" % kv for kv in sorted(stats.items()))),
          flush=True)


main()
