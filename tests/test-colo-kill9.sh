#!/bin/bash
# kill -9 of the Primary, then failover of the Secondary: the Secondary's image file must hold
# exactly the last completed checkpoint plus the Secondary VM's writes since.
#
# ROUNDS times (5): a fresh pair on 16 MiB images with identical random contents; one python
# driver keeps up to 16 random Primary writes in flight, has the Secondary VM write a little,
# and takes checkpoints at random times (the Primary's, then the Secondary's, through
# tap-ctl), knowing which writes completed before each call.  It kills the Primary with
# SIGKILL at a random moment: while idle, during the Primary's checkpoint, between the two
# checkpoints, or during the Secondary's.  After the kill the Secondary must turn broken; the
# view it serves and, after failover, its file must equal the model:
#   - writes completed before the last completed checkpoint's call are in it; each write in
#     flight at that call is in it entirely or not at all;
#   - a Primary checkpoint cut short by the kill: the Secondary's checkpoint is then called
#     or not; if it succeeds (the marker had arrived) that checkpoint counts;
#   - the Secondary VM's writes since the last completed Secondary checkpoint are laid over.
# SEED=n replays the random choices (timing still varies).
source "$(dirname "$0")/functions.sh"
requires_python_nbd

log_tapdisks

seed=${SEED:-$(od -An -N4 -tu4 /dev/urandom | tr -d ' ')}
echo "seed=$seed (replay with SEED=$seed)"

if ! "$PY" - "$TAPCTL" "$TEST_DIR" "$seed" "${ROUNDS:-5}" <<'PYEOF'; then
import json, os, random, re, select, socket, subprocess, sys, threading, time
import nbd

TAPCTL, TEST_DIR, SEED, ROUNDS = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
CTL = os.environ["BLKTAP_CONTROL_DIR"]
SIZE = 16 << 20
SECTOR = 512
rng = random.Random(SEED)
log = []


class TestFailure(Exception):
    pass


def fail(msg):
    raise TestFailure(msg)


def note(msg):
    log.append("%.3f %s" % (time.monotonic() - T0, msg))


def run(args, check=True):
    p = subprocess.run(list(map(str, args)), capture_output=True, text=True, timeout=120)
    if check and p.returncode:
        fail("%s exited %d: %s" % (" ".join(map(str, args)), p.returncode, p.stderr.strip()))
    return p


class Vbd:
    def __init__(self, spec):
        out = run([TAPCTL, "create", "-a", spec]).stdout.strip()
        self.minor = int(out.rsplit("-", 1)[1])
        line = run([TAPCTL, "list", "-m", self.minor]).stdout
        self.pid = int(re.search(r"pid=(\d+)", line).group(1))
        self.sock = "%s/nbd%d.%d" % (CTL, self.pid, self.minor)

    def args(self, *a):
        return [TAPCTL, "colo", "-p", self.pid, "-m", self.minor, *a]

    def colo(self, *a, check=True):
        return run(self.args(*a), check)

    def colo_async(self, *a):
        return subprocess.Popen(list(map(str, self.args(*a))), stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)

    def status(self):
        return json.loads(self.colo("status").stdout)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def gone(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except FileNotFoundError:
        return True


class Write:
    def __init__(self, wid, h, off, data):
        self.id, self.off, self.data, self.n = wid, off, data, len(data)
        self.h = h
        self.buf = nbd.Buffer.from_bytearray(bytearray(data))
        self.cookie = h.aio_pwrite(self.buf, off)
        self.done = False

    def check(self):
        if not self.done and self.h.aio_command_completed(self.cookie):
            self.done = True
        return self.done


def overlaps(a_off, a_n, b_off, b_n):
    return a_off < b_off + b_n and b_off < a_off + a_n


def one_round(r, mode):
    bs = rng.choice([512, 4096, 16384])
    opts = ["block_size=%d" % bs]
    if rng.random() < 0.3:
        opts.append("queue_limit=1M")
    if rng.random() < 0.2:
        opts += ["ram_limit=1M", "spill=%s/spill-%d" % (TEST_DIR, r)]
    depth = rng.choice([1, 4, 8, 16, 16])
    hot = rng.randrange(0, SIZE - (2 << 20), SECTOR)
    nth = rng.randint(1, 5)  # the checkpoint at which the kill lands (not for "idle")
    initial = rng.randbytes(SIZE)
    pimg, simg = "%s/p%d.img" % (TEST_DIR, r), "%s/s%d.img" % (TEST_DIR, r)
    for p in (pimg, simg):
        with open(p, "wb") as f:
            f.write(initial)
    port = free_port()
    S = Vbd("colo:127.0.0.1:%d:%s" % (port, simg))
    P = Vbd("colo:127.0.0.1:%d:%s" % (port, pimg))
    S.colo("start", "secondary", *opts, "tls=none")
    # sync=none: the images are identical by construction, and the model's failover before
    # the first checkpoint gives the initial disk (after a sync it is refused: inconsistent).
    P.colo("start", "primary",
           *[o for o in opts if not o.startswith(("ram_limit=", "spill="))], "tls=none",
           "sync=none")
    note("round %d: mode %s, %s, depth %d, Primary pid %d, Secondary pid %d" %
         (r, mode, " ".join(opts), depth, P.pid, S.pid))
    hp = [nbd.NBD(), nbd.NBD()]
    for h in hp:
        h.connect_unix(P.sock)
    hs = nbd.NBD()
    hs.connect_unix(S.sock)

    def extent(max_n):
        k = rng.choice([1, 1, 3, 8, 9, 31, 64, 100, 255, 512])
        n = min(rng.randint(1, k) * SECTOR, max_n)
        if rng.random() < 0.5:
            off = rng.randrange(hot, hot + (2 << 20) - n + 1, SECTOR)
        else:
            off = rng.randrange(0, SIZE - n + 1, SECTOR)
        return off, n

    writes = []        # every Primary write, in issue order
    inflight = []
    uncertain = []     # writes that may or may not go into the checkpoint being taken
    killed = threading.Event()
    kill_why = []
    kill_lock = threading.Lock()

    def kill(why):
        with kill_lock:
            if not killed.is_set():
                killed.set()  # first: a checkpoint failing from now on is expected
                os.kill(P.pid, 9)
                note("SIGKILL to the Primary (%s)" % why)
                kill_why.append(why)

    # The last completed checkpoint: (writes definitely in it, writes maybe in it);
    # checkpoint 0 is the initial contents.
    last = (set(), set())
    pending = None
    svm = []           # the Secondary VM's writes since the last completed Secondary checkpoint
    ckpts = 0          # checkpoints started
    completed = 0
    proc, phase = None, "idle"
    epoch = 1
    t_start = time.monotonic()
    next_ckpt = t_start + rng.uniform(0.01, 0.1)
    next_svm = t_start + rng.uniform(0.005, 0.05)
    kill_at = t_start + rng.uniform(0.05, 1.2) if mode == "idle" else t_start + 30

    def pump(timeout):
        rl, wl, by = [], [], {}
        for h in hp:
            if killed.is_set():
                break
            try:
                fd, d = h.aio_get_fd(), h.aio_get_direction()
            except nbd.Error:
                continue
            by[fd] = h
            if d & nbd.AIO_DIRECTION_READ:
                rl.append(fd)
            if d & nbd.AIO_DIRECTION_WRITE:
                wl.append(fd)
        if not by:
            time.sleep(timeout)
            return
        rr, ww, _ = select.select(rl, wl, [], timeout)
        try:
            for fd in rr:
                by[fd].aio_notify_read()
            for fd in ww:
                by[fd].aio_notify_write()
        except nbd.Error:
            if not killed.is_set():
                raise

    def retire():
        for w in list(inflight):
            try:
                ok = w.check()
            except nbd.Error as e:
                if killed.is_set():
                    inflight.remove(w)  # lost with the Primary: its completion unknown
                    continue
                raise TestFailure("a Primary write of %d bytes at %d failed: %s" %
                                  (w.n, w.off, e))
            if ok:
                inflight.remove(w)

    while True:
        now = time.monotonic()
        if now - t_start > 60:
            fail("round %d: no kill within 60 s (phase %s)" % (r, phase))
        if not killed.is_set():
            pump(0.001)
            retire()
            while len(inflight) < depth and not killed.is_set():
                # Writes in flight together are disjoint; so are all writes that may or may
                # not go into the checkpoint being taken (those in flight at its call and
                # those issued before it returned: tap-ctl reaches tapdisk a little later).
                busy = inflight + (uncertain if phase == "p" else [])
                for _ in range(10):
                    off, n = extent(256 << 10)
                    if not any(overlaps(off, n, w.off, w.n) for w in busy):
                        break
                else:
                    break
                try:
                    w = Write(len(writes), rng.choice(hp), off, rng.randbytes(n))
                except nbd.Error:
                    if killed.is_set():
                        break
                    raise
                writes.append(w)
                inflight.append(w)
                if phase == "p":
                    uncertain.append(w)
            if now >= kill_at:
                kill("at a random time (%s), %d checkpoints completed" %
                     ({"idle": "no checkpoint running", "p": "during the Primary's checkpoint",
                       "s": "during the Secondary's checkpoint"}[phase], completed))
        # The Secondary VM writes a little (never while its checkpoint runs).
        if now >= next_svm and phase != "s":
            off, n = extent(64 << 10)
            data = rng.randbytes(n)
            hs.pwrite(data, off)
            svm.append((off, data))
            next_svm = now + rng.uniform(0.005, 0.05)
        if phase == "idle":
            if killed.is_set():
                break
            if now >= next_ckpt:
                ckpts += 1
                uncertain = list(inflight)
                pending = ({w.id for w in writes if w.done}, None)
                proc, phase = P.colo_async("checkpoint"), "p"
                note("checkpoint %d: the Primary's called, %d writes in flight" %
                     (ckpts, len(inflight)))
                if mode == "during_pckpt" and ckpts == nth:
                    threading.Timer(rng.choice([0, 0.0005, 0.001, 0.002, 0.003]), kill,
                                    ["during the Primary's checkpoint %d" % ckpts]).start()
        elif phase == "p" and proc.poll() is not None:
            out, err = proc.communicate()
            if proc.returncode:
                if not killed.is_set():
                    fail("the Primary's checkpoint %d failed: %s" % (ckpts, err.strip()))
                note("checkpoint %d: the Primary's failed with the kill: %s" %
                     (ckpts, err.strip()))
                break
            pending = (pending[0], {w.id for w in uncertain})
            epoch += 1
            if out.strip() != "epoch=%d" % epoch:
                fail("the Primary's checkpoint %d printed %r, expected epoch=%d" %
                     (ckpts, out, epoch))
            if mode == "between" and ckpts == nth:
                kill("between the checkpoints %d" % ckpts)
            proc, phase = S.colo_async("checkpoint"), "s"
            if mode == "during_sckpt" and ckpts == nth:
                threading.Timer(rng.choice([0, 0.0005, 0.001]), kill,
                                ["during the Secondary's checkpoint %d" % ckpts]).start()
        elif phase == "s" and proc.poll() is not None:
            out, err = proc.communicate()
            if proc.returncode:
                fail("the Secondary's checkpoint %d failed after the Primary's succeeded%s: "
                     "%s" % (ckpts, " (the Primary was killed)" if killed.is_set() else "",
                             err.strip()))
            if out.strip() != "epoch=%d" % epoch:
                fail("the Secondary's checkpoint %d printed %r, expected epoch=%d" %
                     (ckpts, out, epoch))
            last, svm, completed = pending, [], completed + 1
            note("checkpoint %d completed (%d writes were uncertain)" % (ckpts, len(last[1])))
            proc, phase = None, "idle"
            next_ckpt = time.monotonic() + rng.uniform(0.01, 0.1)

    # The Primary is killed; a cut-short Primary checkpoint may still be followed by the
    # Secondary's (a toolstack that lost the answer may try it).
    while not gone(P.pid):
        time.sleep(0.01)
    late_s = None
    if phase == "p":
        kill_why.append("the Primary's checkpoint cut short")
    if phase == "p" and rng.random() < 0.5:
        p = S.colo("checkpoint", check=False)
        late_s = p.returncode
        note("the Secondary's checkpoint %d called after the kill: exit %d %s" %
             (ckpts, p.returncode, (p.stdout + p.stderr).strip()))
        if p.returncode == 0:
            pending = (pending[0], {w.id for w in uncertain})
            if p.stdout.strip() != "epoch=%d" % (epoch + 1):
                fail("the late Secondary checkpoint printed %r, expected epoch=%d" %
                     (p.stdout, epoch + 1))
            last, svm, completed = pending, [], completed + 1
    # The Secondary VM goes on writing.
    for _ in range(rng.randint(0, 3)):
        off, n = extent(64 << 10)
        data = rng.randbytes(n)
        hs.pwrite(data, off)
        svm.append((off, data))
    deadline = time.monotonic() + 12
    while True:
        st = S.status()
        if st["state"] == "broken" and st["link"] == "lost":
            break
        if time.monotonic() > deadline:
            fail("the Secondary did not notice the Primary's death within 12 s: %s" % st)
        time.sleep(0.05)

    # The model: the last completed checkpoint, writes in flight at its call resolved from
    # what the Secondary shows, the Secondary VM's writes over it.
    definite, maybe = last
    base = bytearray(initial)
    for w in writes:
        if w.id in definite:
            base[w.off:w.off + w.n] = w.data
    covered = bytearray(SIZE)
    for off, data in svm:
        covered[off:off + len(data)] = b"\1" * len(data)
    view = hs.pread(SIZE, 0)
    went_in = went_out = 0
    for w in writes:
        if w.id not in maybe:
            continue
        idx = [i for i in range(w.off, w.off + w.n) if not covered[i]]
        if not idx:
            continue
        got = bytes(view[i] for i in idx)
        new = bytes(w.data[i - w.off] for i in idx)
        old = bytes(base[i] for i in idx)
        if got == new:
            base[w.off:w.off + w.n] = w.data
            went_in += 1
        elif got == old:
            went_out += 1
        else:
            bad = [i for i in idx if view[i] != base[i] and view[i] != w.data[i - w.off]]
            fail("round %d: a Primary write of %d bytes at %d, in flight at the last "
                 "checkpoint's call, shows in the Secondary's view neither entirely nor not "
                 "at all (%d bytes are neither old nor new, first at %s)" %
                 (r, w.n, w.off, len(bad), bad[:1]))
    expected = bytearray(base)
    for off, data in svm:
        expected[off:off + len(data)] = data

    def compare(got, what):
        if got == expected:
            return
        diffs = [i for i in range(SIZE) if got[i] != expected[i]]
        i = diffs[0]
        later = [w for w in writes if w.off <= i < w.off + w.n and w.id not in definite]
        fail("round %d (%s): %s differs from the last checkpoint + the Secondary VM's writes "
             "in %d bytes, first at %d (block %d of %d); it holds %s, expected %s, the initial "
             "contents are %s; %d Primary writes after that checkpoint cover the byte%s" %
             (r, mode, what, len(diffs), i, i // bs, bs, bytes(got[i:i + 8]).hex(),
              bytes(expected[i:i + 8]).hex(), initial[i:i + 8].hex(), len(later),
              " (the latest's data there: %s)" % later[-1].data[i - later[-1].off:][:8].hex()
              if later else ""))

    compare(view, "the Secondary's view before failover")
    S.colo("failover")
    st = S.status()
    if st["state"] != "failed-over":
        fail("round %d: after failover the Secondary's status is %s" % (r, st))
    with open(simg, "rb") as f:
        compare(f.read(), "the Secondary's image file after failover")
    compare(hs.pread(SIZE, 0), "the Secondary's export after failover")
    hs.shutdown()
    hs = hp = None  # libnbd closes a handle when it is freed
    run([TAPCTL, "destroy", "-p", S.pid, "-m", S.minor])
    print("round %d: block_size=%d, %d Primary writes, %d checkpoints completed (%d writes "
          "uncertain at the last: %d in, %d out), %d Secondary VM writes kept; killed %s%s: "
          "view and file == model" %
          (r, bs, len(writes), completed, len(maybe), went_in, went_out, len(svm),
           "; ".join(kill_why),
           "" if late_s is None else "; the Secondary's checkpoint after it exited %d" % late_s),
          flush=True)


T0 = time.monotonic()
modes = ["idle", "during_pckpt", "between", "during_sckpt"]
rng.shuffle(modes)
modes = (modes * (ROUNDS // 4 + 1))[:ROUNDS]
try:
    for r, mode in enumerate(modes):
        one_round(r, mode)
except (TestFailure, nbd.Error, subprocess.TimeoutExpired) as e:
    print("FAIL (seed=%d): %s" % (SEED, e), file=sys.stderr)
    print("events:", file=sys.stderr)
    for line in log[-30:]:
        print("  " + line, file=sys.stderr)
    sys.exit(1)
print("%d rounds in %.1f s" % (ROUNDS, time.monotonic() - T0))
PYEOF
	echo "tapdisk log ($TEST_DIR/tapdisk.log), last lines:" >&2
	tail -n 40 "$TEST_DIR/tapdisk.log" >&2 || true
	fail "the Secondary's file after kill -9 and failover differs from the model (seed=$seed)"
fi
echo "PASS: after kill -9 of the Primary the Secondary fails over to the last checkpoint (seed=$seed)"
