"""COLO control messages to tapdisk's control socket, for the colo benchmarks.

A COLO request (type 66) carries the minor and the verb ("checkpoint", "status", ...); the
reply is COLO_RSP (67) and then as many bytes of text as its length field says, or an error
with its message.  Used by bench/colo-xenstore.sh and bench/colo-pause.sh.
"""
import socket
import struct

MSG, COLO, COLO_RSP = 544, 66, 67


def send(ctl, pid, minor, verb):
    """Sends a COLO request to tapdisk PID; returns the connection to finish()."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect("%s/ctl%d" % (ctl, pid))
    s.sendall(struct.pack("=HH4x", COLO, minor) + verb.encode().ljust(MSG - 8, b"\0"))
    return s


def recv(s, n):
    out = b""
    while len(out) < n:
        b = s.recv(n - len(out))
        if not b:
            raise SystemExit("tapdisk closed the control connection")
        out += b
    return out


def finish(s, verb="checkpoint"):
    """Reads the reply of send(); exits with tapdisk's message if the request failed."""
    rsp = recv(s, MSG)
    mtype, = struct.unpack_from("=H", rsp, 0)
    if mtype != COLO_RSP:
        raise SystemExit("%s failed: %s" % (verb, rsp[12:268].split(b"\0")[0].decode()))
    length, = struct.unpack_from("=Q", rsp, 16)
    text = recv(s, length)
    s.close()
    return text
