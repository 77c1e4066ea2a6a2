#!/bin/bash
# The randomized model test (tests/colo_random.py) over a TLS link, a short slice per mode:
# tls=x509 with certificates made here by certtool, and tls=psk with a psktool file.  The
# harness adds COLO_TLS (and the Primary's COLO_TLS_PRIMARY) to every start.  SEED=n MODE=...
# KILL9=... TLS=x509|psk replays one run; STEPS (400) as in test-colo-random.sh.
source "$(dirname "$0")/functions.sh"
source "$(dirname "$0")/tls-functions.sh"
requires certtool
requires psktool
requires_python_nbd

log_tapdisks
: "${STEPS:=400}"
export STEPS

tls_pki_init
make_ca "$PKI" "blktap-colo test CA"
make_cert "$PKI" "$PKI" server \
	'cn = secondary.test\ndns_name = secondary.test\nip_address = 127.0.0.1\ntls_www_server\nsigning_key\nexpiration_days = 2\n'
make_cert "$PKI" "$PKI" client 'cn = primary.test\ntls_www_client\nsigning_key\nexpiration_days = 2\n'
psktool -u primary -p "$PKI/keys.psk" >/dev/null || fail "psktool"

run_one() { # TLS SEED MODE KILL9
	local tls=$1
	shift
	echo "TLS=$tls seed=$1 MODE=$2 KILL9=$3 (replay with TLS=$tls SEED=$1 MODE=$2 KILL9=$3)"
	case $tls in
	x509) export COLO_TLS="tls=x509 tls_dir=$PKI" COLO_TLS_PRIMARY="tls_name=secondary.test" ;;
	psk) export COLO_TLS="tls=psk tls_psk=$PKI/keys.psk" COLO_TLS_PRIMARY="tls_user=primary" ;;
	*) fail "TLS=$tls: expected x509 or psk" ;;
	esac
	make_image "$TEST_DIR/base.img" 8M "$1"
	if ! MODE=$2 KILL9=$3 "$PY" "$top_srcdir/tests/colo_random.py" "$TAPCTL" "$TEST_DIR" "$1"; then
		tail -n 40 "$TEST_DIR/tapdisk.log" >&2 || true
		fail "the colo model diverged over TLS (replay with TLS=$tls SEED=$1 MODE=$2 KILL9=$3)"
	fi
	grep -q "link to the Secondary: TLS1.3" "$TEST_DIR/tapdisk.log" ||
		fail "no TLS 1.3 link in the log"
}

if [ -n "${SEED:-}" ]; then
	run_one "${TLS:-x509}" "$SEED" "${MODE:-colo}" "${KILL9:-random}"
else
	run_one x509 "$(od -An -N4 -tu4 /dev/urandom | tr -d ' ')" colo always
	run_one psk "$(od -An -N4 -tu4 /dev/urandom | tr -d ' ')" ft never
fi
echo "PASS: random colo replication over TLS matches the model"
