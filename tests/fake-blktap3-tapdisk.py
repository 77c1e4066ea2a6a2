#!/usr/bin/python3
"""A stand-in for blktap3 v4.0.8's tapdisk on a control socket, for tap-ctl tests.

    fake-blktap3-tapdisk.py DIR LOG MINOR:STATE:ARGS...

Serves blktap3's message layout (544 bytes on x86_64), one request per connection as
blktap3's tap-ctl sends them: PID, LIST, STATS of one minor, RESUME.  Every request is logged
to LOG, one line each, so that a test can check what tap-ctl sent.  A STATS of every VBD
(cookie 0xffff) gets no reply, as the connection of a crashed tapdisk.  Prints, once
listening on DIR/ctl<its pid>, "ready <pid>"; exits on SIGTERM.
"""
import os
import socket
import struct
import sys

MSG = 544
UNION = 8
ERROR, PID, PID_RSP, RESUME, RESUME_RSP = 1, 3, 4, 11, 12
LIST, LIST_RSP, STATS, STATS_RSP = 19, 20, 21, 22
EINVAL = 22


def cstr(raw, off, size):
    return raw[off:off + size].split(b"\0")[0].decode(errors="replace")


def reply(mtype, cookie, body=b""):
    return struct.pack("=HH4x", mtype, cookie) + body.ljust(MSG - UNION, b"\0")


def serve(conn, pid, vbds, log):
    raw = b""
    while len(raw) < MSG:
        b = conn.recv(MSG - len(raw))
        if not b:
            return
        raw += b
    mtype, cookie = struct.unpack_from("=HH", raw, 0)
    if mtype == PID:
        log.write("pid\n")
        conn.sendall(reply(PID_RSP, cookie, struct.pack("=i", pid)))
    elif mtype == LIST:
        log.write("list\n")
        count = len(vbds)
        for minor, state, args in vbds:
            body = struct.pack("=iii", count, minor, state) + args.encode().ljust(256, b"\0")
            conn.sendall(reply(LIST_RSP, cookie, body))
            count -= 1
        conn.sendall(reply(LIST_RSP, cookie, struct.pack("=iii", 0, -1, -1)))
    elif mtype == STATS:
        log.write("stats minor=%d\n" % cookie)
        names = {m: a for m, _, a in vbds}
        if cookie == 0xffff or cookie not in names:
            return
        text = ('{"name": "%s", "minor": %d}' % (names[cookie], cookie)).encode()
        conn.sendall(reply(STATS_RSP, cookie, struct.pack("=HH4xQ", STATS_RSP, cookie, len(text)))
                     + text)
    elif mtype == RESUME:
        # blktap3 reads the new image from the open parameters: flags, devnum, domid, path.
        flags, = struct.unpack_from("=I", raw, UNION)
        path = cstr(raw, UNION + 12, 256)
        log.write("resume minor=%d flags=%d path=%s\n" % (cookie, flags, path))
        conn.sendall(reply(RESUME_RSP, cookie))
    else:
        log.write("type %d\n" % mtype)
        conn.sendall(reply(ERROR, cookie, struct.pack("=i", EINVAL) + b"not in this fake"))


def main():
    pid, logpath = os.getpid(), sys.argv[2]
    path = os.path.join(sys.argv[1], "ctl%d" % pid)
    vbds = []
    for spec in sys.argv[3:]:
        minor, state, args = spec.split(":", 2)
        vbds.append((int(minor), int(state, 0), args))
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(path)
    srv.listen(8)
    print("ready %d" % pid, flush=True)
    with open(logpath, "a", buffering=1) as log:
        while True:
            conn, _ = srv.accept()
            with conn:
                serve(conn, pid, vbds, log)


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        os._exit(0)
