#!/usr/bin/env bash
# SIGTERM while writes are in flight: every write the client saw acknowledged is on disk,
# tapdisk exits, and its sockets are gone.
source "$(dirname "$0")/functions.sh"
requires_python_nbd

img=$TEST_DIR/disk.img
make_image "$img" 64M
vbd_create "$img"

"$PY" - "$VBD_URI" "$VBD_PID" "$img" <<'PYEOF'
import nbd, os, signal, sys, time
uri, pid, img = sys.argv[1], int(sys.argv[2]), sys.argv[3]
h = nbd.NBD()
h.connect_uri(uri)
N, SZ = 256, 64 * 1024
bufs = [nbd.Buffer.from_bytearray(bytearray([i % 251 + 1]) * SZ) for i in range(N)]
cookies = {}
for i in range(N):
    cookies[h.aio_pwrite(bufs[i], i * SZ)] = i
acked = []
killed = False
deadline = time.time() + 20
while cookies and time.time() < deadline:
    # SIGTERM lands once tapdisk is busy with the batch: after the first reply.
    if acked and not killed:
        os.kill(pid, signal.SIGTERM)
        killed = True
    try:
        h.poll(1)
    except nbd.Error:
        break
    for c in list(cookies):
        try:
            if h.aio_command_completed(c):
                acked.append(cookies.pop(c))
        except nbd.Error:
            cookies.pop(c)
data = open(img, 'rb').read()
for i in acked:
    assert data[i * SZ:(i + 1) * SZ] == bytes([i % 251 + 1]) * SZ, "acknowledged write %d lost" % i
print("acknowledged %d of %d writes, all on disk" % (len(acked), N))
assert killed, "no write completed, so SIGTERM was never sent"
PYEOF
wait_gone "$VBD_PID"
[ ! -e "$VBD_SOCK" ] || fail "NBD socket left behind"
[ ! -e "$BLKTAP_CONTROL_DIR/ctl$VBD_PID" ] || fail "control socket left behind"
echo "PASS: SIGTERM finished in-flight writes and removed the sockets"
