#!/usr/bin/env bash
# The replication link over TLS 1.3 (docs/colo.md "Securing the link"), with certificates made
# here by certtool and PSK files by psktool: a replicated pair over tls=x509 and tls=psk (bytes
# equal after a checkpoint and after a failover), then every refusal with its exact error on
# both sides and the Secondary's disk untouched: no client certificate, one of another CA, a
# wrong tls_name, an expired certificate, a wrong PSK, plain text against TLS both ways, garbage
# instead of a ClientHello, a key file of mode 0644.
source "$(dirname "$0")/functions.sh"
source "$(dirname "$0")/tls-functions.sh"
requires certtool
requires psktool
requires qemu-io
log_tapdisks colo

step "credentials: a CA, the Secondary's and the Primary's certificates, PSK files"
tls_pki_init
ok=$PKI/ok # both sides' files in one directory, as QEMU's layout allows
mkdir -p "$ok" "$PKI/nocert" "$PKI/other" "$PKI/otherca" "$PKI/expired" "$PKI/open"
make_ca "$PKI" "blktap-colo test CA"
make_cert "$PKI" "$ok" server \
	'cn = secondary.test\ndns_name = secondary.test\nip_address = 127.0.0.1\ntls_www_server\nsigning_key\nexpiration_days = 2\n'
make_cert "$PKI" "$ok" client 'cn = primary.test\ntls_www_client\nsigning_key\nexpiration_days = 2\n'
cp "$PKI/ca-cert.pem" "$ok/"
# A Primary without a certificate: it trusts our CA, and has nothing to show.
cp "$PKI/ca-cert.pem" "$PKI/nocert/"
# A Primary whose certificate another CA signed.
make_ca "$PKI/otherca" "another CA"
make_cert "$PKI/otherca" "$PKI/other" client 'cn = intruder\ntls_www_client\nsigning_key\nexpiration_days = 2\n'
cp "$PKI/ca-cert.pem" "$PKI/other/"
# A Primary whose certificate (from our CA) expired in 2020.
make_cert "$PKI" "$PKI/expired" client \
	'cn = primary.test\ntls_www_client\nsigning_key\nactivation_date = "2019-01-01 00:00:00"\nexpiration_date = "2020-01-01 00:00:00"\n'
cp "$PKI/ca-cert.pem" "$PKI/expired/"
# A Primary whose key file others may read.
cp -p "$ok"/* "$PKI/open/"
chmod 644 "$PKI/open/client-key.pem"
psktool -u primary -p "$PKI/keys.psk" >/dev/null || fail "psktool"
psktool -u primary -p "$PKI/wrong.psk" >/dev/null || fail "psktool"
[ "$(stat -c %a "$PKI/keys.psk")" = 600 ] || fail "psktool made mode $(stat -c %a "$PKI/keys.psk")"

X509="tls=x509 tls_dir=$ok"
PSK="tls=psk tls_psk=$PKI/keys.psk"

pimg=$TEST_DIR/p.img
simg=$TEST_DIR/s.img

# replicate MODE-WORDS PRIMARY-WORDS: a pair over TLS; writes, a checkpoint (both images equal),
# more writes, a failover (the Secondary's image holds exactly the checkpoint's bytes).
replicate() {
	make_image "$pimg" 16M 3
	cp "$pimg" "$simg"
	colo_pair_create "$pimg" "$simg"
	COLO_TLS=$1 COLO_TLS_PRIMARY=$2 colo_pair_start
	expect_status S link up
	expect_status P link up
	qio_cmds "$P_URI" -- 'write -P 0x11 0 1M' 'write -P 0x22 5M 64k' 'write -P 0x33 15M 4k' ||
		fail "writes on the Primary: $QIO_OUT"
	checkpoint_both 2
	same "$simg" "$pimg" "the Secondary's image after the checkpoint"
	cp "$pimg" "$TEST_DIR/ckpt.img"
	qio_cmds "$P_URI" -- 'write -P 0x44 2M 1M' || fail "writes after the checkpoint: $QIO_OUT"
	wait_applied
	colo S failover >/dev/null || fail "failover"
	expect_status S state failed-over
	same "$simg" "$TEST_DIR/ckpt.img" "the Secondary's image after the failover"
	colo_pair_destroy
}

step "tls=x509: replicated, checkpointed and failed over"
replicate "$X509" ""
expect_log() {
	grep -qF -- "$1" "$TAPLOG" || fail "no log line with: $1"
}
expect_log "link to the Primary at 127.0.0.1:"
expect_log "TLS1.3 AES-256-GCM, certificate CN=primary.test"
expect_log "link to the Secondary: TLS1.3 AES-256-GCM, certificate CN=secondary.test"

step "tls=psk: replicated, checkpointed and failed over"
replicate "$PSK" "tls_user=primary"
expect_log "PSK user primary"

step "tls=x509 with tls_name=secondary.test (the name in the Secondary's certificate)"
replicate "$X509" "tls_name=secondary.test"

# s_error: the Secondary's last_error without its "refused the Primary at 127.0.0.1:PORT: "
# (the Primary's port varies), or "(no such prefix) ..." to fail the comparison.
s_error() {
	local e
	e=$(colo_field S last_error)
	if [[ "$e" =~ ^refused\ the\ Primary\ at\ 127\.0\.0\.1:[0-9]+:\ (.*)$ ]]; then
		echo "${BASH_REMATCH[1]}"
	else
		echo "(no such prefix) $e"
	fi
}

# refused S-WORDS P-WORDS P-ERROR S-ERROR: the Primary's start fails with exactly P-ERROR (its
# last_error is "start: P-ERROR"), the Secondary's last_error is "refused the Primary at
# 127.0.0.1:PORT: S-ERROR" ("" for none) and it still listens, its disk untouched.
refused() {
	local out rc=0
	make_image "$pimg" 16M 3
	make_image "$simg" 16M 4
	cp "$simg" "$TEST_DIR/s.orig"
	colo_pair_create "$pimg" "$simg"
	# shellcheck disable=SC2086 # words without blanks
	colo S start secondary $1 || fail "start secondary $1"
	# shellcheck disable=SC2086
	out=$(colo P start primary $2 2>&1) || rc=$?
	[ "$rc" != 0 ] || fail "a Primary with $2 was accepted"
	expect_eq "$out" "tap-ctl: colo start: $3" "the Primary's error"
	expect_eq "$(colo_field P last_error)" "start: $3" "the Primary's last_error"
	expect_status P state idle
	if [ -n "$4" ]; then
		expect_eq "$(s_error)" "$4" "the Secondary's last_error"
	else
		expect_eq "$(colo_field S last_error)" "" "the Secondary's last_error"
	fi
	expect_status S state connecting
	expect_status S link listening
	expect_status S buffer_blocks 0
	qio_cmds "$P_URI" -- 'write -P 0x5a 0 64k' || fail "a write on the refused Primary: $QIO_OUT"
	same "$simg" "$TEST_DIR/s.orig" "the Secondary's image after the refusal"
	colo_pair_destroy
}

alert="TLS receive: A TLS fatal alert has been received."
refused_cert="the peer's certificate is refused: The certificate is NOT trusted."

step "refused: a Primary without a certificate"
refused "$X509" "tls=x509 tls_dir=$PKI/nocert" \
	"the Secondary ended the TLS session: $alert (Certificate is required)" \
	"TLS handshake: Certificate is required."

step "refused: a Primary whose certificate another CA signed"
refused "$X509" "tls=x509 tls_dir=$PKI/other" \
	"the Secondary ended the TLS session: $alert (CA is unknown)" \
	"$refused_cert The certificate issuer is unknown."

step "refused: a Secondary whose certificate does not bear tls_name"
refused "$X509" "$X509 tls_name=other.test" \
	"$refused_cert The name in the certificate does not match the expected." \
	"the Primary ended the TLS session: $alert (Certificate is bad)"

step "refused: an expired certificate"
refused "$X509" "tls=x509 tls_dir=$PKI/expired" \
	"the Secondary ended the TLS session: $alert (Certificate is expired)" \
	"$refused_cert The certificate chain uses expired certificate."

step "refused: a wrong PSK"
refused "$PSK" "tls=psk tls_psk=$PKI/wrong.psk tls_user=primary" \
	"TLS handshake: A TLS fatal alert has been received. (Illegal parameter) (is the PSK the same on both sides?)" \
	"TLS handshake: An illegal parameter has been received. (is the PSK the same on both sides?)"

step "keys are read again for every connection: a renewed PSK file applies without a restart"
make_image "$pimg" 16M 3
cp "$pimg" "$simg"
colo_pair_create "$pimg" "$simg"
install -m 0600 "$PKI/keys.psk" "$PKI/renewed.psk"
colo S start secondary tls=psk "tls_psk=$PKI/renewed.psk" || fail "start secondary"
rc=0
out=$(colo P start primary tls=psk "tls_psk=$PKI/wrong.psk" tls_user=primary 2>&1) || rc=$?
[ "$rc" != 0 ] || fail "a Primary with another key was accepted"
install -m 0600 "$PKI/wrong.psk" "$PKI/renewed.psk" # the Secondary's key renewed in place
colo P start primary tls=psk "tls_psk=$PKI/wrong.psk" tls_user=primary ||
	fail "the Primary with the renewed key, without restarting the Secondary"
qio_cmds "$P_URI" -- 'write -P 0x66 1M 1M' || fail "write: $QIO_OUT"
checkpoint_both 2
same "$simg" "$pimg" "the Secondary's image after the checkpoint"
colo_pair_destroy

step "refused: a plain-text Primary against a TLS Secondary, and the reverse"
refused "$X509" "tls=none" "the Secondary refused: the Primary uses tls=none, this Secondary tls=x509" \
	"the Primary uses tls=none, this Secondary tls=x509"
refused "$PSK" "tls=none" "the Secondary refused: the Primary uses tls=none, this Secondary tls=psk" \
	"the Primary uses tls=none, this Secondary tls=psk"
refused "tls=none" "$X509" "the Secondary refused: the Primary uses TLS, this Secondary tls=none" \
	"the Primary uses TLS, this Secondary tls=none"

step "refused: a key file of mode 0644, the Primary's or the Secondary's"
refused "$X509" "tls=x509 tls_dir=$PKI/open" \
	"TLS credentials: $PKI/open/client-key.pem: mode 0644 lets other users read the key: make it 0600 or 0400" ""
chmod 600 "$PKI/open/client-key.pem"
chmod 644 "$PKI/open/server-key.pem"
make_image "$simg" 16M 4
colo_vbd S "colo:127.0.0.1:$(free_port):$simg"
expect_error S 13 "tap-ctl: colo start: TLS credentials: $PKI/open/server-key.pem: mode 0644 lets other users read the key: make it 0600 or 0400" \
	start secondary tls=x509 "tls_dir=$PKI/open"
expect_status S state idle
colo_destroy S

step "options: TLS is required unless tls=none is asked for"
make_image "$simg" 16M 4
colo_vbd S "colo:127.0.0.1:$(free_port):$simg"
# Not through colo(), which adds tls=none to a start without tls=.
rc=0
out=$("$TAPCTL" colo -p "$S_PID" -m "$S_MINOR" start secondary timeout=1000 2>&1) || rc=$?
expect_eq "$rc/$out" "22/tap-ctl: colo start: TLS is required: give tls=x509 tls_dir=DIR, tls=psk tls_psk=FILE, or tls=none for plain text" \
	"a start without tls="
expect_error S 22 "tap-ctl: colo start: tls=none takes no tls_dir or tls_psk" start secondary tls=none tls_dir=/a
expect_error S 22 "tap-ctl: colo start: tls=x509 needs tls_dir=DIR" start secondary tls=x509
expect_error S 22 "tap-ctl: colo start: tls=psk takes no tls_dir" start secondary tls=psk tls_psk=/a tls_dir=/b
expect_error S 22 "tap-ctl: colo start: tls=tls13: expected none, x509 or psk" start secondary tls=tls13
expect_error S 22 "tap-ctl: colo start: tls_user is an option of the Primary, not of the Secondary" \
	start secondary tls=psk "tls_psk=$PKI/keys.psk" tls_user=primary
colo_destroy S

step "garbage instead of a ClientHello: refused, and the Secondary takes the right Primary next"
make_image "$pimg" 16M 3
cp "$pimg" "$simg"
colo_pair_create "$pimg" "$simg"
# shellcheck disable=SC2086
colo S start secondary $X509 || fail "start secondary"
# garbage BYTES S-ERROR: a client sends BYTES and gets nothing back (or a TLS alert).
garbage() {
	"$PY" - "$COLO_PORT" "$1" <<'PYEOF' || fail "the garbage client"
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=20)
try:
    s.sendall(sys.argv[2].encode().decode("unicode_escape").encode("latin-1"))
    s.shutdown(socket.SHUT_WR)
except OSError:  # the Secondary may close at the first byte
    pass
got = b""
while True:
    try:
        b = s.recv(4096)
    except ConnectionResetError:  # closed with our unread bytes in its buffer
        break
    if not b:
        break
    got += b
# Nothing of ours: at most a TLS alert record (type 0x15).
assert not got or got[0] == 0x15, got
PYEOF
	expect_eq "$(s_error)" "$2" "the Secondary's last_error after garbage"
	expect_status S link listening
}
garbage 'GET / HTTP/1.0\r\n\r\n' "not a TLS ClientHello (first byte 0x47)"
garbage '\x16\x03\x01\x00\x04ABCD' "TLS handshake: The TLS connection was non-properly terminated."
expect_status S buffer_blocks 0
# shellcheck disable=SC2086
colo P start primary $X509 || fail "the right Primary after the garbage"
qio_cmds "$P_URI" -- 'write -P 0x77 4M 1M' || fail "write: $QIO_OUT"
checkpoint_both 2
same "$simg" "$pimg" "the Secondary's image after the checkpoint"
colo_pair_destroy
echo "PASS: the link over TLS: replication, and every refusal with its reason on both sides"
