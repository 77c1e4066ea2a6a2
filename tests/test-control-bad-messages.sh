#!/usr/bin/env bash
# Malformed and unknown control messages get an error reply; tapdisk keeps serving.
source "$(dirname "$0")/functions.sh"

img=$TEST_DIR/disk.img
make_image "$img" 4M
vbd_create "$img"

"$PY" - "$BLKTAP_CONTROL_DIR/ctl$VBD_PID" "$VBD_MINOR" <<'PYEOF'
import socket, struct, sys
path, minor = sys.argv[1], int(sys.argv[2])
MSG = 544
ERROR, PID, PID_RSP, LIST, LIST_RSP, OPEN = 1, 3, 4, 19, 20, 7
EINVAL, ENODEV, EOPNOTSUPP = 22, 19, 95

def talk(raw, expect_reply=True):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(15)
    s.connect(path)
    s.sendall(raw)
    out = b""
    while len(out) < MSG:
        b = s.recv(MSG - len(out))
        if not b:
            break
        out += b
    s.close()
    return out

def msg(mtype, cookie=0, body=b""):
    return struct.pack("=HH4x", mtype, cookie) + body.ljust(MSG - 8, b"\0")

def error_of(reply):
    assert len(reply) == MSG, len(reply)
    mtype, = struct.unpack_from("=H", reply, 0)
    assert mtype == ERROR, "expected an ERROR reply, got type %d" % mtype
    err, = struct.unpack_from("=i", reply, 8)
    text = reply[12:12 + 256].split(b"\0")[0].decode()
    assert text, "error reply without a message"
    return err, text

assert error_of(talk(msg(999)))[0] == EINVAL
assert error_of(talk(msg(0)))[0] == EINVAL
assert error_of(talk(msg(LIST_RSP)))[0] == EINVAL      # a reply type sent as a request
assert error_of(talk(msg(OPEN, 4321, struct.pack("=III", 0, 0, 0) + b"aio:/nonexistent")))[0] == ENODEV
# An unterminated path fills the whole field.
body = struct.pack("=III", 0, 0, 0) + b"A" * 256 + struct.pack("=IH", 0, 0)
assert error_of(talk(msg(OPEN, minor, body)))[0] == EINVAL
# A flag we do not support.
body = struct.pack("=III", 0x400, 0, 0) + b"aio:/x".ljust(256, b"\0")
assert error_of(talk(msg(OPEN, minor, body)))[0] in (EOPNOTSUPP, 16), "encrypted open"
# A short message, then hang up: no reply, no crash.
assert talk(b"\x03\x00\x00", expect_reply=False) == b""
# The control socket still answers properly.
r = talk(msg(PID))
assert struct.unpack_from("=H", r, 0)[0] == PID_RSP
print("ok")
PYEOF
kill -0 "$VBD_PID" || fail "tapdisk died"
qio -c 'write -P 1 0 4k' -c 'read -P 1 0 4k' >/dev/null || fail "VBD stopped serving"
vbd_destroy "$VBD_PID" "$VBD_MINOR"
echo "PASS: bad control messages get error replies"
