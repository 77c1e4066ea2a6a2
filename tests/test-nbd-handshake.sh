#!/usr/bin/env bash
# The fixed newstyle handshake, option by option, including the options we refuse.
source "$(dirname "$0")/functions.sh"

img=$TEST_DIR/disk.img
make_image "$img" 4M
vbd_create "$img"

PYTHONPATH="$top_srcdir/tests" "$PY" - "$VBD_SOCK" <<'PYEOF'
import struct, sys
from nbdraw import *

sock = sys.argv[1]
SIZE = 4 << 20

c = Conn(sock)
assert c.greeting() == 3, "server must offer FIXED_NEWSTYLE|NO_ZEROES"
# Options we do not implement: ERR_UNSUP, and the negotiation goes on.
for opt in (OPT_STARTTLS, OPT_EXTENDED_HEADERS, OPT_SET_META_CONTEXT, OPT_LIST_META_CONTEXT, 77):
    c.send_opt(opt, b"\x00" * 12)
    assert c.recv_opt_reply()[:2] == (opt, REP_ERR_UNSUP), opt
# LIST with data is invalid; without, it names the export.
c.send_opt(OPT_LIST, b"xx")
assert c.recv_opt_reply()[:2] == (OPT_LIST, REP_ERR_INVALID)
c.send_opt(OPT_LIST)
o, t, p = c.recv_opt_reply()
assert (o, t) == (OPT_LIST, REP_SERVER) and p == struct.pack(">I", 14) + b"tapdisk_client", p
assert c.recv_opt_reply() == (OPT_LIST, REP_ACK, b"")
# STRUCTURED_REPLY with data is invalid.
c.send_opt(OPT_STRUCTURED_REPLY, b"x")
assert c.recv_opt_reply()[:2] == (OPT_STRUCTURED_REPLY, REP_ERR_INVALID)
# Malformed INFO: the name length runs past the option.
c.send_opt(OPT_INFO, struct.pack(">I", 100) + b"abc")
assert c.recv_opt_reply()[:2] == (OPT_INFO, REP_ERR_INVALID)
# Malformed INFO: more info requests announced than sent.
c.send_opt(OPT_INFO, struct.pack(">IH", 0, 3) + struct.pack(">H", 3))
assert c.recv_opt_reply()[:2] == (OPT_INFO, REP_ERR_INVALID)
# A good INFO: export info and block sizes, and the negotiation stays open.
replies = c.go(opt=OPT_INFO, infos=(INFO_BLOCK_SIZE, INFO_NAME))
infos = dict((struct.unpack(">H", p[:2])[0], p[2:]) for t, p in replies if t == REP_INFO)
assert replies[-1] == (REP_ACK, b""), replies
size, tflags = struct.unpack(">QH", infos[INFO_EXPORT])
assert size == SIZE
assert tflags & 1 and tflags & 4 and tflags & 8, hex(tflags)   # HAS_FLAGS, FLUSH, FUA
assert not tflags & 2, "writable export flagged read-only"
assert struct.unpack(">III", infos[INFO_BLOCK_SIZE]) == (512, 4096, 64 << 20)
# An option longer than 64 KiB is read, dropped and refused; the negotiation goes on.
c.send_opt(OPT_GO, b"\x00" * (1 << 20))
assert c.recv_opt_reply()[:2] == (OPT_GO, REP_ERR_TOO_BIG)
c.send_opt(OPT_STRUCTURED_REPLY)
assert c.recv_opt_reply() == (OPT_STRUCTURED_REPLY, REP_ACK, b"")
# One longer than 16 MiB ends the connection at once: no real client sends one, and the
# server neither buffers nor waits for a gigabyte.
c.send_opt(OPT_GO, length=1 << 30)
assert c.is_closed(), "a 1 GiB option did not end the connection"

# GO ends the handshake; a request then works.
c = Conn(sock).negotiate()
c.request(CMD_READ, 0, 512, cookie=9)
assert c.reply(512) == (9, 0, bytes(512))
c.close()

# EXPORT_NAME, without NO_ZEROES: size, flags and 124 zero bytes.
c = Conn(sock)
c.greeting(client_flags=1)
c.send_opt(OPT_EXPORT_NAME, b"")
size, tflags = struct.unpack(">QH", c.recv_exact(10))
assert size == SIZE and c.recv_exact(124) == bytes(124)
c.request(CMD_READ, 0, 512, cookie=10)
assert c.reply(512) == (10, 0, bytes(512))
c.close()

# ABORT: acknowledged, then the server closes.
c = Conn(sock)
c.greeting()
c.send_opt(OPT_ABORT)
assert c.recv_opt_reply()[:2] == (OPT_ABORT, REP_ACK)
assert c.is_closed()

# Unknown client flags: the server must drop the connection.
c = Conn(sock)
c.greeting(client_flags=0x80)
assert c.is_closed(), "unknown client flags accepted"

# A client that sends a bad option magic is dropped.
c = Conn(sock)
c.greeting()
c.s.sendall(struct.pack(">QII", 0x1122334455667788, OPT_GO, 0))
assert c.is_closed(), "bad option magic accepted"
print("ok")
PYEOF
kill -0 "$VBD_PID" || fail "tapdisk died"
vbd_destroy "$VBD_PID" "$VBD_MINOR"
echo "PASS: handshake options, refusals and malformed options"
