"""Guest writes during a sync, aimed at the extents being copied.

    colo_sync_writer.py URI STOPFILE SEED follow|random [TAPCTL PID MINOR]

Writes random data (4 KiB to 256 KiB, sector-aligned) to the NBD export URI, one write at a
time, until STOPFILE exists, and prints the number of writes.  `random` writes anywhere.
`follow` reads the Primary's colo status every 20 ms and writes within 2 MiB of the sync's
progress (sync_done_bytes: the extents it reads next, in order), so that guest writes race
the copy's reads of the very same blocks.  The test then compares the Primary's disk with the
Secondary's, byte for byte.
"""
import json
import os
import random
import subprocess
import sys
import time

import nbd

uri, stop, seed, mode = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
rng = random.Random(seed)
h = nbd.NBD()
h.connect_uri(uri)
size = h.get_size()
target, looked, n = 0, 0.0, 0
while not os.path.exists(stop):
    if mode == "follow" and time.monotonic() - looked > 0.02:
        out = subprocess.run([sys.argv[5], "colo", "-p", sys.argv[6], "-m", sys.argv[7],
                              "status"], capture_output=True, text=True, check=True).stdout
        target, looked = json.loads(out)["sync_done_bytes"], time.monotonic()
    length = rng.randrange(8, 513) * 512
    if mode == "follow":
        off = min(target + rng.randrange(0, (2 << 20) // 512) * 512, size - length)
    else:
        off = rng.randrange(0, (size - length) // 512 + 1) * 512
    h.pwrite(rng.randbytes(length), off)
    n += 1
h.flush()
h.shutdown()
print(n)
