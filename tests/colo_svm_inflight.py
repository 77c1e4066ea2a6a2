#!/usr/bin/python3
"""
Secondary VM writes in flight at a failover, a checkpoint or a stop: run by
tests/test-colo-svm-inflight.sh.

Each case makes a fresh pair on 16 MiB images (pattern A on both), for every block size and
with the buffer in RAM or spilled, and checks exact bytes:

  failover-fill   many Secondary VM writes (partial blocks at unaligned offsets, so that each
                  needs a fill read of the rest of its block, whole blocks, multi-block runs
                  larger than 1 MiB, WRITE_ZEROES) issued together, then `failover` at once,
                  without waiting for them.  Every write must succeed and, after the
                  failover, be in the export and in the image file.
  failover-wb     a buffer of many blocks, then `failover` in the background while Secondary
                  VM writes keep coming before, during and after the write-back: every
                  acknowledged write is on the disk at the end.
  checkpoint-fill the Primary rewrites blocks and, while their forwards are applied,
                  Secondary VM partial writes to the same blocks are in flight at the
                  Primary's and the Secondary's checkpoints.  Afterwards the rest of each
                  block must be the new checkpoint (the Primary's data), never the old
                  contents that a fill read begun before the drop saw.
  stop-fill       Secondary VM partial writes in flight at `stop`: afterwards every block
                  outside their sectors is the checkpoint's, in the file and the export.

usage: colo_svm_inflight.py TAPCTL TEST_DIR [CASE...]
env:   ROUNDS (1): rounds per case and block size; SEED (1)
"""
import json
import os
import random
import sys
import time

import nbd

from colo_harness import (ColoControl, TestFailure, Vbd, connect, free_port, freeze, pump, thaw,
                          wait_cookies, wait_tapctl_sent)

TAPCTL, TEST_DIR = sys.argv[1], sys.argv[2]
CASES = sys.argv[3:] or ["failover-fill", "failover-wb", "checkpoint-fill", "stop-fill"]
ROUNDS = int(os.environ.get("ROUNDS") or 1)
SIZE = 64 << 20  # the flood of reads of the whole disk must outlast a command's round trip
SMALL = 8 << 20  # for the cases without a flood
BLOCK_SIZES = [512, 4096, 65536, 1 << 20]
rng = random.Random(int(os.environ.get("SEED") or 1))
counts = {}


def fail(msg):
    raise TestFailure(msg)


class Pair:
    def __init__(self, name, bs, spill, base, size=SIZE):
        base = base[:size]
        self.size = size
        self.pimg = os.path.join(TEST_DIR, name + "-p.img")
        self.simg = os.path.join(TEST_DIR, name + "-s.img")
        for p in (self.pimg, self.simg):
            with open(p, "wb") as f:
                f.write(base)
        opts = ["block_size=%d" % bs, "timeout=30000"]
        if spill:
            opts += ["ram_limit=1M", "spill=%s/%s.spill" % (TEST_DIR, name)]
        port = free_port()
        self.S = Vbd(TAPCTL, "colo:127.0.0.1:%d:%s" % (port, self.simg))
        self.P = Vbd(TAPCTL, "colo:127.0.0.1:%d:%s" % (port, self.pimg))
        self.S.colo("start", "secondary", *opts)
        # Both disks are made identical above: nothing to copy (and a sync would leave the
        # Secondary without a failover until the first checkpoint).
        self.P.colo("start", "primary", "sync=none",
                    *[o for o in opts if not o.startswith(("ram_limit=", "spill="))])
        self.hs = connect(self.S.sock, size)
        self.hp = connect(self.P.sock, size)

    def file(self):
        with open(self.simg, "rb") as f:
            return f.read()

    def close(self):
        for h in (self.hs, self.hp):
            h.shutdown()
        self.hs = self.hp = None
        self.S.destroy()
        self.P.destroy()


def compare(got, exp, what, bs):
    if got == exp:
        return
    chunks = [i for i in range(0, len(exp), 4096) if got[i:i + 4096] != exp[i:i + 4096]]
    first = chunks[0] + next(k for k in range(4096) if got[chunks[0] + k] != exp[chunks[0] + k])
    fail("%s: %d 4 KiB chunks differ, first at byte %d (block %d of %d bytes), last chunk at %d"
         % (what, len(chunks), first, first // bs, bs, chunks[-1]))


def svm_writes(bs, count):
    """Disjoint Secondary VM writes of every shape: (offset, data, zero)."""
    shapes = ["partial", "partial", "partial", "straddle", "whole", "big", "zero"]
    out, taken = [], []
    for i in range(count * 4):
        shape = shapes[i % len(shapes)]
        if shape == "partial":
            # 4 KiB at 3584 bytes into a big block; across two halves of 4 KiB blocks
            b = rng.randrange(0, SIZE // bs - 1)
            if bs > 4096:
                off, n = b * bs + 3584, 4096
            elif bs == 4096:
                off, n = b * bs + 2048, 4096
            else:
                off, n = b * bs, 512
        elif shape == "straddle":
            n = bs if bs >= 4096 else 1536
            off = rng.randrange(1, SIZE // bs) * bs - n // 2 // 512 * 512
        elif shape == "whole":
            n = bs * rng.randint(1, 2)
            off = rng.randrange(0, SIZE // bs - 2) * bs
        elif shape == "big":  # larger than 1 MiB, unaligned at both ends
            n = (1 << 20) + rng.randrange(1, 512) * 512
            off = rng.randrange(1, (SIZE - n) // 512 - 1) * 512
        else:  # WRITE_ZEROES, more than one 1 MiB piece, unaligned
            n = (1 << 20) + rng.randrange(1, 2048) * 512
            off = rng.randrange(1, (SIZE - n) // 512 - 1) * 512
        if off < 0 or off + n > SIZE or any(off < o + len(d) and o < off + n for o, d, _ in out):
            continue
        out.append((off, bytes(n) if shape == "zero" else rng.randbytes(n), shape == "zero"))
        if len(out) == count:
            break
    out.sort(key=lambda w: len(w[1]))  # the small ones reach the socket first
    return out


def issue(h, writes):
    cookies = []
    for off, data, zero in writes:
        if zero:
            cookies.append(h.aio_zero(len(data), off))
        else:
            cookies.append(h.aio_pwrite(data, off))
    return cookies


def frozen_command(vbd, handles, writes, command, before=None):
    """Sends @writes, then @command on a control connection tapdisk already reads, while
    tapdisk is stopped (after running @before): it reads both in one loop iteration, the
    writes first, before any disk I/O they need has even been submitted."""
    ctl = ColoControl(vbd.pid, vbd.minor)
    freeze(vbd.pid)
    try:
        if before:
            before()
        cookies = issue(handles[0], writes)
        pump(handles, 0)
        ctl.send(command)
    finally:
        thaw(vbd.pid)
    wait_cookies(handles, [(handles[0], c) for c in cookies])
    err, text = ctl.reply()
    ctl.close()
    if err:
        fail("%s failed with errno %d: %s" % (command, err, text))
    return text


def racing_command(vbd, h, bs, writes, command):
    """@command on the Secondary while the fill reads of @writes are in flight: tapdisk gets
    a flood of reads of its whole disk and then the writes at once (it is stopped while they
    are sent), so that the fill reads queue behind the flood; the command goes out as soon as
    the writes were issued (a whole-block write among them shows in buffer_blocks)."""
    ctl = ColoControl(vbd.pid, vbd.minor)
    used = {o // bs for o, d, _ in writes for o in range(o, o + len(d), 512)}
    free = next(b for b in range(SIZE // bs) if b not in used)
    sign = (free * bs, rng.randbytes(bs), False)
    before = json.loads(ctl.command("status")[1])["buffer_blocks"]
    freeze(vbd.pid)
    try:
        flood = [h.aio_pread(nbd.Buffer(8 << 20), off) for off in range(0, SIZE, 8 << 20)]
        cookies = issue(h, writes + [sign])
        pump([h], 0)
    finally:
        thaw(vbd.pid)
    deadline = time.monotonic() + 60
    while json.loads(ctl.command("status")[1])["buffer_blocks"] <= before:
        if time.monotonic() > deadline:
            fail("the Secondary VM's writes were not issued within 60 s")
        pump([h], 0)
    ctl.send(command)
    wait_cookies([h], [(h, c) for c in cookies + flood])
    err, text = ctl.reply()
    ctl.close()
    if err:
        fail("%s failed with errno %d: %s" % (command, err, text))
    return sign


def case_failover_fill(bs, spill, base, rnd):
    pr = Pair("ff-%d-%d-%d" % (bs, spill, rnd), bs, spill, base)
    exp = bytearray(base)
    # Some blocks in the buffer already: a Primary write forwarded and applied.
    data = rng.randbytes(3 * bs if bs < (1 << 20) else 512 << 10)
    pr.hp.pwrite(data, 5 * bs)
    pr.P.colo("checkpoint")  # waits until applied; the Secondary keeps epoch 1's buffer
    exp = bytearray(base)  # the Secondary's checkpoint is still base: no Secondary checkpoint
    writes = svm_writes(bs, 24)
    writes.append(racing_command(pr.S, pr.hs, bs, writes, "failover"))
    for off, d, _ in writes:
        exp[off:off + len(d)] = d
    st = pr.S.status()
    if st["state"] != "failed-over":
        fail("after failover the Secondary is %s" % st)
    compare(pr.hs.pread(SIZE, 0), exp, "failover-fill bs=%d spill=%d: the export" % (bs, spill),
            bs)
    pr.hs.flush()
    compare(pr.file(), exp, "failover-fill bs=%d spill=%d: the image file" % (bs, spill), bs)
    counts["failover-fill writes"] = counts.get("failover-fill writes", 0) + len(writes)
    pr.close()


def case_failover_wb(bs, spill, base, rnd):
    pr = Pair("fw-%d-%d-%d" % (bs, spill, rnd), bs, spill, base)
    exp = bytearray(base)
    # A buffer of 8 MiB of Secondary VM writes, so that the write-back takes a while.
    for off in range(0, 8 << 20, 1 << 20):
        d = rng.randbytes(1 << 20)
        pr.hs.pwrite(d, off)
        exp[off:off + len(d)] = d
    proc = pr.S.colo_async("failover")
    issued = 0
    pending = []
    # Writes keep coming, a few at a time, until the failover is over and then a bit more.
    after = None
    while True:
        if proc.poll() is not None and after is None:
            after = time.monotonic()
        if after is not None and time.monotonic() - after > 0.2:
            break
        ws = svm_writes(bs, 4)
        ws = [w for w in ws if not any(w[0] < o + len(d) and o < w[0] + len(w[1])
                                       for o, d, _ in [p[1] for p in pending])]
        for w, c in zip(ws, issue(pr.hs, ws)):
            pending.append((c, w))
            issued += 1
        pump([pr.hs], 0.002)
        still = []
        for c, w in pending:
            if pr.hs.aio_command_completed(c):
                off, d, _ = w
                exp[off:off + len(d)] = d
            else:
                still.append((c, w))
        pending = still
    wait_cookies([pr.hs], [(pr.hs, c) for c, _ in pending])
    for c, (off, d, _) in pending:
        exp[off:off + len(d)] = d
    out, err = proc.communicate(timeout=120)
    if proc.returncode:
        fail("failover-wb: failover exited %d: %s" % (proc.returncode, err.strip()))
    compare(pr.hs.pread(SIZE, 0), exp, "failover-wb bs=%d spill=%d: the export" % (bs, spill),
            bs)
    pr.hs.flush()
    compare(pr.file(), exp, "failover-wb bs=%d spill=%d: the image file" % (bs, spill), bs)
    counts["failover-wb writes"] = counts.get("failover-wb writes", 0) + issued
    pr.close()


def case_checkpoint_fill(bs, spill, base, rnd):
    pr = Pair("cf-%d-%d-%d" % (bs, spill, rnd), bs, spill, base, SMALL)
    ckpt = bytearray(base[:SMALL])
    for it in range(4):
        blocks = rng.sample(range(SMALL // bs), min(16, SMALL // bs))
        new = bytearray(ckpt)
        n = 512 if bs == 512 else min(4096, bs // 2)
        ws = [(b * bs + (bs - n if bs > 512 else 0), rng.randbytes(n), False) for b in blocks]
        pck = []

        def primary_side():
            # The Primary rewrites the blocks (its writes complete, their forwards queue for
            # the stopped Secondary), then asks for its checkpoint.
            for b in blocks:
                d = rng.randbytes(bs)
                pr.hp.pwrite(d, b * bs)
                new[b * bs:(b + 1) * bs] = d
            pck.append(pr.P.colo_async("checkpoint"))
            wait_tapctl_sent(pck[0])

        frozen_command(pr.S, [pr.hs], ws, "checkpoint", before=primary_side)
        pck = pck[0]
        out, err = pck.communicate(timeout=120)
        if pck.returncode:
            fail("the Primary's checkpoint exited %d: %s" % (pck.returncode, err.strip()))
        view = pr.hs.pread(SMALL, 0)
        # An in-flight write may be in the new epoch or not; the rest of its block is the
        # new checkpoint either way.
        exp = bytearray(new)
        for off, d, _ in ws:
            if view[off:off + len(d)] == d:
                exp[off:off + len(d)] = d
                counts["checkpoint-fill writes kept"] = counts.get(
                    "checkpoint-fill writes kept", 0) + 1
        compare(view, exp, "checkpoint-fill bs=%d spill=%d iteration %d: the Secondary's "
                "view after the checkpoint" % (bs, spill, it), bs)
        ckpt = new
        # Drop what the Secondary VM wrote: the next epoch starts from the checkpoint.
        pr.P.colo("checkpoint")
        pr.S.colo("checkpoint")
        compare(pr.hs.pread(SMALL, 0), ckpt, "checkpoint-fill bs=%d spill=%d iteration %d: "
                "the view after an empty checkpoint" % (bs, spill, it), bs)
    pr.close()


def case_stop_fill(bs, spill, base, rnd):
    pr = Pair("sf-%d-%d-%d" % (bs, spill, rnd), bs, spill, base)
    writes = svm_writes(bs, 24)
    writes.append(racing_command(pr.S, pr.hs, bs, writes, "stop"))
    # Each write is dropped with the buffer or, arriving after the stop, on the plain disk.
    got = pr.file()
    exp = bytearray(base)
    for off, d, _ in writes:
        if got[off:off + len(d)] == d:
            exp[off:off + len(d)] = d
    compare(got, exp, "stop-fill bs=%d spill=%d: the image file" % (bs, spill), bs)
    compare(pr.hs.pread(SIZE, 0), exp, "stop-fill bs=%d spill=%d: the export" % (bs, spill),
            bs)
    pr.close()


def main():
    base = random.Random(7).randbytes(SIZE)
    t0 = time.monotonic()
    for case in CASES:
        fn = globals()["case_" + case.replace("-", "_")]
        for bs in BLOCK_SIZES:
            for spill in (0, 1):
                for rnd in range(ROUNDS):
                    fn(bs, spill, base, rnd)
        print("PASS: %s, block sizes %s, RAM and spilled buffer, %d rounds each"
              % (case, BLOCK_SIZES, ROUNDS), flush=True)
    print("%.1f s; %s" % (time.monotonic() - t0,
                          ", ".join("%s %d" % kv for kv in sorted(counts.items()))))


if __name__ == "__main__":
    try:
        main()
    except (TestFailure, nbd.Error) as e:
        print("FAIL: %s" % e, file=sys.stderr)
        sys.exit(1)
