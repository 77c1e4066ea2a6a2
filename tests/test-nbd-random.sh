#!/usr/bin/env bash
# Randomized, model-based: thousands of random writes, zeroes, trims, flushes and reads from
# two connections, with pauses in between, checked against a byte-array model after every
# read and, at the end, against the image file.  SEED=n replays a run.
source "$(dirname "$0")/functions.sh"
requires_python_nbd

seed=${SEED:-$RANDOM}
echo "seed $seed (replay with SEED=$seed)"
img=$TEST_DIR/disk.img
make_image "$img" 32M 3
vbd_create "$img"

"$PY" - "$VBD_URI" "$img" "$seed" "$TAPCTL" "$VBD_PID" "$VBD_MINOR" <<'PYEOF'
import nbd, random, subprocess, sys
uri, img, seed, tapctl, pid, minor = sys.argv[1:7]
rng = random.Random(int(seed))
STEPS = 6000
model = bytearray(open(img, "rb").read())
size = len(model)
conns = []
for _ in range(2):
    h = nbd.NBD()
    h.connect_uri(uri)
    conns.append(h)
assert conns[0].get_size() == size

def extent():
    # Mostly small, sometimes up to 1 MiB; always on 512-byte boundaries.
    n = rng.choice([1, 1, 2, 8, 8, 64, 256, 2048]) * 512
    off = rng.randrange(0, (size - n) // 512 + 1) * 512
    return off, n

def batch(step):
    """Up to 16 requests in flight at once on both connections, on disjoint extents."""
    picked = []
    for _ in range(16):
        off, n = extent()
        if all(off + n <= o or o + m <= off for o, m, _ in picked):
            picked.append((off, n, rng.random() < 0.5))
    pending = []
    for off, n, is_write in picked:
        h = rng.choice(conns)
        if is_write:
            data = rng.randbytes(n)
            buf = nbd.Buffer.from_bytearray(bytearray(data))
            pending.append((h, h.aio_pwrite(buf, off), off, n, data, None))
        else:
            buf = nbd.Buffer(n)
            pending.append((h, h.aio_pread(buf, off), off, n, None, buf))
    for h, cookie, off, n, data, buf in pending:
        while not h.aio_command_completed(cookie):
            h.poll(1)
        if buf is not None:
            assert buf.to_bytearray() == model[off:off + n], \
                "step %d: concurrent read %d@%d differs from the model" % (step, n, off)
    for h, cookie, off, n, data, buf in pending:
        if data is not None:
            model[off:off + n] = data

counts = {}
for step in range(STEPS):
    h = rng.choice(conns)
    op = rng.choices(["write", "read", "zero", "trim", "flush", "fua", "batch"],
                     [40, 40, 6, 4, 5, 5, 10])[0]
    counts[op] = counts.get(op, 0) + 1
    if op in ("write", "fua"):
        off, n = extent()
        data = rng.randbytes(n)
        h.pwrite(data, off, nbd.CMD_FLAG_FUA if op == "fua" else 0)
        model[off:off + n] = data
    elif op == "read":
        off, n = extent()
        got = h.pread(n, off)
        assert got == model[off:off + n], "step %d: read %d@%d differs from the model" % (step, n, off)
    elif op == "zero":
        off, n = extent()
        h.zero(n, off)
        model[off:off + n] = bytes(n)
    elif op == "trim":
        # Advisory here: the export keeps the data, which the model expects.
        off, n = extent()
        h.trim(n, off)
    elif op == "batch":
        batch(step)
    else:
        h.flush()
    if step % 500 == 499:
        subprocess.run([tapctl, "pause", "-p", pid, "-m", minor], check=True)
        subprocess.run([tapctl, "unpause", "-p", pid, "-m", minor], check=True)
for h in conns:
    h.flush()
    h.shutdown()
data = open(img, "rb").read()
assert data == bytes(model), "image file differs from the model"
print("%d operations" % STEPS, sorted(counts.items()), "match the model")
PYEOF
vbd_destroy "$VBD_PID" "$VBD_MINOR"
echo "PASS: random operations from two connections match the model (seed $seed)"
