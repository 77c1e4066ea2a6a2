#!/usr/bin/env bash
# Malformed and out-of-range NBD requests: an exact error reply, the connection stays
# usable, no data changes.  A bad magic or a truncated request ends that connection only.
source "$(dirname "$0")/functions.sh"

img=$TEST_DIR/disk.img
make_image "$img" 4M
vbd_create "$img"

PYTHONPATH="$top_srcdir/tests" "$PY" - "$VBD_SOCK" "$img" <<'PYEOF'
import sys
from nbdraw import *

sock, img = sys.argv[1], sys.argv[2]
SIZE = 4 << 20

for structured in (False, True):
    c = Conn(sock).negotiate(structured)
    assert c.size == SIZE
    def expect(err, cmd, off=0, length=0, flags=0, payload=b"", read_len=0, what=""):
        c.request(cmd, off, length, flags, cookie=0xfeed, payload=payload)
        cookie, e, data = c.reply(read_len)
        assert cookie == 0xfeed, what
        assert e == err, "%s (structured=%s): expected error %d, got %d" % (what, structured, err, e)
        return data
    expect(EINVAL, CMD_READ, 100, 512, what="unaligned read offset")
    expect(EINVAL, CMD_READ, 0, 100, what="unaligned read length")
    expect(EINVAL, CMD_READ, SIZE, 512, what="read past the end")
    expect(EINVAL, CMD_READ, (1 << 64) - 512, 1024, what="read with offset+length overflowing")
    expect(EINVAL, CMD_READ, 0, (64 << 20) + 512, what="read larger than the max payload")
    expect(ENOSPC, CMD_WRITE, SIZE - 512, 1024, payload=b"\xee" * 1024, what="write past the end")
    expect(EINVAL, CMD_WRITE, 512, 100, payload=b"\xee" * 100, what="unaligned write")
    # An oversized write's payload is read and dropped, and the connection goes on.
    big = (64 << 20) + 4096
    c.request(CMD_WRITE, 0, big, cookie=0xb16)
    chunk = b"\xee" * (1 << 20)
    left = big
    while left:
        n = min(left, len(chunk))
        c.s.sendall(chunk[:n])
        left -= n
    cookie, e, _ = c.reply()
    assert (cookie, e) == (0xb16, EINVAL), (cookie, e)
    expect(EINVAL, 99, 0, 0, what="unknown command")
    expect(EINVAL, CMD_READ, 0, 512, flags=0x80, what="unknown command flag")
    expect(EINVAL, CMD_FLUSH, 512, 0, what="flush with an offset")
    expect(EINVAL, CMD_TRIM, SIZE, 512, what="trim past the end")
    expect(ENOSPC, CMD_WRITE_ZEROES, SIZE - 512, 4096, what="write-zeroes past the end")
    # Still usable: a real write and read at the same place.
    expect(0, CMD_WRITE, 8192, 4096, payload=b"\x42" * 4096, what="good write")
    data = expect(0, CMD_READ, 8192, 4096, read_len=4096, what="good read")
    assert data == b"\x42" * 4096
    expect(0, CMD_FLUSH, what="good flush")
    c.request(CMD_DISC)
    assert c.is_closed(), "DISC must close the connection"

# Nothing but the two good writes touched the image.
data = open(img, "rb").read()
assert data[8192:12288] == b"\x42" * 4096
assert data[:8192] == bytes(8192) and data[12288:] == bytes(SIZE - 12288), "a bad request changed data"

# A bad magic closes that connection; another one is unaffected.
good = Conn(sock).negotiate()
bad = Conn(sock).negotiate()
bad.request(CMD_READ, 0, 512, magic=0x12345678)
assert bad.is_closed(), "bad magic must close the connection"
# A truncated request followed by a hangup.
half = Conn(sock).negotiate()
half.s.sendall(b"\x25\x60\x95\x13\x00\x00")
half.close()
good.request(CMD_READ, 8192, 512, cookie=7)
assert good.reply(512) == (7, 0, b"\x42" * 512)
print("ok")
PYEOF
kill -0 "$VBD_PID" || fail "tapdisk died"
vbd_destroy "$VBD_PID" "$VBD_MINOR"
echo "PASS: bad NBD requests get exact errors; bad magic and truncation close one connection"
