"""Random writes to one NBD export for a while, each also applied to a model file.

One write at a time (each acknowledged before the next), so the model is exactly what the
export must hold.  Used by test-colo-xen-e2e.sh while checkpoints run.

    colo_writer.py URI MODEL SECONDS SEED  -> prints the number of writes
"""
import random
import sys
import time

import nbd

uri, model, seconds, seed = sys.argv[1], sys.argv[2], float(sys.argv[3]), int(sys.argv[4])
rng = random.Random(seed)
h = nbd.NBD()
h.connect_uri(uri)
size = h.get_size()
n = 0
end = time.monotonic() + seconds
with open(model, "r+b") as f:
    while time.monotonic() < end:
        length = rng.choice([512, 4096, 65536, rng.randrange(1, 128) * 512])
        off = rng.randrange(0, (size - length) // 512 + 1) * 512
        data = rng.randbytes(length)
        h.pwrite(data, off)
        f.seek(off)
        f.write(data)
        n += 1
h.flush()
h.shutdown()
print(n)
