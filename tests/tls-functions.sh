# shellcheck shell=bash
# Certificates and keys made in the test run, with certtool (gnutls-bin), in the layout QEMU
# and nbdkit use.  Sourced after functions.sh; tls_pki_init sets PKI.

# tls_pki_init: $TEST_DIR/pki, with a log for certtool's chatter.
tls_pki_init() {
	PKI=$TEST_DIR/pki
	mkdir -p "$PKI"
}

# ct ARGS...: certtool, quietly: its chatter goes to a log that fail does not need.
ct() { certtool "$@" >>"$PKI/certtool.log" 2>&1 || fail "certtool $*"; }

# make_ca DIR NAME: DIR/ca-key.pem and DIR/ca-cert.pem.
make_ca() {
	ct --generate-privkey --key-type=ecdsa --outfile "$1/ca-key.pem"
	printf 'cn = %s\nca\ncert_signing_key\nexpiration_days = 2\n' "$2" >"$1/ca.info"
	ct --generate-self-signed --load-privkey "$1/ca-key.pem" --template "$1/ca.info" \
		--outfile "$1/ca-cert.pem"
}

# make_cert CA-DIR OUT-DIR ROLE TEMPLATE-LINES: OUT-DIR/ROLE-key.pem (0600) and -cert.pem.
make_cert() {
	local ca=$1 out=$2 role=$3
	ct --generate-privkey --key-type=ecdsa --outfile "$out/$role-key.pem"
	chmod 600 "$out/$role-key.pem"
	printf '%b' "$4" >"$out/$role.info"
	ct --generate-certificate --load-privkey "$out/$role-key.pem" \
		--load-ca-certificate "$ca/ca-cert.pem" --load-ca-privkey "$ca/ca-key.pem" \
		--template "$out/$role.info" --outfile "$out/$role-cert.pem"
}
