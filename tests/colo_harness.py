"""
Shared pieces of the Python colo tests: VBDs made and driven with tap-ctl, libnbd handles,
and pumping asynchronous libnbd commands on several handles at once.
"""
import json
import os
import re
import select
import signal
import socket
import struct
import subprocess
import time

import nbd


class TestFailure(Exception):
    pass


def run(args, check=True, timeout=120):
    p = subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=timeout)
    if check and p.returncode:
        raise TestFailure("%s exited %d: %s" % (" ".join(map(str, args)), p.returncode,
                                                 p.stderr.strip()))
    return p


class Vbd:
    """A tapdisk VBD made with `tap-ctl create -a SPEC`, its NBD socket and colo commands."""

    def __init__(self, tapctl, spec):
        self.tapctl = tapctl
        out = run([tapctl, "create", "-a", spec]).stdout.strip()
        self.minor = int(out.rsplit("-", 1)[1])
        line = run([tapctl, "list", "-m", self.minor]).stdout
        m = re.search(r"pid=(\d+)", line)
        if not m:
            raise TestFailure("no pid for minor %d in %r" % (self.minor, line))
        self.pid = int(m.group(1))
        self.sock = "%s/nbd%d.%d" % (os.environ["BLKTAP_CONTROL_DIR"], self.pid, self.minor)
        self.spec = spec

    def colo_args(self, *args):
        return [self.tapctl, "colo", "-p", str(self.pid), "-m", str(self.minor), *args,
                *tls_words(args)]

    def colo(self, *args, check=True):
        return run(self.colo_args(*args), check=check)

    def colo_async(self, *args):
        return subprocess.Popen(self.colo_args(*args), stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)

    def status(self):
        return json.loads(self.colo("status").stdout)

    def start_again(self, *args, seconds=30):
        """`start` on a broken side: it answers EBUSY (16) while writes of the last run are
        still in flight, so retry that for @seconds."""
        deadline = time.monotonic() + seconds
        while True:
            r = self.colo("start", *args, check=False)
            if r.returncode != 16 or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        if r.returncode:
            raise TestFailure("start %s again exited %d: %s" % (args[0], r.returncode,
                                                               r.stderr.strip()))

    def destroy(self):
        run([self.tapctl, "destroy", "-p", self.pid, "-m", self.minor])


def tls_words(args):
    """The TLS options a start without tls= gets: functions.sh's colo_tls_words."""
    if not args or args[0] != "start" or any(a.startswith("tls=") for a in args):
        return []
    words = os.environ.get("COLO_TLS", "tls=none").split()
    if len(args) > 1 and args[1] == "primary":
        words += os.environ.get("COLO_TLS_PRIMARY", "").split()
    return words


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def connect(sock, size):
    h = nbd.NBD()
    h.connect_unix(sock)
    if h.get_size() != size:
        raise TestFailure("%s: export size %d, expected %d" % (sock, h.get_size(), size))
    return h


def pump(handles, timeout=0.005):
    """One round of the libnbd state machines of @handles, waiting at most @timeout."""
    rl, wl, by_fd = [], [], {}
    for h in handles:
        if h.aio_is_dead() or h.aio_is_closed():
            continue
        fd, d = h.aio_get_fd(), h.aio_get_direction()
        by_fd[fd] = h
        if d & nbd.AIO_DIRECTION_READ:
            rl.append(fd)
        if d & nbd.AIO_DIRECTION_WRITE:
            wl.append(fd)
    r, w, _ = select.select(rl, wl, [], timeout)
    for fd in r:
        by_fd[fd].aio_notify_read()
    for fd in w:
        by_fd[fd].aio_notify_write()


def wait_cookies(handles, pairs, seconds=120):
    """Pumps until every (handle, cookie) completed; a failed command raises nbd.Error."""
    deadline = time.monotonic() + seconds
    left = list(pairs)
    while left:
        left = [(h, c) for h, c in left if not h.aio_command_completed(c)]
        if not left:
            return
        if time.monotonic() > deadline:
            raise TestFailure("%d asynchronous commands did not complete within %d s"
                              % (len(left), seconds))
        pump(handles, 0.05)


def _proc_state(pid):
    with open("/proc/%d/stat" % pid) as f:
        return f.read().rsplit(")", 1)[1].split()[0]


def freeze(pid, seconds=60):
    """SIGSTOP @pid and wait until it is stopped: what is sent to it now queues in its
    sockets, and it sees all of it at once when thawed."""
    os.kill(pid, signal.SIGSTOP)
    deadline = time.monotonic() + seconds
    while _proc_state(pid) != "T":
        if time.monotonic() > deadline:
            raise TestFailure("process %d did not stop within %d s" % (pid, seconds))
        time.sleep(0.001)


def thaw(pid):
    os.kill(pid, signal.SIGCONT)


def wait_tapctl_sent(proc, seconds=60):
    """Waits until the tap-ctl process @proc has sent its request and waits for the reply
    (blocked in poll), or has exited."""
    deadline = time.monotonic() + seconds
    while proc.poll() is None:
        try:
            with open("/proc/%d/syscall" % proc.pid) as f:
                nr = f.read().split()[0]
            if nr in ("7", "271") and _proc_state(proc.pid) == "S":
                return
        except (OSError, IndexError):
            pass
        if time.monotonic() > deadline:
            raise TestFailure("tap-ctl did not send its request within %d s" % seconds)
        time.sleep(0.001)


class ColoControl:
    """A control connection of our own to a tapdisk, for COLO commands (docs/control-protocol.md).
    It is accepted and read by tapdisk once constructed, so a command sent on it while tapdisk
    is stopped is read in the same loop iteration as whatever else waits then."""

    MSG, ERROR, COLO, COLO_RSP = 544, 1, 66, 67

    def __init__(self, pid, minor):
        self.minor = minor
        self.s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.s.settimeout(120)
        self.s.connect("%s/ctl%d" % (os.environ["BLKTAP_CONTROL_DIR"], pid))
        self.command("status")

    def send(self, text):
        body = text.encode().ljust(self.MSG - 8, b"\0")
        self.s.sendall(struct.pack("=HH4x", self.COLO, self.minor) + body)

    def _recv(self, n):
        out = b""
        while len(out) < n:
            b = self.s.recv(n - len(out))
            if not b:
                raise TestFailure("tapdisk closed the control connection")
            out += b
        return out

    def reply(self):
        """(0, text) for COLO_RSP, (errno, sentence) for ERROR."""
        r = self._recv(self.MSG)
        mtype, = struct.unpack_from("=H", r, 0)
        if mtype == self.ERROR:
            err, = struct.unpack_from("=i", r, 8)
            return err, r[12:12 + 256].split(b"\0")[0].decode()
        if mtype != self.COLO_RSP:
            raise TestFailure("control reply of type %d" % mtype)
        length, = struct.unpack_from("=Q", r, 16)
        return 0, self._recv(length).decode()

    def command(self, text):
        self.send(text)
        return self.reply()

    def close(self):
        self.s.close()


def identical_pair(tapctl, test_dir, size, rng, tag=""):
    """Two image files of @size with the same random contents, a Secondary VBD on one and a
    Primary VBD on the other, for a free port, not started.  Returns (pimg, simg, port, S, P)."""
    initial = rng.randbytes(size)
    pimg, simg = "%s/p%s.img" % (test_dir, tag), "%s/s%s.img" % (test_dir, tag)
    for path in (pimg, simg):
        with open(path, "wb") as f:
            f.write(initial)
    port = free_port()
    S = Vbd(tapctl, "colo:127.0.0.1:%d:%s" % (port, simg))
    P = Vbd(tapctl, "colo:127.0.0.1:%d:%s" % (port, pimg))
    return pimg, simg, port, S, P
