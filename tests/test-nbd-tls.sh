#!/usr/bin/env bash
# NBD over TLS on TCP (STARTTLS): X.509 and PSK credentials made here with certtool and
# psktool, real clients (nbdcopy, nbdinfo, qemu-img, qemu-io), and the refusals: no tls=
# option, a plain client, a wrong PSK, a certificate of another CA, a key file of mode 0644.
source "$(dirname "$0")/functions.sh"
requires certtool
requires psktool
requires nbdcopy
requires nbdinfo
requires qemu-img
requires qemu-io
log_tapdisks nbd

source "$(dirname "$0")/tls-functions.sh"
tls_pki_init
pki=$PKI
srv=$pki/server # the server's directory, as for QEMU's tls-creds-x509 endpoint=server
cli=$pki/client # the client's, as for libnbd's tls-certificates= and QEMU endpoint=client
other=$pki/other # a client whose certificate another CA signed
mkdir -p "$srv" "$cli" "$other"

step "credentials: a CA, a server and a client certificate, PSK files"
make_ca "$pki" "blktap-colo test CA"
make_cert "$pki" "$srv" server \
	'cn = localhost\ndns_name = localhost\nip_address = 127.0.0.1\ntls_www_server\nsigning_key\nexpiration_days = 2\n'
make_cert "$pki" "$cli" client 'cn = client\ntls_www_client\nsigning_key\nexpiration_days = 2\n'
cp "$pki/ca-cert.pem" "$srv/" && cp "$pki/ca-cert.pem" "$cli/"
mkdir -p "$pki/otherca"
make_ca "$pki/otherca" "another CA"
make_cert "$pki/otherca" "$other" client 'cn = intruder\ntls_www_client\nsigning_key\nexpiration_days = 2\n'
cp "$pki/ca-cert.pem" "$other/" # trusts our server, but its own certificate is from elsewhere
psk=$pki/psk
mkdir -p "$psk" "$pki/wrongpsk"
psktool -u alice -p "$psk/keys.psk" >/dev/null || fail "psktool"
psktool -u alice -p "$pki/wrongpsk/keys.psk" >/dev/null || fail "psktool"
[ "$(stat -c %a "$psk/keys.psk")" = 600 ] || fail "psktool made $(stat -c %a "$psk/keys.psk")"

img=$TEST_DIR/disk.img
make_image "$img" 16M
vbd_create "$img"

# listen OPTIONS...: a TCP listener with the options; sets PORT.
listen() {
	local bound
	bound=$("$TAPCTL" nbd-tcp -p "$VBD_PID" -m "$VBD_MINOR" -a 127.0.0.1:0 "$@") ||
		fail "nbd-tcp $*"
	PORT=${bound##*:}
}

# expect_tapctl_error LINE OPTIONS...: nbd-tcp with OPTIONS fails with exactly LINE.
expect_tapctl_error() {
	local line=$1 out rc=0
	shift
	out=$("$TAPCTL" nbd-tcp -p "$VBD_PID" -m "$VBD_MINOR" -a 127.0.0.1:0 "$@" 2>&1) || rc=$?
	[ "$rc" != 0 ] || fail "nbd-tcp $* succeeded"
	[ "$out" = "$line" ] || fail "nbd-tcp $*: expected
    $line
got $out"
}

# expect_log TEXT: a line of the tapdisk's log has TEXT (waits: the log is written async).
expect_log() {
	for _ in $(seq 100); do
		grep -qF -- "$1" "$TAPLOG" && return 0
		sleep 0.1
	done
	fail "no log line with: $1"
}

step "TCP without a tls= option is refused: TLS is the default"
expect_tapctl_error "tap-ctl: nbd-tcp: nbd 127.0.0.1:0: TLS is required: give tls=x509 tls_dir=DIR, tls=psk tls_psk=FILE, or tls=none for plain text"
expect_tapctl_error "tap-ctl: nbd-tcp: nbd 127.0.0.1:0: tls=x509 needs tls_dir=DIR" tls=x509
expect_tapctl_error "tap-ctl: nbd-tcp: unknown option 'tls_bogus'" tls=none tls_bogus=1

step "X.509: nbdcopy writes and reads back 8 MiB byte for byte"
listen tls=x509 "tls_dir=$srv"
x509_port=$PORT
x509_uri="nbds://localhost:$x509_port/?tls-certificates=$cli"
make_image "$TEST_DIR/data" 8M 7
nbdcopy "$TEST_DIR/data" "$x509_uri" || fail "nbdcopy to $x509_uri"
nbdcopy "$x509_uri" "$TEST_DIR/back" || fail "nbdcopy from $x509_uri"
head -c 8M "$TEST_DIR/back" >"$TEST_DIR/back8"
same "$TEST_DIR/back8" "$TEST_DIR/data" "read back over TLS"
head -c 8M "$img" >"$TEST_DIR/img8"
same "$TEST_DIR/img8" "$TEST_DIR/data" "the image after a write over TLS"
expect_log "TLS1.3"

step "X.509: qemu-img info and qemu-io with tls-creds-x509"
x509_obj="tls-creds-x509,id=tls0,dir=$cli,endpoint=client"
x509_img="driver=raw,file.driver=nbd,file.server.type=inet,file.server.host=127.0.0.1,file.server.port=$x509_port,file.tls-creds=tls0"
out=$(qemu-img info --object "$x509_obj" --image-opts "$x509_img" 2>&1) ||
	fail "qemu-img info over TLS: $out"
grep -q "^virtual size: 16 MiB (16777216 bytes)$" <<<"$out" || fail "qemu-img info: $out"
QIO_OUT=$(qemu-io --object "$x509_obj" --image-opts "$x509_img" -c 'write -P 0x5a 9M 1M' \
	-c 'read -P 0x5a 9M 1M' 2>&1) || fail "qemu-io over TLS: $QIO_OUT"
grep -q "^read 1048576/1048576 bytes at offset 9437184$" <<<"$QIO_OUT" || fail "qemu-io: $QIO_OUT"
"$PY" -c 'import sys; d = open(sys.argv[1], "rb").read()[9 << 20:10 << 20]; sys.exit(d != b"\x5a" * (1 << 20))' "$img" ||
	fail "the image does not hold qemu-io's 0x5a at 9M"

step "a plain client gets NBD_REP_ERR_TLS_REQD and no data"
"$PY" - "$top_srcdir/tests" "$x509_port" <<'PYEOF' || fail "raw client against the TLS listener"
import struct, sys
sys.path.insert(0, sys.argv[1])
import nbdraw
TLS_REQD = (1 << 31) + 5
c = nbdraw.Conn(("127.0.0.1", int(sys.argv[2])))
c.greeting()
for opt in (nbdraw.OPT_GO, nbdraw.OPT_LIST, nbdraw.OPT_INFO, nbdraw.OPT_STRUCTURED_REPLY):
    data = struct.pack(">IH", 0, 0) if opt in (nbdraw.OPT_GO, nbdraw.OPT_INFO) else b""
    c.send_opt(opt, data)
    o, rep, payload = c.recv_opt_reply()
    assert (o, rep) == (opt, TLS_REQD), (opt, o, hex(rep), payload)
    assert payload == b"TLS is required: send STARTTLS first", payload
# EXPORT_NAME cannot carry an error: the connection is closed.
c.send_opt(nbdraw.OPT_EXPORT_NAME, b"")
assert c.is_closed()
# Plain text sent behind STARTTLS, before the handshake, must not pass for protected data.
c = nbdraw.Conn(("127.0.0.1", int(sys.argv[2])))
c.greeting()
c.s.sendall(struct.pack(">QII", nbdraw.IHAVEOPT, nbdraw.OPT_STARTTLS, 0) +
            struct.pack(">QII", nbdraw.IHAVEOPT, nbdraw.OPT_GO, 6) + struct.pack(">IH", 0, 0))
assert c.is_closed()
# Garbage instead of a ClientHello ends the connection.
c = nbdraw.Conn(("127.0.0.1", int(sys.argv[2])))
c.greeting()
c.send_opt(nbdraw.OPT_STARTTLS)
assert c.recv_opt_reply() == (nbdraw.OPT_STARTTLS, nbdraw.REP_ACK, b"")
c.s.sendall(b"GET / HTTP/1.0\r\n\r\n")
# The server says why in a TLS alert record (type 0x15), then closes.
first = c.s.recv(1)
assert first in (b"", b"\x15"), first
c.s.recv(4096)
assert c.is_closed()
print("TLS_REQD for GO, LIST, INFO, STRUCTURED_REPLY; EXPORT_NAME, data after STARTTLS, garbage closed")
PYEOF
expect_log "closed: data after STARTTLS, before the TLS handshake"
expect_log "closed: TLS handshake: An unexpected TLS packet was received."
rc=0
out=$(nbdinfo "nbd://127.0.0.1:$x509_port" 2>&1) || rc=$?
[ "$rc" != 0 ] || fail "nbdinfo without TLS succeeded: $out"
expect_eq "$(head -n 1 <<<"$out")" \
	"nbdinfo: nbd_opt_go: server replied with error to opt_go request: Operation not supported for the default export" \
	"nbdinfo without TLS"

step "X.509: a client certificate of another CA is refused"
rc=0
out=$(nbdinfo "nbds://localhost:$x509_port/?tls-certificates=$other" 2>&1) || rc=$?
[ "$rc" != 0 ] || fail "a certificate of another CA was accepted: $out"
expect_log "the peer's certificate is refused: The certificate is NOT trusted. The certificate issuer is unknown. (0 requests served"

step "X.509 with tls_verify_peer=1: a client without a certificate is refused"
listen tls=x509 "tls_dir=$srv" tls_verify_peer=1
mkdir -p "$pki/nocert" && cp "$pki/ca-cert.pem" "$pki/nocert/"
rc=0
out=$(nbdinfo --size "nbds://localhost:$PORT/?tls-certificates=$pki/nocert" 2>&1) || rc=$?
[ "$rc" != 0 ] || fail "a client without a certificate was accepted: $out"
expect_log "TLS handshake: Certificate is required."
out=$(nbdinfo --size "nbds://localhost:$PORT/?tls-certificates=$cli" 2>&1) ||
	fail "tls_verify_peer=1 with a client certificate: $out"
expect_eq "$out" 16777216 "nbdinfo --size with a client certificate"

step "PSK: nbdinfo, nbdcopy and qemu-img with the psktool file"
listen tls=psk "tls_psk=$psk/keys.psk"
psk_port=$PORT
psk_uri="nbds://alice@127.0.0.1:$psk_port/?tls-psk-file=$psk/keys.psk"
out=$(nbdinfo --size "$psk_uri" 2>&1) || fail "nbdinfo over TLS-PSK: $out"
expect_eq "$out" 16777216 "nbdinfo --size over TLS-PSK"
nbdcopy "$psk_uri" "$TEST_DIR/back-psk" || fail "nbdcopy from $psk_uri"
head -c 8M "$TEST_DIR/back-psk" >"$TEST_DIR/back-psk8"
same "$TEST_DIR/back-psk8" "$TEST_DIR/data" "read back over TLS-PSK"
psk_obj="tls-creds-psk,id=tls0,dir=$psk,username=alice,endpoint=client"
psk_img="driver=raw,file.driver=nbd,file.server.type=inet,file.server.host=127.0.0.1,file.server.port=$psk_port,file.tls-creds=tls0"
QIO_OUT=$(qemu-io --object "$psk_obj" --image-opts "$psk_img" -c 'read -P 0x5a 9M 1M' 2>&1) ||
	fail "qemu-io over TLS-PSK: $QIO_OUT"
expect_log "PSK user alice"

step "PSK: 400 writes and reads in flight at once (the export stalls at 128 and resumes)"
"$PY" - "$psk_uri" <<'PYEOF' || fail "a flood of requests over TLS"
import nbd, sys
h = nbd.NBD()
h.set_uri_allow_local_file(True)
h.connect_uri(sys.argv[1])
N, LEN = 400, 32768
for i in range(N):
    h.aio_pwrite(bytes([i % 251]) * LEN, i * LEN)
while h.aio_in_flight() > 0:
    h.poll(-1)
bufs = [nbd.Buffer(LEN) for _ in range(N)]
for i in range(N):
    h.aio_pread(bufs[i], i * LEN)
while h.aio_in_flight() > 0:
    h.poll(-1)
for i in range(N):
    assert bufs[i].to_bytearray() == bytes([i % 251]) * LEN, i
h.shutdown()
PYEOF
"$PY" -c '
import sys
d = open(sys.argv[1], "rb").read()
sys.exit(any(d[i * 32768:(i + 1) * 32768] != bytes([i % 251]) * 32768 for i in range(400)))' "$img" ||
	fail "the image does not hold the 400 writes"

step "PSK: a wrong key is refused"
rc=0
out=$(nbdinfo --size "nbds://alice@127.0.0.1:$psk_port/?tls-psk-file=$pki/wrongpsk/keys.psk" 2>&1) ||
	rc=$?
[ "$rc" != 0 ] || fail "a wrong PSK was accepted: $out"
expect_log "TLS handshake: An illegal parameter has been received. (0 requests served"

step "a key file of mode 0644 is refused, also for a listener already running"
chmod 644 "$srv/server-key.pem"
expect_tapctl_error "tap-ctl: nbd-tcp: nbd 127.0.0.1:0: $srv/server-key.pem: mode 0644 lets other users read the key: make it 0600 or 0400" tls=x509 "tls_dir=$srv"
rc=0
out=$(nbdinfo --size "$x509_uri" 2>&1) || rc=$?
[ "$rc" != 0 ] || fail "a key of mode 0644 was used: $out"
expect_log "STARTTLS refused: $srv/server-key.pem: mode 0644 lets other users read the key: make it 0600 or 0400"
chmod 600 "$srv/server-key.pem"
out=$(nbdinfo --size "$x509_uri" 2>&1) || fail "the key of mode 0600 again: $out"
expect_eq "$out" 16777216 "nbdinfo --size once the key is 0600 again"
chmod 640 "$psk/keys.psk"
expect_tapctl_error "tap-ctl: nbd-tcp: nbd 127.0.0.1:0: $psk/keys.psk: mode 0640 lets other users read the key: make it 0600 or 0400" tls=psk "tls_psk=$psk/keys.psk"
chmod 600 "$psk/keys.psk"

step "tls=none, asked for, serves plain text; the Unix socket is as it was"
listen tls=none
out=$(nbdinfo --size "nbd://127.0.0.1:$PORT" 2>&1) || fail "nbdinfo over tls=none: $out"
expect_eq "$out" 16777216 "nbdinfo --size over tls=none"
qio -c 'read -P 0x31 9830400 32k' >/dev/null || fail "the Unix socket" # the flood's block 300

vbd_destroy "$VBD_PID" "$VBD_MINOR"
echo "PASS: NBD over TLS (X.509 and PSK) with nbdcopy, nbdinfo, qemu-img and qemu-io"
