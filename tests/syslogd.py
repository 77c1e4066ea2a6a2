#!/usr/bin/python3
"""A syslog daemon for the tests: receives datagrams on a Unix socket and appends each to a file,
one line each, exactly as it came.

usage: syslogd.py SOCKET OUTPUT   (prints "ready" once it listens; stops on SIGTERM)
"""
import os
import signal
import socket
import sys

path, out = sys.argv[1], sys.argv[2]
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(path)
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
print("ready", flush=True)
with open(out, "ab", buffering=0) as f:
    while True:
        f.write(s.recv(65536) + b"\n")
