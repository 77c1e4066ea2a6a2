#!/usr/bin/env bash
# Benchmark: NBD over TLS.  nbdcopy reads the whole image to null: and writes it back, over
# tapdisk's TCP export with tls=none, tls=x509 and tls=psk, and over nbdkit's file plugin
# with the same credentials (--tls=require), on the same image (page cache on both sides:
# tap-ctl create -D, nbdkit's default).  Prints the median MiB/s of REPS runs, the ratio to
# tapdisk's tls=none and to nbdkit with the same credentials, and tapdisk's CPU ms per MiB.
# A benchmark, not a test: it asserts nothing.
#
#   bench/nbd-tls.sh [BUILD_DIR]     env: REPS=runs (3), SIZE=image size (512M), DIR=work dir
set -euo pipefail

build=$(cd "${1:-.}" && pwd)
REPS=${REPS:-3}
SIZE=${SIZE:-512M}
for tool in nbdcopy nbdkit certtool psktool; do
	command -v "$tool" >/dev/null || { echo "bench: $tool is not installed" >&2; exit 1; }
done
[ -x "$build/tap-ctl" ] && [ -x "$build/tapdisk" ] || { echo "bench: build tapdisk first" >&2; exit 1; }

work=$(mktemp -d "${DIR:-/var/tmp}/nbd-tls-bench.XXXXXX")
export BLKTAP_CONTROL_DIR=$work/ctl TAPDISK=$build/tapdisk
mkdir -p "$BLKTAP_CONTROL_DIR"
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	for s in "$BLKTAP_CONTROL_DIR"/ctl*; do [ -S "$s" ] && kill "${s##*/ctl}" 2>/dev/null; done
	sleep 0.5
	rm -rf "$work"
}
trap cleanup EXIT

# Credentials as in docs/tap-ctl.md; one directory serves tapdisk, nbdkit and the client.
pki=$work/pki
mkdir -p "$pki"
(
	cd "$pki"
	certtool --generate-privkey --key-type=ecdsa --outfile ca-key.pem
	printf 'cn = bench CA\nca\ncert_signing_key\nexpiration_days = 2\n' >ca.info
	certtool --generate-self-signed --load-privkey ca-key.pem --template ca.info --outfile ca-cert.pem
	for role in server client; do
		certtool --generate-privkey --key-type=ecdsa --outfile $role-key.pem
		chmod 600 $role-key.pem
		printf 'cn = localhost\ndns_name = localhost\nip_address = 127.0.0.1\ntls_www_%s\nsigning_key\nexpiration_days = 2\n' \
			$role >$role.info
		certtool --generate-certificate --load-privkey $role-key.pem --load-ca-certificate ca-cert.pem \
			--load-ca-privkey ca-key.pem --template $role.info --outfile $role-cert.pem
	done
	psktool -u alice -p keys.psk
) >/dev/null 2>&1

img=$work/disk.img
head -c "$SIZE" /dev/urandom >"$img" 2>/dev/null || dd if=/dev/urandom of="$img" bs=1M count="${SIZE%M}" status=none
copy=$work/copy.img
cp "$img" "$copy"

free_port() {
	python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

dev=$("$build/tap-ctl" create -D -a "aio:$img")
minor=${dev##*-}
tpid=$("$build/tap-ctl" list -m "$minor" | sed -n 's/^pid=\([0-9]*\) .*/\1/p')
tapdisk_listen() { # options... -> URI port
	local b
	b=$("$build/tap-ctl" nbd-tcp -p "$tpid" -m "$minor" -a 127.0.0.1:0 "$@")
	echo "${b##*:}"
}

nbdkit_start() { # options... -> sets PORT (not in $(...): nbdkit stays in the background)
	PORT=$(free_port)
	nbdkit -f -i 127.0.0.1 -p "$PORT" "$@" file "$img" >>"$work/nbdkit.log" 2>&1 &
	pids+=($!)
	for _ in $(seq 100); do
		python3 -c "import socket; socket.create_connection(('127.0.0.1', $PORT), 1)" 2>/dev/null && return
		sleep 0.1
	done
	echo "bench: nbdkit did not start: $(cat "$work/nbdkit.log")" >&2
	exit 1
}

cpu_ms() { # pid -> user+system ms
	awk -v hz="$(getconf CLK_TCK)" '{ printf "%d\n", ($14 + $15) * 1000 / hz }' "/proc/$1/stat"
}

# run NAME URI [PID]: median MiB/s of reads and writes; CPU ms per MiB of PID if given.
declare -A READ WRITE CPU
run() {
	local name=$1 uri=$2 pid=${3:-} r w t0 t1 c0 c1 mib reads=() writes=() cpus=()
	mib=$(($(stat -c %s "$img") >> 20))
	for _ in $(seq "$REPS"); do
		[ -n "$pid" ] && c0=$(cpu_ms "$pid")
		t0=$(date +%s.%N)
		nbdcopy "$uri" null:
		t1=$(date +%s.%N)
		reads+=("$(echo "$mib / ($t1 - $t0)" | bc -l)")
		t0=$(date +%s.%N)
		nbdcopy "$copy" "$uri"
		t1=$(date +%s.%N)
		writes+=("$(echo "$mib / ($t1 - $t0)" | bc -l)")
		if [ -n "$pid" ]; then
			c1=$(cpu_ms "$pid")
			cpus+=("$(echo "($c1 - $c0) / (2 * $mib)" | bc -l)")
		fi
	done
	median() { printf '%s\n' "$@" | sort -g | sed -n "$((($# + 1) / 2))p"; }
	READ[$name]=$(median "${reads[@]}")
	WRITE[$name]=$(median "${writes[@]}")
	CPU[$name]=$([ -n "$pid" ] && median "${cpus[@]}" || echo -)
}

run tapdisk-none "nbd://127.0.0.1:$(tapdisk_listen tls=none)" "$tpid"
run tapdisk-x509 "nbds://localhost:$(tapdisk_listen tls=x509 "tls_dir=$pki")/?tls-certificates=$pki" "$tpid"
run tapdisk-psk "nbds://alice@127.0.0.1:$(tapdisk_listen tls=psk "tls_psk=$pki/keys.psk")/?tls-psk-file=$pki/keys.psk" "$tpid"
nbdkit_start --tls=require "--tls-certificates=$pki"
run nbdkit-x509 "nbds://localhost:$PORT/?tls-certificates=$pki"
nbdkit_start --tls=require "--tls-psk=$pki/keys.psk"
run nbdkit-psk "nbds://alice@127.0.0.1:$PORT/?tls-psk-file=$pki/keys.psk"

printf '%-14s %10s %10s %8s %8s %12s\n' target "read MiB/s" "write MiB/s" "r/none" "w/none" "tapdisk ms/MiB"
for n in tapdisk-none tapdisk-x509 tapdisk-psk nbdkit-x509 nbdkit-psk; do
	printf '%-14s %10.0f %10.0f %8.2f %8.2f %12s\n' "$n" "${READ[$n]}" "${WRITE[$n]}" \
		"$(echo "${READ[$n]} / ${READ[tapdisk-none]}" | bc -l)" \
		"$(echo "${WRITE[$n]} / ${WRITE[tapdisk-none]}" | bc -l)" \
		"$([ "${CPU[$n]}" = - ] && echo - || printf '%.2f' "${CPU[$n]}")"
done
for m in x509 psk; do
	printf 'tapdisk/nbdkit %s: read %.2f, write %.2f\n' "$m" \
		"$(echo "${READ[tapdisk-$m]} / ${READ[nbdkit-$m]}" | bc -l)" \
		"$(echo "${WRITE[tapdisk-$m]} / ${WRITE[nbdkit-$m]}" | bc -l)"
done
