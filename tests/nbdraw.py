"""A raw NBD client for tests: speaks the wire protocol byte by byte, so tests can send
exactly the malformed handshakes and requests that real clients never would."""
import socket
import struct

NBDMAGIC = 0x4e42444d41474943
IHAVEOPT = 0x49484156454F5054
REPLY_MAGIC_OPT = 0x3e889045565a9
REQUEST_MAGIC = 0x25609513
SIMPLE_REPLY_MAGIC = 0x67446698
STRUCTURED_REPLY_MAGIC = 0x668e33ef

OPT_EXPORT_NAME, OPT_ABORT, OPT_LIST, OPT_STARTTLS = 1, 2, 3, 5
OPT_INFO, OPT_GO, OPT_STRUCTURED_REPLY = 6, 7, 8
OPT_LIST_META_CONTEXT, OPT_SET_META_CONTEXT, OPT_EXTENDED_HEADERS = 9, 10, 11
REP_ACK, REP_SERVER, REP_INFO = 1, 2, 3
REP_ERR_UNSUP = (1 << 31) + 1
REP_ERR_POLICY = (1 << 31) + 2
REP_ERR_INVALID = (1 << 31) + 3
REP_ERR_TOO_BIG = (1 << 31) + 9
INFO_EXPORT, INFO_NAME, INFO_DESCRIPTION, INFO_BLOCK_SIZE = 0, 1, 2, 3

CMD_READ, CMD_WRITE, CMD_DISC, CMD_FLUSH, CMD_TRIM = 0, 1, 2, 3, 4
CMD_CACHE, CMD_WRITE_ZEROES = 5, 6
FLAG_FUA, FLAG_NO_HOLE, FLAG_DF = 1, 2, 4
REPLY_TYPE_NONE, REPLY_TYPE_OFFSET_DATA = 0, 1
REPLY_TYPE_ERROR = (1 << 15) + 1

EPERM, EIO, EINVAL, ENOSPC, EOVERFLOW, ENOTSUP = 1, 5, 22, 28, 75, 95


class Closed(Exception):
    pass


class Conn:
    def __init__(self, path, timeout=10):
        if isinstance(path, tuple):
            self.s = socket.create_connection(path, timeout=timeout)
        else:
            self.s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.s.settimeout(timeout)
            self.s.connect(path)
        self.structured = False

    def recv_exact(self, n):
        out = bytearray()
        while len(out) < n:
            b = self.s.recv(n - len(out))
            if not b:
                raise Closed("server closed after %d of %d bytes" % (len(out), n))
            out += b
        return bytes(out)

    def is_closed(self):
        """True when the server has closed the connection (EOF or reset)."""
        try:
            return self.s.recv(1) == b""
        except (ConnectionResetError, BrokenPipeError):
            return True

    def greeting(self, client_flags=3):
        magic, opt, gflags = struct.unpack(">QQH", self.recv_exact(18))
        assert magic == NBDMAGIC and opt == IHAVEOPT, (hex(magic), hex(opt))
        self.s.sendall(struct.pack(">I", client_flags))
        return gflags

    def send_opt(self, opt, data=b"", length=None):
        n = len(data) if length is None else length
        self.s.sendall(struct.pack(">QII", IHAVEOPT, opt, n) + data)

    def recv_opt_reply(self):
        magic, opt, rtype, n = struct.unpack(">QIII", self.recv_exact(20))
        assert magic == REPLY_MAGIC_OPT, hex(magic)
        return opt, rtype, self.recv_exact(n)

    def go(self, name=b"", infos=(INFO_BLOCK_SIZE,), opt=OPT_GO):
        data = struct.pack(">I", len(name)) + name + struct.pack(">H", len(infos))
        data += b"".join(struct.pack(">H", i) for i in infos)
        self.send_opt(opt, data)
        replies = []
        while True:
            o, rtype, payload = self.recv_opt_reply()
            assert o == opt, (o, opt)
            replies.append((rtype, payload))
            if rtype != REP_INFO:
                return replies

    def negotiate(self, structured=False):
        self.greeting()
        if structured:
            self.send_opt(OPT_STRUCTURED_REPLY)
            assert self.recv_opt_reply() == (OPT_STRUCTURED_REPLY, REP_ACK, b"")
            self.structured = True
        replies = self.go()
        assert replies[-1][0] == REP_ACK, replies
        info = dict((struct.unpack(">H", p[:2])[0], p[2:]) for t, p in replies if t == REP_INFO)
        self.size, self.tflags = struct.unpack(">QH", info[INFO_EXPORT])
        return self

    def request(self, cmd, offset=0, length=0, flags=0, cookie=1, payload=b"",
                magic=REQUEST_MAGIC):
        hdr = struct.pack(">IHHQQI", magic, flags, cmd, cookie, offset, length)
        self.s.sendall(hdr + payload)

    def reply(self, read_len=0):
        """Returns (cookie, error, data) for one whole reply."""
        magic = struct.unpack(">I", self.recv_exact(4))[0]
        if magic == SIMPLE_REPLY_MAGIC:
            err, cookie = struct.unpack(">IQ", self.recv_exact(12))
            data = self.recv_exact(read_len) if (read_len and not err) else b""
            return cookie, err, data
        assert magic == STRUCTURED_REPLY_MAGIC, hex(magic)
        data, err = bytearray(), 0
        while True:
            flags, rtype, cookie, n = struct.unpack(">HHQI", self.recv_exact(16))
            payload = self.recv_exact(n)
            if rtype == REPLY_TYPE_OFFSET_DATA:
                data += payload[8:]
            elif rtype == REPLY_TYPE_ERROR:
                err = struct.unpack(">I", payload[:4])[0]
            elif rtype != REPLY_TYPE_NONE:
                raise AssertionError("unexpected chunk type %d" % rtype)
            if flags & 1:
                return cookie, err, bytes(data)
            magic = struct.unpack(">I", self.recv_exact(4))[0]
            assert magic == STRUCTURED_REPLY_MAGIC, hex(magic)

    def close(self):
        self.s.close()
