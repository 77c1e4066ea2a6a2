#!/usr/bin/env bash
# Benchmark: NBD over TLS, tapdisk's TCP export against nbdkit's file plugin with the same
# credentials (--tls=require), on the same image (page cache on both sides: tap-ctl create -D,
# nbdkit's default).  Two parts:
#
#   nbdcopy   reads the whole image to null: and writes it back, over tapdisk with tls=none,
#             x509 and psk and over nbdkit with x509 and psk (nbdcopy opens 4 connections).
#   fio       the same fio jobs over one connection each (fio's NBD engine, libnbd): 4 KiB
#             random reads and writes at QD32, 1 MiB sequential writes at QD8, against
#             tapdisk with tls=none and x509 and nbdkit with x509.  libnbd in fio refuses the
#             URI's tls-certificates= (a local file), so fio runs as an unprivileged user
#             (nobody, when run as root) whose $HOME/.pki/libnbd holds the client's
#             certificates, where libnbd looks by default; fio cannot be given a PSK file.
#
# Runs are interleaved (round, workload, target) so that drift hits every target alike; ratios
# are the median of each round's ratio.  Prints medians, the ratio to tapdisk's tls=none and
# tapdisk/nbdkit with the same credentials (goal >= 1.0), and tapdisk's CPU ms per MiB.
# A benchmark, not a test: it asserts nothing.
#
#   bench/nbd-tls.sh [BUILD_DIR]     env: REPS=rounds (3), SIZE=image size (512M), DIR=work dir,
#                                         RUNTIME=seconds per fio run (5), FIO=0 to skip fio
set -euo pipefail

build=$(cd "${1:-.}" && pwd)
REPS=${REPS:-3}
SIZE=${SIZE:-512M}
RUNTIME=${RUNTIME:-5}
FIO=${FIO:-1}
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

median() { printf '%s\n' "$@" | sort -g | sed -n "$((($# + 1) / 2))p"; }
ratio() { echo "$1 / $2" | bc -l; }

# The servers, all on the one image, side by side.
declare -A URI
URI[tapdisk-none]="nbd://127.0.0.1:$(tapdisk_listen tls=none)"
URI[tapdisk-x509]="nbds://localhost:$(tapdisk_listen tls=x509 "tls_dir=$pki")/?tls-certificates=$pki"
URI[tapdisk-psk]="nbds://alice@127.0.0.1:$(tapdisk_listen tls=psk "tls_psk=$pki/keys.psk")/?tls-psk-file=$pki/keys.psk"
nbdkit_start --tls=require "--tls-certificates=$pki"
URI[nbdkit-x509]="nbds://localhost:$PORT/?tls-certificates=$pki"
nbdkit_start --tls=require "--tls-psk=$pki/keys.psk"
URI[nbdkit-psk]="nbds://alice@127.0.0.1:$PORT/?tls-psk-file=$pki/keys.psk"

# Part 1, nbdcopy: MiB/s of a whole read and a whole write per round; tapdisk's CPU ms/MiB.
declare -A READS WRITES CPUS
targets=(tapdisk-none tapdisk-x509 tapdisk-psk nbdkit-x509 nbdkit-psk)
mib=$(($(stat -c %s "$img") >> 20))
for round in $(seq "$REPS"); do
	for n in "${targets[@]}"; do
		c0=$(cpu_ms "$tpid")
		t0=$(date +%s.%N)
		nbdcopy "${URI[$n]}" null:
		t1=$(date +%s.%N)
		nbdcopy "$copy" "${URI[$n]}"
		t2=$(date +%s.%N)
		c1=$(cpu_ms "$tpid")
		READS[$n]+=" $(echo "$mib / ($t1 - $t0)" | bc -l)"
		WRITES[$n]+=" $(echo "$mib / ($t2 - $t1)" | bc -l)"
		[ "${n%%-*}" = tapdisk ] && CPUS[$n]+=" $(echo "($c1 - $c0) / (2 * $mib)" | bc -l)"
	done
	echo "  round $round: nbdcopy done" >&2
done
# per-round ratios of target A to target B, from lists "x1 x2 ..."
round_ratio() { # A_LIST B_LIST -> median of A[i]/B[i]
	local -a a b r=()
	read -ra a <<<"$1"
	read -ra b <<<"$2"
	for i in "${!a[@]}"; do r+=("$(ratio "${a[$i]}" "${b[$i]}")"); done
	median "${r[@]}"
}
echo
echo "nbdcopy, median of $REPS rounds (4 connections; ratios: medians of each round's)"
printf '%-14s %11s %11s %8s %8s %14s\n' target "read MiB/s" "write MiB/s" "r/none" "w/none" "tapdisk ms/MiB"
for n in "${targets[@]}"; do
	# shellcheck disable=SC2086  # lists of numbers
	printf '%-14s %11.0f %11.0f %8.2f %8.2f %14s\n' "$n" "$(median ${READS[$n]})" "$(median ${WRITES[$n]})" \
		"$(round_ratio "${READS[$n]}" "${READS[tapdisk-none]}")" \
		"$(round_ratio "${WRITES[$n]}" "${WRITES[tapdisk-none]}")" \
		"$([ -n "${CPUS[$n]:-}" ] && printf '%.2f' "$(median ${CPUS[$n]})" || echo -)"
done
for m in x509 psk; do
	printf 'tapdisk/nbdkit %s: read %.2f, write %.2f\n' "$m" \
		"$(round_ratio "${READS[tapdisk-$m]}" "${READS[nbdkit-$m]}")" \
		"$(round_ratio "${WRITES[tapdisk-$m]}" "${WRITES[nbdkit-$m]}")"
done

[ "$FIO" = 1 ] || exit 0
command -v fio >/dev/null || { echo "bench: fio is not installed: no fio part" >&2; exit 0; }

# Part 2, fio over one connection.  The client's credentials where libnbd looks for them.
fhome=$work/fio-home
mkdir -p "$fhome/.pki" "$work/fio-out"
cp -r "$pki" "$fhome/.pki/libnbd"
as_client=(env "HOME=$fhome")
if [ "$(id -u)" = 0 ]; then
	chmod 755 "$work"
	chown -R nobody: "$fhome" "$work/fio-out"
	as_client=(setpriv --reuid=nobody --regid=nogroup --clear-groups env "HOME=$fhome")
fi
declare -A FURI=(
	[tapdisk-none]=${URI[tapdisk-none]}
	[tapdisk-x509]=${URI[tapdisk-x509]%%/\?*}/
	[nbdkit-x509]=${URI[nbdkit-x509]%%/\?*}/
)
ftargets=(tapdisk-none tapdisk-x509 nbdkit-x509)
jobs=("randread 4k 32" "randwrite 4k 32" "write 1M 8")
declare -A RES FCPU
for round in $(seq "$REPS"); do
	for job in "${jobs[@]}"; do
		read -r rw bs qd <<<"$job"
		for n in "${ftargets[@]}"; do
			c0=$(cpu_ms "$tpid")
			"${as_client[@]}" fio --name=nbd-tls --ioengine=nbd --uri="${FURI[$n]}" --rw="$rw" \
				--bs="$bs" --iodepth="$qd" --runtime="$RUNTIME" --time_based --size="$SIZE" \
				--output-format=json --output="$work/fio-out/out.json" >/dev/null 2>&1 ||
				{ echo "bench: fio failed on $n" >&2; exit 1; }
			c1=$(cpu_ms "$tpid")
			read -r iops mibs <<<"$(python3 -c '
import json, sys
j = json.load(open(sys.argv[1]))["jobs"][0]
d = j["read"] if j["read"]["io_bytes"] else j["write"]
print(d["iops"], d["bw"] / 1024)' "$work/fio-out/out.json")"
			RES[$n,$job]+=" $([ "$bs" = 4k ] && echo "$iops" || echo "$mibs")"
			[ "${n%%-*}" = tapdisk ] && FCPU[$n,$job]+=" $(echo "($c1 - $c0) / ($mibs * $RUNTIME)" | bc -l)"
		done
	done
	echo "  round $round: fio done" >&2
done
echo
echo "fio's NBD engine, one connection, median of $REPS runs of ${RUNTIME} s (IOPS for 4k, MiB/s for 1M)"
printf '%-18s %12s %12s %12s %9s %15s %14s\n' workload tapdisk-none tapdisk-x509 nbdkit-x509 \
	"x509/none" "tapdisk/nbdkit" "x509 ms/MiB"
for job in "${jobs[@]}"; do
	read -r rw bs qd <<<"$job"
	# shellcheck disable=SC2086  # lists of numbers
	printf '%-18s %12.0f %12.0f %12.0f %9.2f %15.2f %14.2f\n' "$rw $bs QD$qd" \
		"$(median ${RES[tapdisk-none,$job]})" "$(median ${RES[tapdisk-x509,$job]})" \
		"$(median ${RES[nbdkit-x509,$job]})" \
		"$(round_ratio "${RES[tapdisk-x509,$job]}" "${RES[tapdisk-none,$job]}")" \
		"$(round_ratio "${RES[tapdisk-x509,$job]}" "${RES[nbdkit-x509,$job]}")" \
		"$(median ${FCPU[tapdisk-x509,$job]})"
done
