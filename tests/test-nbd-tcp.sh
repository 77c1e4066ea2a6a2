#!/usr/bin/env bash
# The export over TCP on loopback, asked for through tap-ctl, in plain text (tls=none).
source "$(dirname "$0")/functions.sh"
requires qemu-io

img=$TEST_DIR/disk.img
make_image "$img" 16M
vbd_create "$img"
bound=$("$TAPCTL" nbd-tcp -p "$VBD_PID" -m "$VBD_MINOR" -a 127.0.0.1:0 tls=none) || fail "nbd-tcp"
port=${bound##*:}
[ "${bound%:*}" = 127.0.0.1 ] && [ "$port" -gt 0 ] || fail "bad bound address: $bound"

qemu-io -f raw "nbd://127.0.0.1:$port" -c 'write -P 0x3c 0 1M' -c 'read -P 0x3c 0 1M' >/dev/null ||
	fail "qemu-io over TCP"
# The Unix socket sees the same disk.
qio -c 'read -P 0x3c 0 1M' >/dev/null || fail "TCP write not visible over the Unix socket"

# A port already in use is a clear error.
if out=$("$TAPCTL" nbd-tcp -p "$VBD_PID" -m "$VBD_MINOR" -a "127.0.0.1:$port" tls=none 2>&1); then
	fail "second listener on a used port succeeded"
fi
grep -qi "in use" <<<"$out" || fail "unclear error for a used port: $out"

vbd_destroy "$VBD_PID" "$VBD_MINOR"
echo "PASS: NBD over TCP on 127.0.0.1:$port"
