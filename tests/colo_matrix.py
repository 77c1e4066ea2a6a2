#!/usr/bin/python3
"""
Every colo control command in every state of either side, with guest writes in flight on both
sides, run by tests/test-colo-command-matrix.sh.

    colo_matrix.py TAPCTL TEST_DIR SEED [SCENARIO...]

Each scenario makes a fresh pair (a Secondary S and a Primary P on identical images), puts one
side into a state while the Primary's guest and the Secondary VM write (unaligned writes, some
larger than 1 MiB, a few in flight at all times), issues commands there and checks the exact
exit status and output line of each `tap-ctl colo`, then the state `status` reports.  Then the
writes are drained, the images are compared byte for byte with the model (the Primary's image
is every write its guest had acknowledged; a failed-over Secondary's is the last checkpoint
plus the Secondary VM's writes since), and the pair is protected again (sync=diff) and
checkpointed, after which both images must equal the Primary's model: the driver kept serving.

The model: the Primary's guest writes only [0, P_END), the Secondary VM only [P_END, SIZE);
no write overlaps one still in flight, so acknowledgement order is disk order.
"""
import json
import os
import random
import re
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from colo_harness import (ColoControl, TestFailure, Vbd, connect, free_port, freeze,  # noqa: E402
                          pump, thaw)

TAPCTL, TEST_DIR, SEED = sys.argv[1], sys.argv[2], int(sys.argv[3])
ONLY = sys.argv[4:]
rng = random.Random(SEED)
MiB = 1 << 20
SIZE = 16 * MiB
P_END = 10 * MiB
EINVAL, EBUSY, ENOTCONN, ESHUTDOWN, EALREADY, ETIMEDOUT, ECANCELED = 22, 16, 107, 108, 114, 110, 125
ENOENT, EADDRINUSE, EPERM = 2, 98, 1
NOT_STARTED = "replication is not started"
NO_CKPT = ("the disk is inconsistent: no checkpoint since this VBD became a Secondary; "
           "'failover force' fails over anyway")
LOG = open(os.path.join(TEST_DIR, "matrix.log"), "a")
mismatches = []
rows = []  # (side, state, command, outcome) for the table printed at the end


def note(msg):
    LOG.write(msg + "\n")
    LOG.flush()


def fail(msg):
    raise TestFailure(msg)


def check(ok, msg):
    """A mismatch is reported and the run goes on, so that one run shows them all."""
    if not ok:
        note("MISMATCH: " + msg)
        print("MISMATCH: " + msg, file=sys.stderr)
        mismatches.append(msg)
    return ok


class Writer:
    """Guest writes on one VBD's NBD export, DEPTH in flight, into [lo, hi), none overlapping
    one in flight (the region is far larger than what is in flight); each acknowledged write goes to @apply(off, data) in completion order."""

    DEPTH = 3

    def __init__(self, vbd, lo, hi, apply):
        self.h = connect(vbd.sock, SIZE)
        self.lo, self.hi, self.apply = lo, hi, apply
        self.cur = lo
        self.inflight = []
        self.on = True
        self.acked = self.issued = 0

    def issue(self):
        # Sectors (the export's minimum), rarely whole blocks; some larger than 1 MiB.
        if rng.random() < 0.12:
            n = MiB + 512 * rng.randrange(1, 1400)
        else:
            n = rng.choice([512, 4096, 65536, 200 * 1024]) + 512 * rng.randrange(0, 7)
        start = self.cur + 512 * rng.randrange(1, 9)
        for _ in range(2 * self.DEPTH + 2):
            if start + n > self.hi:
                start = self.lo + 512 * rng.randrange(0, 8)
            ends = [o + len(d) for o, d, _, _ in self.inflight
                    if o < start + n and start < o + len(d)]
            if not ends:
                break
            start = max(ends) + 512  # past the write in flight there
        else:
            return False  # no room now: issue once one completes
        data = rng.randbytes(n)
        self.issued += 1
        self.inflight.append((start, data, self.h.aio_pwrite(data, start), self.issued))
        self.cur = start + n
        return True

    def step(self):
        left = []
        for off, data, cookie, n in self.inflight:
            if self.h.aio_command_completed(cookie):  # raises on an error: a lost write
                self.apply(off, data, n)
                self.acked += 1
            else:
                left.append((off, data, cookie, n))
        self.inflight = left
        while self.on and len(self.inflight) < self.DEPTH:
            if not self.issue():
                break

    def drain(self, seconds=120):
        self.on = False
        deadline = time.monotonic() + seconds
        while self.inflight:
            if time.monotonic() > deadline:
                fail("%d guest writes did not complete within %d s" % (len(self.inflight),
                                                                       seconds))
            pump([self.h], 0.02)
            self.step()

    def close(self):
        self.drain()
        self.h.shutdown()


class Pair:
    def __init__(self, name):
        self.name = name
        self.dir = os.path.join(TEST_DIR, name)
        os.makedirs(self.dir, exist_ok=True)
        initial = rng.randbytes(SIZE)
        self.pimg, self.simg = self.dir + "/p.img", self.dir + "/s.img"
        for path in (self.pimg, self.simg):
            with open(path, "wb") as f:
                f.write(initial)
        self.port = free_port()
        self.S = Vbd(TAPCTL, "colo:127.0.0.1:%d:%s" % (self.port, self.simg))
        self.P = Vbd(TAPCTL, "colo:127.0.0.1:%d:%s" % (self.port, self.pimg))
        self.S.name, self.P.name = "S", "P"
        self.pmodel = bytearray(initial)  # the Primary's disk
        self.ckpt = bytearray(initial)  # the Secondary's disk at its last checkpoint
        self.svm = []  # the Secondary VM's writes since then, in order
        self.pw = self.sw = None
        self.dead = set()

    # ---- guest I/O ----

    def p_apply(self, off, data, n):
        self.pmodel[off:off + len(data)] = data

    def s_apply(self, off, data, n):
        self.svm.append((off, data, n))

    def writers(self, p=True, s=True):
        if p and not self.pw:
            self.pw = Writer(self.P, 0, P_END, self.p_apply)
        if s and not self.sw:
            self.sw = Writer(self.S, P_END, SIZE, self.s_apply)

    def active(self):
        return [w for w in (self.pw, self.sw) if w]

    def spin(self, seconds=0.0, until=None, limit=120, what="a condition"):
        """Keeps the writes going for @seconds, or until @until() is true."""
        t0 = time.monotonic()
        while True:
            ws = self.active()
            for w in ws:
                w.step()
            if until is None and time.monotonic() - t0 >= seconds:
                return
            if until is not None and until():
                return
            if time.monotonic() - t0 > limit:
                fail("%s: %s did not happen within %d s" % (self.name, what, limit))
            if ws:
                pump([w.h for w in ws], 0.01)
            else:
                time.sleep(0.01)

    def quiesce(self):
        for w in self.active():
            w.drain()

    def resume(self):
        for w in self.active():
            w.on = True

    def drop_writer(self, side):
        w = self.pw if side == "P" else self.sw
        if w:
            w.close()
        if side == "P":
            self.pw = None
        else:
            self.sw = None

    # ---- commands ----

    def start_cmd(self, vbd, *args):
        proc = vbd.colo_async(*args)
        proc.what = "%s: colo %s" % (vbd.name, " ".join(args))
        return proc

    def finish(self, proc, limit=60):
        self.spin(until=lambda: proc.poll() is not None, limit=limit,
                  what="the end of '%s'" % proc.what)
        out, err = proc.communicate()
        return proc.returncode, out.strip(), err.strip()

    def cmd(self, vbd, *args, limit=60):
        return self.finish(self.start_cmd(vbd, *args), limit)

    def status(self, vbd):
        # Answered at once, whatever the state: a hang here is a failure of its own.
        rc, out, err = self.cmd(vbd, "status", limit=15)
        if rc:
            fail("%s: status exited %d: %s" % (vbd.name, rc, err))
        return json.loads(out)

    def wait_state(self, vbd, **want):
        what = "%s status %s" % (vbd.name, want)
        st = {}

        def ok():
            st.update(self.status(vbd))
            return all(st[k] == v for k, v in want.items())
        self.spin(until=ok, limit=60, what=what)
        return st

    def expect(self, vbd, state, args, rc, line="", out="", regex=False):
        """`tap-ctl colo ARGS` on @vbd exits @rc; its stderr is @line (exactly, or matching it
        as a regular expression), its stdout @out."""
        got_rc, got_out, got_err = self.cmd(vbd, *args)
        cmd = " ".join(args)
        want = line
        okline = re.fullmatch(want, got_err) if regex else got_err == want
        check(got_rc == rc and okline and got_out == out,
              "%s %s in %s: '%s' exited %d, out '%s', err '%s'; expected %d, out '%s', "
              "err '%s'" % (self.name, vbd.name, state, cmd, got_rc, got_out, got_err, rc, out,
                            want))
        rows.append((vbd.name, state, cmd, rc, got_err or got_out))
        return got_rc, got_out, got_err

    def refuse(self, vbd, state, args, rc, why, regex=False):
        verb = args[0]
        self.expect(vbd, state, args, rc,
                    ("tap-ctl: colo %s: " % verb) + (why if regex else why), regex=regex)

    def expect_status(self, vbd, where, **want):
        st = self.status(vbd)
        for k, v in want.items():
            check(st[k] == v, "%s %s in %s: status %s is %r, expected %r (%s)"
                  % (self.name, vbd.name, where, k, st[k], v, json.dumps(st)))
        return st

    # ---- states ----

    def start_pair(self, sopts=(), popts=("sync=none",)):
        self.expect_ok(self.S, "start", "secondary", *sopts)
        self.expect_ok(self.P, "start", "primary", *popts)

    def expect_ok(self, vbd, *args, out=""):
        rc, o, e = self.cmd(vbd, *args)
        if rc or o != out:
            fail("%s: %s colo %s exited %d: out '%s' err '%s'" % (self.name, vbd.name,
                                                                  " ".join(args), rc, o, e))

    def checkpoint_both(self):
        """Quiesced (the checkpoint pause), then the Primary's and the Secondary's."""
        self.quiesce()
        st = self.status(self.P)
        epoch = st["epoch"] + 1
        self.expect_ok(self.P, "checkpoint", out="epoch=%d" % epoch)
        self.expect_ok(self.S, "checkpoint", out="epoch=%d" % epoch)
        self.ckpt = bytearray(self.pmodel)
        self.svm = []
        self.resume()

    def svm_view(self):
        v = bytearray(self.ckpt)
        for off, data, _ in self.svm:
            v[off:off + len(data)] = data
        return v

    def svm_region_after_stop(self, path, since, what):
        """A stop asked for while the Secondary VM writes: its writes issued before the stop
        was done may be in the dropped buffer or, retried, on the disk; those issued after it
        (after @since) are on the disk.  Each sector must be one of what those allow."""
        with open(path, "rb") as f:
            got = f.read()
        allowed = {}
        for off, data, n in self.svm:
            for s in range(off // 512, (off + len(data)) // 512):
                val = data[s * 512 - off:(s + 1) * 512 - off]
                if n > since:
                    allowed[s] = {val}
                else:
                    allowed.setdefault(s, {bytes(self.ckpt[s * 512:(s + 1) * 512])}).add(val)
        for s in range(P_END // 512, SIZE // 512):
            sec = got[s * 512:(s + 1) * 512]
            if sec not in allowed.get(s, {bytes(self.ckpt[s * 512:(s + 1) * 512])}):
                check(False, "%s: %s: sector %d is none of the Secondary VM's writes nor the "
                      "checkpoint" % (self.name, what, s))
                return
        if got[:P_END] != bytes(self.pmodel[:P_END]):
            check(False, "%s: %s: the Primary's region differs from the model" % (self.name, what))

    def running(self, **opts):
        """Both sides running after a first checkpoint, the writes going on."""
        t = ["timeout=%d" % opts.get("timeout", 20000)]
        self.start_pair(sopts=t, popts=["sync=none"] + t)
        self.writers()
        self.spin(0.2)
        self.checkpoint_both()
        self.spin(0.2)

    # ---- checks ----

    def file_is(self, path, want, what):
        with open(path, "rb") as f:
            got = f.read()
        if got == bytes(want):
            return True
        first = next(i for i in range(SIZE) if got[i] != want[i])
        check(False, "%s: %s differs from the model, first at byte %d%s"
              % (self.name, what, first, self.whose(first, got)))
        return False

    def whose(self, off, got):
        """Which guest write of the model covers @off, and what the image holds there."""
        for o, data, n in reversed(self.svm):
            if o <= off < o + len(data):
                return (" (the Secondary VM's write %d of %d bytes at %d, acknowledged %d-th "
                        "since the checkpoint; the image holds %s)"
                        % (n, len(data), o, self.svm.index((o, data, n)) + 1,
                           "it" if got[o:o + len(data)] == data else "other bytes there"))
        return " (no Secondary VM write there)"

    def view_is(self, vbd, want, what):
        h = connect(vbd.sock, SIZE)
        got = b"".join(h.pread(4 * MiB, off) for off in range(0, SIZE, 4 * MiB))
        h.shutdown()
        if got != bytes(want):
            first = next(i for i in range(SIZE) if got[i] != want[i])
            check(False, "%s: %s's view differs from the model, first at byte %d"
                  % (self.name, vbd.name, first))

    def protect_again(self):
        """Both sides brought back to a protected pair, whatever their state: the driver
        kept serving.  After the first checkpoint both images equal the Primary's model."""
        self.quiesce()
        for vbd in (self.S, self.P):
            st = self.status(vbd)
            if st["state"] in ("running", "connecting", "syncing", "broken"):
                rc, _, err = self.cmd(vbd, "stop")
                if rc:
                    fail("%s: %s: stop to protect again exited %d: %s" % (self.name, vbd.name,
                                                                          rc, err))
        # The Secondary VM does not run while its VBD becomes a Secondary (with its writes in
        # flight the start says EBUSY, retry: s_ended).
        self.expect_ok(self.S, "start", "secondary")
        self.resume()
        self.expect_ok(self.P, "start", "primary", "sync=diff")
        self.checkpoint_both()
        self.quiesce()
        self.file_is(self.pimg, self.pmodel, "the Primary's image after protecting again")
        self.file_is(self.simg, self.pmodel, "the Secondary's image after protecting again")

    def primary_kept_then_protect(self, what):
        """The Primary's guest lost no write; then the pair is protected again."""
        self.quiesce()
        self.view_is(self.P, self.pmodel, what)
        self.resume()
        self.protect_again()

    def close(self):
        for w in self.active():
            try:
                w.close()
            except Exception:  # noqa: BLE001 (the VBD may be gone)
                pass
        for vbd in (self.P, self.S):
            if vbd.name not in self.dead:
                vbd.destroy()


SCENARIOS = []


def scenario(fn):
    SCENARIOS.append(fn)
    return fn


# ---- the Primary's states ----------------------------------------------------------------

@scenario
def p_idle(x):
    """A VBD never started, the guest writing: every command but start is refused."""
    x.writers(s=False)
    x.spin(0.1)
    for args in (["failover", "force"], ["stop"], ["failover"]):
        x.refuse(x.P, "idle", args, EINVAL, NOT_STARTED)
    x.refuse(x.P, "idle", ["checkpoint"], EINVAL, "prepare_checkpoint: " + NOT_STARTED)
    x.expect_status(x.P, "idle", role="none", state="idle", link="none", pending="")
    x.writers()
    x.primary_kept_then_protect("idle")


def start_cancelled(x, st, start, end):
    """The Primary's start pending in @st: a second start is refused, @end cancels it."""
    for role in ("primary", "secondary"):
        x.refuse(x.P, st, ["start", role], EBUSY, "already started as primary (%s)" % st)
    x.expect(x.P, st, end, 0)
    rc, out, err = x.finish(start)
    verb = end[0]
    check(rc == ECANCELED and err == "tap-ctl: colo start: cancelled by %s" % verb,
          "%s: the start cancelled by %s: exit %d, '%s'" % (x.name, " ".join(end), rc, err))
    x.expect_status(x.P, st, state="failed-over" if verb == "failover" else "stopped",
                    link="none", pending="")
    return verb


def p_connecting(x, end, *opts):
    """start primary waits for a Secondary that does not listen yet."""
    x.writers()
    queue = "sync=none" in opts
    if queue:
        x.pw.drain()
    start = x.start_cmd(x.P, "start", "primary", "connect_timeout=120000", *opts)
    x.wait_state(x.P, state="connecting", link="connecting", pending="start")
    if queue:
        # Queued for the link meanwhile: a write that does not fit in queue_limit beside
        # them waits for a link that does not come, and the guest's later writes with it.
        x.pw.h.pwrite(b"\x5a" * 65536, 0)
        x.pmodel[0:65536] = b"\x5a" * 65536
        big = rng.randbytes(MiB + 4096)
        x.pw.inflight.append((MiB, big, x.pw.h.aio_pwrite(big, MiB), 0))
        x.pw.cur = MiB + len(big)
        x.spin(0.2)
        x.expect_status(x.P, "connecting", inflight_bytes=65536)
        x.pw.on = True
    st = "connecting"
    x.refuse(x.P, st, ["checkpoint"], ENOTCONN,
             "prepare_checkpoint: not replicating (connecting, link connecting)")
    x.expect_status(x.P, st, state="connecting", pending="start")
    start_cancelled(x, st, start, end)
    x.primary_kept_then_protect("after " + " ".join(end))


@scenario
def p_connecting_stop(x):
    p_connecting(x, ["stop"])


@scenario
def p_connecting_failover_force(x):
    p_connecting(x, ["failover", "force"])


@scenario
def p_connecting_queue_full_stop(x):
    """Without a copy, the writes are queued while connecting: the guest's wait for room in
    queue_limit ends with the stop."""
    p_connecting(x, ["stop"], "sync=none", "queue_limit=1M")


def p_syncing(x, end):
    """start primary sync=full copies slowly; the guest writes on both sides."""
    x.expect_ok(x.S, "start", "secondary")
    x.writers()
    start = x.start_cmd(x.P, "start", "primary", "sync=full", "sync_rate=1M")
    x.wait_state(x.P, state="syncing", pending="start")
    st = "syncing"
    x.refuse(x.P, st, ["checkpoint"], EBUSY,
             r"prepare_checkpoint: syncing: \d+ of 16777216 bytes copied", regex=True)
    verb = start_cancelled(x, st, start, end)
    # The Secondary saw the Primary go in order during the copy: its disk is part of a copy.
    s = x.wait_state(x.S, link="closed")
    check(s["state"] in ("broken", "idle"), "%s: the Secondary after the Primary's %s during "
          "the copy: %s" % (x.name, verb, json.dumps(s)))
    if s["state"] == "broken":
        x.refuse(x.S, "broken after a cut copy", ["failover"], EBUSY,
                 r"the disk is inconsistent: the Primary's copy has not ended \(\d+ bytes "
                 r"received\); 'failover force' fails over anyway", regex=True)
    x.primary_kept_then_protect("after " + " ".join(end))


@scenario
def p_syncing_stop(x):
    p_syncing(x, ["stop"])


@scenario
def p_syncing_failover(x):
    p_syncing(x, ["failover"])


@scenario
def p_running(x):
    x.running()
    st = "running"
    x.refuse(x.P, st, ["start", "secondary"], EBUSY, "already started as primary (running)")
    # Busy first: a start that would be refused for its options too says it is running.
    ctl = ColoControl(x.P.pid, x.P.minor)
    got = ctl.command("start primary sync=full verify=1")
    ctl.close()
    rows.append(("P", st, "start primary (no tls=, verify=1 sync=full)", got[0], got[1]))
    check(got == (EBUSY, "already started as primary (running)"),
          "%s: a start with bad options on a running Primary: %r" % (x.name, got))
    rc, out, err = x.cmd(x.P, "checkpoint")  # racing the writes: an epoch
    check(rc == 0 and re.fullmatch(r"epoch=\d+", out), "%s: checkpoint in running: %d %s %s"
          % (x.name, rc, out, err))
    x.expect(x.P, st, ["failover", "force"], 0)
    x.expect_status(x.P, st, state="failed-over", link="none", pending="")
    x.wait_state(x.S, state="broken", link="closed")
    x.primary_kept_then_protect("after failover force")


@scenario
def p_running_stop(x):
    x.running()
    x.expect(x.P, "running", ["stop"], 0)
    x.expect_status(x.P, "running", state="stopped", link="none", pending="")
    s = x.wait_state(x.S, state="broken", link="closed")
    # The Secondary keeps its buffer: its failover leaves the last checkpoint and its writes.
    check(s["last_error"] == "", "%s: the Secondary's last_error after the Primary's stop: %s"
          % (x.name, json.dumps(s)))
    x.refuse(x.S, "broken (closed)", ["checkpoint"], ENOTCONN,
             r"do_checkpoint: the Primary ended replication and epoch \d+ never ended",
             regex=True)
    x.expect(x.S, "broken (closed)", ["failover"], 0)
    x.quiesce()
    x.file_is(x.simg, x.svm_view(), "the Secondary's image after its failover")
    x.resume()
    x.protect_again()


@scenario
def p_ckpt_pending(x):
    """The Primary's checkpoint waits: the Secondary's tapdisk is stopped (SIGSTOP)."""
    x.running()
    freeze(x.S.pid)
    try:
        ck = x.start_cmd(x.P, "checkpoint")
        x.wait_state(x.P, pending="checkpoint")
        st = "checkpoint pending"
        x.refuse(x.P, st, ["checkpoint"], EBUSY, "prepare_checkpoint: a checkpoint is in progress")
        x.refuse(x.P, st, ["start", "primary"], EBUSY, "already started as primary (running)")
        x.expect(x.P, st, ["stop"], 0)
        rc, out, err = x.finish(ck)
        check(rc == ECANCELED and err ==
              "tap-ctl: colo checkpoint: prepare_checkpoint: cancelled by stop",
              "%s: the checkpoint cancelled by stop: exit %d, '%s'" % (x.name, rc, err))
        x.expect_status(x.P, st, state="stopped", pending="")
    finally:
        thaw(x.S.pid)
    x.wait_state(x.S, state="broken")
    x.protect_again()


def broken(x, vbd, how):
    """@vbd's peer goes while both guests write: killed (the link lost) or stopped (closed)."""
    peer = x.S if vbd is x.P else x.P
    x.running(timeout=2000)
    if how == "lost":
        x.drop_writer(peer.name)
        os.kill(peer.pid, 9)
        x.dead.add(peer.name)
    else:
        x.expect_ok(peer, "stop")
    x.wait_state(vbd, state="broken", link=how)
    st = "broken (%s)" % how
    if vbd is x.P:
        x.refuse(vbd, st, ["checkpoint"], ENOTCONN,
                 "prepare_checkpoint: not replicating (broken, link %s)" % how)
    else:
        x.refuse(vbd, st, ["checkpoint"], ENOTCONN,
                 r"do_checkpoint: the Primary %s and epoch \d+ never ended"
                 % ("is lost" if how == "lost" else "ended replication"), regex=True)
    x.expect_status(vbd, st, state="broken", link=how, pending="")
    return st


def p_broken(x, how):
    return broken(x, x.P, how)


@scenario
def p_broken_lost(x):
    st = p_broken(x, "lost")
    # A Primary started as Secondary: its guest's writes must be done first.
    rc, out, err = x.cmd(x.P, "start", "secondary")
    check(rc == 0 or (rc == EBUSY and err == "tap-ctl: colo start: guest writes of the last "
                      "run are in flight; retry"),
          "%s: start secondary on a broken Primary with writes in flight: %d '%s'"
          % (x.name, rc, err))
    rows.append(("P", st + ", guest writing", "start secondary", rc, err))
    x.quiesce()
    x.view_is(x.P, x.pmodel, "after a lost link")
    x.drop_writer("P")
    if rc:
        x.expect(x.P, st + ", guest quiet", ["start", "secondary"], 0)
    x.expect_status(x.P, st, role="secondary", state="connecting", link="listening")
    x.view_is(x.P, x.pmodel, "started as Secondary")


@scenario
def p_broken_lost_failover_force(x):
    """Nothing to force on a Primary: the output is empty, whatever last_error holds."""
    st = p_broken(x, "lost")
    x.expect(x.P, st, ["failover", "force"], 0)
    x.expect_status(x.P, st, state="failed-over", pending="")
    x.quiesce()
    x.view_is(x.P, x.pmodel, "after failover force")


@scenario
def p_broken_closed(x):
    st = p_broken(x, "closed")
    # Nobody listens: the resync's connect fails, and the VBD can be started again.
    x.refuse(x.P, st, ["start", "primary", "connect_timeout=300"], ETIMEDOUT,
             r"no Secondary at 127\.0\.0\.1:%d within 300 ms \(connect to 127\.0\.0\.1:%d: "
             r"Connection refused\)" % (x.port, x.port), regex=True)
    x.expect_status(x.P, st, role="none", state="idle", pending="")
    x.expect(x.P, st, ["failover", "force"], EINVAL, "tap-ctl: colo failover: " + NOT_STARTED)
    x.protect_again()


def ended(x, vbd, state):
    other = "stopped" if state == "failed-over" else "failed over"
    mine = "failed over" if state == "failed-over" else "stopped"
    x.refuse(vbd, state, ["checkpoint"], ESHUTDOWN,
             "%s: replication has ended (%s); the disk is a plain disk"
             % ("prepare_checkpoint" if vbd is x.P else "do_checkpoint", state))
    same, diff = (["failover"], ["stop"]) if state == "failed-over" else (["stop"], ["failover"])
    x.refuse(vbd, state, same, EALREADY, "replication has already %s" % mine)
    x.refuse(vbd, state, diff, ESHUTDOWN, "replication has already %s" % mine)
    x.refuse(vbd, state, ["failover", "force"], EALREADY if state == "failed-over" else ESHUTDOWN,
             "replication has already %s" % mine)
    del other
    x.expect_status(vbd, state, state=state, pending="")


@scenario
def p_ended(x):
    x.running()
    x.expect_ok(x.P, "failover")
    ended(x, x.P, "failed-over")
    x.protect_again()
    x.expect_ok(x.P, "stop")
    ended(x, x.P, "stopped")
    x.protect_again()


# ---- the Secondary's states --------------------------------------------------------------

@scenario
def s_listening(x):
    x.writers(p=False)
    x.expect_ok(x.S, "start", "secondary", "timeout=500")
    st = "listening"
    x.refuse(x.S, st, ["start", "secondary"], EBUSY, "already started as secondary (connecting)")
    x.refuse(x.S, st, ["start", "primary"], EBUSY, "already started as secondary (connecting)")
    x.refuse(x.S, st, ["checkpoint"], ETIMEDOUT,
             "do_checkpoint: the end of epoch 1 did not come within 500 ms; nothing changed")
    x.refuse(x.S, st, ["failover"], EBUSY, NO_CKPT)
    x.expect_status(x.S, st, state="connecting", link="listening", pending="")
    x.expect(x.S, st, ["failover", "force"], 0,
             out="failover forced: the disk is inconsistent: no checkpoint since this VBD "
             "became a Secondary")
    x.expect_status(x.S, st, state="failed-over", pending="")
    # The Secondary VM's writes while listening were in the buffer: written back.
    x.quiesce()
    x.file_is(x.simg, x.svm_view(), "the Secondary's image after a forced failover")
    x.resume()
    x.writers()
    x.protect_again()


@scenario
def s_syncing(x):
    x.expect_ok(x.S, "start", "secondary", "timeout=1000")
    x.writers()
    start = x.start_cmd(x.P, "start", "primary", "sync=full", "sync_rate=1M", "timeout=1000")
    x.wait_state(x.P, state="syncing")
    st = "syncing"
    x.refuse(x.S, st, ["start", "primary"], EBUSY, "already started as secondary (syncing)")
    # No marker comes while the copy runs (the Primary refuses its checkpoint meanwhile).
    x.refuse(x.S, st, ["checkpoint"], ETIMEDOUT,
             "do_checkpoint: the end of epoch 1 did not come within 1000 ms; nothing changed")
    x.refuse(x.S, st, ["failover"], EBUSY,
             r"the disk is inconsistent: the Primary's copy has not ended \(\d+ bytes "
             r"received\); 'failover force' fails over anyway", regex=True)
    x.expect(x.S, st, ["stop"], 0)
    rc, out, err = x.finish(start)
    check(rc != 0 and err.startswith("tap-ctl: colo start: "),
          "%s: the Primary's start once the Secondary stopped during the copy: %d '%s'"
          % (x.name, rc, err))
    rows.append(("P", "syncing, the Secondary stopped", "start primary (pending)", rc, err))
    x.expect_status(x.P, st, role="none", state="idle", pending="")
    x.expect_status(x.S, st, state="stopped", pending="")
    x.protect_again()


@scenario
def s_syncing_failover_force(x):
    """Forced during the copy: the Secondary's disk is part of a copy, the Primary's start
    fails, and the pair is protected again."""
    x.expect_ok(x.S, "start", "secondary")
    x.writers()
    start = x.start_cmd(x.P, "start", "primary", "sync=full", "sync_rate=1M")
    x.wait_state(x.P, state="syncing")
    st = "syncing"
    rc, out, err = x.cmd(x.S, "failover", "force")
    check(rc == 0 and re.fullmatch(r"failover forced: the disk is inconsistent: the Primary's "
                                   r"copy has not ended \(\d+ bytes received\)", out),
          "%s: failover force during the copy: %d '%s' '%s'" % (x.name, rc, out, err))
    rows.append(("S", st, "failover force", rc, out))
    x.expect_status(x.S, st, state="failed-over", pending="")
    rc, out, err = x.finish(start)
    check(rc == ENOTCONN and err == "tap-ctl: colo start: the Secondary ended replication",
          "%s: the Primary's start once the Secondary failed over during the copy: %d '%s'"
          % (x.name, rc, err))
    x.expect_status(x.P, st, role="none", state="idle", pending="")
    x.primary_kept_then_protect("after the Secondary's forced failover")


@scenario
def s_listening_stop(x):
    """The Secondary VM wrote while its VBD listened: in the buffer, which stop drops (its
    writes after the stop reach the plain disk)."""
    x.expect_ok(x.S, "start", "secondary")
    x.writers(p=False)
    x.spin(0.2)
    x.expect(x.S, "listening", ["stop"], 0)
    since = x.sw.issued
    x.expect_status(x.S, "listening", state="stopped", link="none", pending="",
                    buffer_blocks=0)
    x.quiesce()
    x.svm_region_after_stop(x.simg, since, "the Secondary's image after a stop while "
                            "listening")
    x.resume()
    x.writers()
    x.protect_again()


@scenario
def s_broken_restarted(x):
    """A broken Secondary started again keeps its buffer until a Primary connects: a failover
    meanwhile leaves the last checkpoint and the Secondary VM's writes."""
    st = s_broken(x, "closed")
    x.sw.drain()
    x.expect(x.S, st, ["start", "secondary", "timeout=2000"], 0)
    x.resume()
    st = "listening again, the buffer kept"
    x.expect_status(x.S, st, state="connecting", link="listening", pending="")
    x.refuse(x.S, st, ["checkpoint"], ETIMEDOUT, r"do_checkpoint: the end of epoch \d+ did "
             r"not come within 2000 ms; nothing changed", regex=True)
    x.expect(x.S, st, ["failover"], 0)
    x.quiesce()
    x.file_is(x.simg, x.svm_view(), "the Secondary's image after its failover")
    x.resume()
    x.protect_again()


@scenario
def s_inconsistent(x):
    """The copy is done, no checkpoint yet."""
    x.expect_ok(x.S, "start", "secondary")
    x.writers()
    x.expect_ok(x.P, "start", "primary", "sync=full")
    st = "running, no checkpoint since the copy"
    x.refuse(x.S, st, ["failover"], EBUSY, "the disk is inconsistent: no checkpoint since the "
             "Primary's copy; 'failover force' fails over anyway")
    x.expect(x.S, st, ["failover", "force"], 0,
             out="failover forced: the disk is inconsistent: no checkpoint since the Primary's "
             "copy")
    x.expect_status(x.S, st, state="failed-over", pending="")
    x.wait_state(x.P, state="broken", link="closed")
    x.protect_again()


@scenario
def s_ckpt_pending(x):
    """The Secondary's checkpoint waits for the Primary's marker; a stop comes behind it."""
    x.running()
    ck = x.start_cmd(x.S, "checkpoint")
    x.wait_state(x.S, pending="checkpoint")
    st = "checkpoint pending"
    x.refuse(x.S, st, ["start", "secondary"], EBUSY, "already started as secondary (running)")
    stop = x.start_cmd(x.S, "stop")
    x.wait_state(x.S, pending="checkpoint stop")
    st = "checkpoint and stop pending"
    x.refuse(x.S, st, ["checkpoint"], EBUSY,
             r"do_checkpoint: a checkpoint is in progress \(waiting for the end of epoch \d+\)",
             regex=True)
    x.refuse(x.S, st, ["failover"], EALREADY, "a stop is already in progress")
    x.refuse(x.S, st, ["stop"], EALREADY, "a stop is already in progress")
    x.refuse(x.S, st, ["start", "primary"], EBUSY, "already started as secondary (running)")
    # The Primary's checkpoint ends the Secondary's, and the stop follows.  The Secondary
    # VM's writes are retried while the stop waits: they stay in flight.
    x.pw.drain()
    epoch = x.status(x.P)["epoch"] + 1
    x.expect_ok(x.P, "checkpoint", out="epoch=%d" % epoch)
    rc, out, err = x.finish(ck)
    check(rc == 0 and out == "epoch=%d" % epoch, "%s: the pending checkpoint: %d '%s' '%s'"
          % (x.name, rc, out, err))
    rc, out, err = x.finish(stop)
    check(rc == 0, "%s: the stop behind the checkpoint: %d '%s'" % (x.name, rc, err))
    since = x.sw.issued
    x.quiesce()
    x.expect_status(x.S, st, state="stopped", pending="")
    x.ckpt = bytearray(x.pmodel)
    x.svm_region_after_stop(x.simg, since, "the Secondary's image after the checkpoint and "
                            "the stop")
    x.resume()
    x.protect_again()


def s_broken(x, how):
    return broken(x, x.S, how)


@scenario
def s_broken_lost(x):
    st = s_broken(x, "lost")
    x.expect(x.S, st, ["failover", "force"], 0)
    x.expect_status(x.S, st, state="failed-over", pending="")
    x.quiesce()
    x.file_is(x.simg, x.svm_view(), "the Secondary's image after failover force")
    x.view_is(x.S, x.svm_view(), "after failover force")


@scenario
def s_broken_start_primary(x):
    """A broken Secondary started as Primary drops its buffer unwritten (docs/colo.md), as a
    stop would: its disk is what it applied of the Primary's writes.  Nobody listens (the
    Primary is gone), so the start fails, and the VBD is a plain disk."""
    st = s_broken(x, "lost")
    x.refuse(x.S, st, ["start", "primary", "connect_timeout=300"], ETIMEDOUT,
             r"no Secondary at 127\.0\.0\.1:%d within 300 ms \(connect to 127\.0\.0\.1:%d: "
             r"Connection refused\)" % (x.port, x.port), regex=True)
    x.expect_status(x.S, st, role="none", state="idle", buffer_blocks=0, pending="")
    x.quiesce()
    with open(x.simg, "rb") as f:
        x.view_is(x.S, f.read(), "a broken Secondary after a failed start primary")


@scenario
def s_broken_start_refused(x):
    """A start refused on a broken Secondary changes nothing: its buffer (the last
    checkpoint's blocks and the Secondary VM's writes) stays for the failover."""
    st = s_broken(x, "lost")
    x.quiesce()
    before = x.status(x.S)
    check(before["buffer_blocks"] > 0, "%s: no buffer to keep: %s" % (x.name, before))
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen(1)
    inuse = busy.getsockname()[1]
    tls_dir = os.path.join(x.dir, "no-such-dir")
    open_log = os.path.join(x.dir, "open.dlog")
    with open(open_log, "w"):
        pass
    os.chmod(open_log, 0o644)
    for args, rc, why in (
            # Its buffer's blocks are 4096 bytes: another size would misplace every one.
            (["start", "secondary", "block_size=8192"], EINVAL,
             "block_size=8192: this broken Secondary keeps its buffer of 4096-byte blocks "
             "for a failover until a Primary connects; start it with block_size=4096, or "
             "fail it over or stop it first"),
            # Refused once the last run is taken apart: put back.
            (["start", "primary", "dirty_log=" + open_log], EPERM,
             "dirty_log=%s: mode 0644, must be 0600 (owner read-write only)" % open_log),
            (["start", "secondary", "tls=x509", "tls_dir=" + tls_dir], ENOENT,
             "TLS credentials: %s/ca-cert.pem: No such file or directory" % tls_dir),
            (["start", "secondary", "dirty_log=" + tls_dir + "/log"], ENOENT,
             "dirty_log=%s/log: No such file or directory (a Secondary only reads an existing "
             "log)" % tls_dir),
            (["start", "secondary", "address=127.0.0.1:%d" % inuse], EADDRINUSE,
             "cannot listen on 127.0.0.1:%d: Address already in use" % inuse),
            (["start", "primary", "verify=1", "sync=full"], EINVAL,
             "verify=1 checks that the disks are identical, sync=full copies them: choose "
             "one")):
        x.refuse(x.S, st, args, rc, why)
        x.expect_status(x.S, st, role="secondary", state="broken", link="lost", pending="",
                        buffer_blocks=before["buffer_blocks"])
    busy.close()
    x.resume()
    x.expect(x.S, st, ["failover"], 0)
    x.quiesce()
    x.file_is(x.simg, x.svm_view(), "the Secondary's image after refused starts and a failover")
    x.view_is(x.S, x.svm_view(), "after refused starts and a failover")
    # Failed over: a refused start leaves it failed over.
    x.refuse(x.S, "failed-over", ["start", "primary", "verify=1", "sync=diff"], EINVAL,
             "verify=1 checks that the disks are identical, sync=diff copies them: choose one")
    x.expect_status(x.S, "failed-over", role="secondary", state="failed-over", pending="")


@scenario
def s_failing_over(x):
    """A failover writing a large buffer back, and commands that arrive meanwhile: sent while
    the tapdisk is stopped, they are read in the same loop iteration as the failover."""
    x.running()
    # A buffer of 8 MiB of saved blocks for the write-back.
    x.quiesce()
    h = connect(x.P.sock, SIZE)
    data = rng.randbytes(8 * MiB)
    h.pwrite(data, MiB)
    h.shutdown()
    x.pmodel[MiB:9 * MiB] = data
    x.wait_state(x.P, inflight_bytes=0)
    x.resume()
    conns = [ColoControl(x.S.pid, x.S.minor) for _ in range(5)]
    freeze(x.S.pid)
    try:
        for c, text in zip(conns, ["failover", "checkpoint", "stop", "failover force",
                                   "start secondary tls=none"]):
            c.send(text)
    finally:
        thaw(x.S.pid)
    replies = [c.reply() for c in conns]
    for c in conns:
        c.close()
    note("failing-over: %r" % replies)
    st = "failing-over"
    want = [(0, ""), (EBUSY, "do_checkpoint: a failover is in progress"),
            (EALREADY, "a failover is already in progress"),
            (EALREADY, "a failover is already in progress"),
            (EBUSY, "already started as secondary (failing-over)")]
    for (cmd, got, exp) in zip(["failover", "checkpoint", "stop", "failover force", "start"],
                               replies, want):
        rows.append(("S", st, cmd, got[0], got[1]))
        check(got == exp, "%s: %s during a failover: %r, expected %r" % (x.name, cmd, got, exp))
    x.wait_state(x.S, state="failed-over")
    x.quiesce()
    x.file_is(x.simg, x.svm_view(), "the Secondary's image after the failover")
    x.resume()
    x.protect_again()


@scenario
def s_ended(x):
    x.running()
    x.expect_ok(x.S, "failover")
    ended(x, x.S, "failed-over")
    x.quiesce()
    x.file_is(x.simg, x.svm_view(), "the Secondary's image after failover")
    x.resume()
    # The Secondary VM, now the guest, writing: its VBD cannot become a Secondary again yet.
    x.spin(0.1)
    rc, out, err = x.cmd(x.S, "start", "secondary")
    check(rc == 0 or (rc == EBUSY and err == "tap-ctl: colo start: guest writes of the last "
                      "run are in flight; retry"),
          "%s: start secondary on a failed-over Secondary with writes in flight: %d '%s'"
          % (x.name, rc, err))
    rows.append(("S", "failed-over, guest writing", "start secondary", rc, err))
    if rc == 0:
        x.expect_ok(x.S, "stop")
    x.protect_again()
    x.expect_ok(x.S, "stop")
    ended(x, x.S, "stopped")
    x.protect_again()


def main():
    t0 = time.monotonic()
    todo = [s for s in SCENARIOS if not ONLY or s.__name__ in ONLY]
    for fn in todo:
        x = Pair(fn.__name__)
        note("=== %s" % fn.__name__)
        t = time.monotonic()
        try:
            fn(x)
        except Exception as e:  # noqa: BLE001 (one scenario's failure, the others go on)
            check(False, "%s: %s: %s" % (fn.__name__, type(e).__name__, e))
        finally:
            x.close()
        print("  %-28s %5.1f s" % (fn.__name__, time.monotonic() - t), flush=True)
    with open(os.path.join(TEST_DIR, "matrix.txt"), "w") as f:
        for r in rows:
            f.write("%s | %s | %s | %s | %s\n" % r)
    print("side | state | command | exit | line")
    for r in rows:
        print("%s | %s | %s | %s | %s" % r)
    print("%d scenarios, %d commands checked, %.0f s" % (len(todo), len(rows),
                                                         time.monotonic() - t0))
    if mismatches:
        print("FAIL: %d mismatches (seed %d):" % (len(mismatches), SEED), file=sys.stderr)
        for m in mismatches:
            print("  " + m, file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
