"""Randomized, model-based test of the colo driver driven through xenstore.

Called by test-colo-xenstore-random.sh, which has started a test xenstored and four colo VBDs
bound to xenstore: a Primary domain 1 and a Secondary domain 2, disks 51712 and 51728, each
Primary disk replicating to the Secondary disk of the same devid.  This script plays the
toolstack with Debian's xenstore-write/-read and a guest with libnbd, and keeps a model:

  primary[i]    what the Primary disk i holds (every acknowledged guest write)
  checkpoint[i] what it held at the last completed checkpoint
  svm[i]        the Secondary VM's writes since that checkpoint, in order
  last id, epoch, and the exact result every disk must show

Random steps: guest writes on the Primary, Secondary VM writes, checkpoints of both domains,
Secondary VM writes of every shape (inside a block at an unaligned offset, whole blocks, across
blocks, larger than 1 MiB, zeroes) in flight when the Secondary's checkpoint is requested,
replays of the current request, stale ids, malformed requests, unrelated nodes, coalesced
requests written while the Primary tapdisks are stopped, and xenstored killed and restarted
(with the next request written before the tapdisks are back).  After every step each disk's
result and epoch nodes must be exactly the model's; after every checkpoint the Secondary's
files must equal the Primary's.  At the end the Primary dies and the Secondary fails over
through xenstore, with Secondary VM writes in flight: its files must be the last checkpoint
plus the Secondary VM's writes, every acknowledged one included.

    colo_xs_random.py SEED STEPS STATE_JSON
STATE_JSON names the images, NBD URIs, tapdisk pids and the daemon's command line.
"""
import json
import os
import random
import signal
import subprocess
import sys
import time

import nbd

seed, steps, state_path = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
st = json.load(open(state_path))
rng = random.Random(seed)
DEVS = [51712, 51728]
DOM = {"p": 1, "s": 2}
SIZE = st["size"]
BS = st["block_size"]


def fail(msg):
    print("FAIL: step %d: %s (SEED=%d)" % (step, msg, seed), file=sys.stderr)
    sys.exit(1)


def xs_env():
    env = dict(os.environ)
    env["XENSTORED_PATH"] = st["xs_sock"]
    return env


def xs_write(path, value):
    for _ in range(200):
        if subprocess.run(["xenstore-write", "--", path, value], env=xs_env(),
                          stderr=subprocess.DEVNULL).returncode == 0:
            return
        time.sleep(0.05)
    fail("cannot write %s" % path)


def xs_read(path):
    r = subprocess.run(["xenstore-read", path], env=xs_env(), capture_output=True, text=True)
    return r.stdout.rstrip("\n") if r.returncode == 0 else None


def node(side, i, name):
    return xs_read("/local/domain/0/colo/%d/disks/%d/%s" % (DOM[side], DEVS[i], name))


def request(side, text):
    xs_write("/local/domain/0/colo/%d/request" % DOM[side], text)
    word = text.split(" ", 1)[0]
    if word.isdigit() and not word.startswith("0") and int(word) > seen[side]:
        seen[side] = int(word)


def wait_nodes(side, name, want, what, secs=15):
    end = time.monotonic() + secs
    while True:
        got = [node(side, i, name) for i in range(2)]
        if got == [want, want]:
            return
        if time.monotonic() > end:
            fail("%s: %s %s nodes are %r, expected %r" % (what, side, name, got, want))
        time.sleep(0.01)


def expect_quiet(what):
    """Nothing may change: results and epochs stay exactly the model's."""
    time.sleep(0.15)
    for side in "ps":
        for i in range(2):
            if node(side, i, "result") != result[side]:
                fail("%s: %s disk %d result %r, expected %r"
                     % (what, side, i, node(side, i, "result"), result[side]))
            if node(side, i, "epoch") != str(epoch):
                fail("%s: %s disk %d epoch %r, expected %d"
                     % (what, side, i, node(side, i, "epoch"), epoch))


def read_file(path):
    with open(path, "rb") as f:
        return f.read()


# ---- the model ----
primary = [bytearray(read_file(st["pimg"][i])) for i in range(2)]
checkpoint = [bytes(p) for p in primary]
svm = [[], []]  # (offset, bytes) in the order written
result = {"p": node("p", 0, "result"), "s": node("s", 0, "result")}
last_id = int(result["p"].split()[0])
seen = {"p": last_id, "s": last_id}  # the highest id each domain was sent
epoch = int(node("p", 0, "epoch"))
handles = {}


def h(side, i):
    if (side, i) not in handles:
        c = nbd.NBD()
        c.connect_uri(st["%suri" % side][i])
        handles[(side, i)] = c
    return handles[(side, i)]


def rand_extent():
    length = rng.choice([512, 4096, 65536, rng.randrange(1, 64) * 512])
    off = rng.randrange(0, (SIZE - length) // 512 + 1) * 512
    return off, length


def svm_writes_async(i, count):
    """Starts @count disjoint Secondary VM writes of every shape on disk @i; returns
    [(cookie, offset, data, zero)], zero for a WRITE_ZEROES."""
    ops = []
    for _ in range(count * 3):
        if len(ops) == count:
            break
        kind = rng.randrange(4)
        if kind == 0:  # inside one block at an unaligned offset: a fill read
            n = min(BS // 2, 4096) if BS > 512 else 512
            off = rng.randrange(SIZE // BS) * BS + rng.randrange(0, (BS - n) // 512 + 1) * 512
        elif kind == 1:  # whole blocks
            n = BS * rng.randint(1, max(1, min(4, (2 << 20) // BS)))
            off = rng.randrange(SIZE // BS - n // BS + 1) * BS
        elif kind == 2:  # larger than every piece size inside (1 MiB)
            n = rng.randrange(2 << 11, 5 << 11) * 512
            off = rng.randrange(0, (SIZE - n) // 512 + 1) * 512
        else:
            off, n = rand_extent()
        if any(off < o + len(d) and o < off + n for _, o, d, _ in ops):
            continue
        zero = rng.random() < 0.2
        if zero:
            data = bytes(n)
            cookie = h("s", i).aio_zero(n, off)
        else:
            data = rng.randbytes(n)
            cookie = h("s", i).aio_pwrite(data, off)
        ops.append((cookie, off, data, zero))
    return ops


def svm_wait(i, ops, secs=120):
    c = h("s", i)
    end = time.monotonic() + secs
    pending = {op[0] for op in ops}
    while True:
        # A completed command is retired by the call that reports it (an error raises).
        pending = {k for k in pending if not c.aio_command_completed(k)}
        if not pending:
            return
        if time.monotonic() > end:
            fail("Secondary VM writes on disk %d did not complete" % i)
        c.poll(1)


def checkpoint_done(want, what):
    """Both domains answered @want: the model takes the checkpoint, which the Secondary's
    files must now hold."""
    global checkpoint
    wait_nodes("s", "result", want, what)
    result["p"] = result["s"] = want
    checkpoint = [bytes(p) for p in primary]
    for i in range(2):
        svm[i].clear()
        if read_file(st["simg"][i]) != checkpoint[i]:
            fail("%s: the Secondary's disk %d differs from the model" % (what, i))


def do_checkpoint(what):
    global last_id, epoch
    last_id += 1
    epoch += 1
    want = "%d 0 epoch=%d" % (last_id, epoch)
    request("p", "%d checkpoint" % last_id)
    wait_nodes("p", "result", want, what)
    request("s", "%d checkpoint" % last_id)
    checkpoint_done(want, what)


def stop_primaries(sig):
    for pid in st["ppid"]:
        os.kill(pid, sig)
    if sig != signal.SIGSTOP:
        return
    # Every thread must be stopped before the requests go in.
    for pid in st["ppid"]:
        for _ in range(500):
            states = [open("/proc/%d/task/%s/stat" % (pid, t)).read().rsplit(")", 1)[1].split()[0]
                      for t in os.listdir("/proc/%d/task" % pid)]
            if all(s == "T" for s in states):
                break
            time.sleep(0.01)
        else:
            fail("tapdisk %d did not stop" % pid)


def restart_xenstored():
    pid = int(open(st["xs_pidfile"]).read())
    os.kill(pid, signal.SIGKILL)
    # Gone, or a zombie of the shell that started it: either way its socket is dead.
    while True:
        try:
            if open("/proc/%d/stat" % pid).read().rsplit(")", 1)[1].split()[0] == "Z":
                break
        except (FileNotFoundError, ProcessLookupError):  # reaped meanwhile
            break
        time.sleep(0.01)
    p = subprocess.Popen(st["xs_cmd"], stderr=open(st["xs_log"], "a"), start_new_session=True)
    open(st["xs_pidfile"], "w").write(str(p.pid))
    for _ in range(1000):
        if os.path.exists(st["xs_sock"]):
            return
        time.sleep(0.01)
    fail("xenstored did not come back")


counts = {}
for step in range(1, steps + 1):
    op = rng.choices(
        ["pwrite", "svmwrite", "checkpoint", "svm_racing", "replay", "stale", "malformed",
         "unrelated", "coalesce", "restart"],
        weights=[30, 8, 20, 6, 8, 5, 8, 4, 4, 3])[0]
    counts[op] = counts.get(op, 0) + 1
    if op == "pwrite":
        i = rng.randrange(2)
        off, length = rand_extent()
        data = rng.randbytes(length)
        h("p", i).pwrite(data, off)
        primary[i][off:off + length] = data
    elif op == "svmwrite":
        i = rng.randrange(2)
        off, length = rand_extent()
        data = rng.randbytes(length)
        h("s", i).pwrite(data, off)
        svm[i].append((off, data))
    elif op == "checkpoint":
        do_checkpoint("checkpoint")
    elif op == "svm_racing":
        # Secondary VM writes in flight at the Secondary's checkpoint: each block piece of
        # each is in the new epoch's view or not; the file is the new checkpoint either way.
        i = rng.randrange(2)
        last_id += 1
        epoch += 1
        want = "%d 0 epoch=%d" % (last_id, epoch)
        request("p", "%d checkpoint" % last_id)
        wait_nodes("p", "result", want, "checkpoint before racing writes")
        ops = svm_writes_async(i, rng.randint(1, 6))
        request("s", "%d checkpoint" % last_id)
        svm_wait(i, ops)
        checkpoint_done(want, "checkpoint racing Secondary VM writes")
        for _, off, data, zero in ops:
            pos = off
            while pos < off + len(data):
                # Cut at blocks, and a WRITE_ZEROES at its 1 MiB pieces (docs/colo.md).
                end = min(off + len(data), (pos // BS + 1) * BS)
                if zero:
                    end = min(end, off + ((pos - off) // (1 << 20) + 1) * (1 << 20))
                got = h("s", i).pread(end - pos, pos)
                if got != data[pos - off:end - off] and got != checkpoint[i][pos:end]:
                    fail("after a checkpoint racing it, the piece %d..%d of a Secondary VM "
                         "write of %d bytes at %d is neither the write nor the checkpoint"
                         % (pos, end, len(data), off))
                svm[i].append((pos, got))
                pos = end
    elif op == "replay":
        side = rng.choice("ps")
        request(side, "%d checkpoint" % seen[side])
        expect_quiet("replay of %d on %s" % (seen[side], side))
    elif op == "stale":
        side = rng.choice("ps")
        request(side, "%d %s" % (rng.randrange(1, seen[side] + 1),
                                 rng.choice(["checkpoint", "failover", "stop", "chekpoint"])))
        expect_quiet("stale request on %s" % side)
    elif op == "malformed":
        side = rng.choice("ps")
        kind = rng.randrange(3)
        if kind == 0:
            bad = rng.choice(["x%d" % last_id, "-%d" % last_id, "0", "0%d" % last_id, ""])
            request(side, "%s checkpoint" % bad)
            want = "0 22 malformed request '%s checkpoint': bad id '%s'" % (bad, bad)
        else:
            last_id += 1
            text, why = rng.choice([
                ("checkpoint now", "checkpoint takes no arguments (got 'now')"),
                ("status", "'status' is not a request (start, checkpoint, failover, stop)"),
                ("frob", "unknown colo command 'frob' (start, checkpoint, failover, stop, "
                         "status, xenstore)"),
                ("start primary block_size=3000",
                 "block_size=3000: must be a power of two from 512 to 1048576"),
            ])
            request(side, "%d %s" % (last_id, text))
            want = "%d 22 %s" % (last_id, why)
        wait_nodes(side, "result", want, "malformed request")
        result[side] = want
        expect_quiet("after a malformed request")
    elif op == "unrelated":
        side = rng.choice("ps")
        xs_write("/local/domain/0/colo/%d/note%d" % (DOM[side], rng.randrange(5)), str(step))
        expect_quiet("unrelated node")
    elif op == "coalesce":
        stop_primaries(signal.SIGSTOP)
        n = rng.randrange(1, 4)
        for k in range(n):
            last_id += 1
            request("p", "%d %s" % (last_id, rng.choice(["checkpoint", "chekpoint", "stop"])))
        last_id += 1
        request("p", "%d checkpoint" % last_id)
        stop_primaries(signal.SIGCONT)
        epoch += 1
        want = "%d 0 epoch=%d" % (last_id, epoch)
        wait_nodes("p", "result", want, "coalesced requests")
        request("s", "%d checkpoint" % last_id)
        checkpoint_done(want, "coalesced requests")
    elif op == "restart":
        restart_xenstored()
        if rng.randrange(2):
            do_checkpoint("checkpoint written as xenstored came back")
        else:
            time.sleep(1.2)
            expect_quiet("after xenstored came back")

# The end: a last few Primary writes that are never checkpointed, then the Primary dies.
for _ in range(3):
    i = rng.randrange(2)
    off, length = rand_extent()
    data = rng.randbytes(length)
    h("p", i).pwrite(data, off)
    primary[i][off:off + length] = data
for (side, i), c in list(handles.items()):
    if side == "p":
        c.shutdown()
        del handles[(side, i)]
stop_primaries(signal.SIGKILL)
# Acknowledged Secondary VM writes in flight as the failover is requested must all be on disk.
racing = [svm_writes_async(i, rng.randint(0, 6)) for i in range(2)]
last_id += 1
request("s", "%d failover" % last_id)
for i in range(2):
    svm_wait(i, racing[i])
    svm[i].extend((off, data) for _, off, data, _ in racing[i])
wait_nodes("s", "result", "%d 0 ok" % last_id, "failover")
wait_nodes("s", "state", "failed-over", "failover")
for i in range(2):
    want = bytearray(checkpoint[i])
    for off, data in svm[i]:
        want[off:off + len(data)] = data
    got = read_file(st["simg"][i])
    if got != bytes(want):
        first = next(k for k in range(len(got)) if got[k] != want[k])
        fail("after failover the Secondary's disk %d differs from the model at byte %d"
             % (i, first))
    view = h("s", i).pread(SIZE, 0)
    if view != bytes(want):
        fail("after failover the Secondary's view of disk %d differs from the model" % i)
for c in handles.values():
    c.shutdown()
print("%d steps, epoch %d, last id %d: %s" % (steps, epoch, last_id,
      ", ".join("%s %d" % kv for kv in sorted(counts.items()))))
