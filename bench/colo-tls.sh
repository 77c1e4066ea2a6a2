#!/usr/bin/env bash
# Benchmark: what TLS on the replication link costs.  Three replicated pairs side by side, on
# 127.0.0.1, alike but for the link: tls=none, tls=psk (a psktool key) and tls=x509
# (certificates made here by certtool).  fio's NBD engine writes through each Primary's export
# (1 MiB sequential writes at QD8, 4 KiB random writes at QD32); after every run a checkpoint
# (Primary, then Secondary) drains what the Primary had queued, and "incl. drain" divides the
# run's bytes by its time plus the Primary's checkpoint: the rate at which the writes reached
# the Secondary.  The runs are interleaved (rep, workload, mode) so that drift hits every mode
# alike; the ratios are the median of each round's ratio to tls=none (goal >= 0.9 for 1 MiB).
# CPU time (user + system) of each tapdisk, from /proc/PID/stat, through the checkpoint, per
# MiB written: the Primary's and the Secondary's.
#
# The Secondaries' images are in /dev/shm when it is writable (SHM=0: next to the Primaries'),
# so that their disk I/O does not hide the link's cost.  Asserts nothing.
#
#   bench/colo-tls.sh [BUILD_DIR]   env: RUNTIME=seconds per run (5), REPS=rounds (3),
#                                        SIZE=image size (512M), DIR=where the Primaries'
#                                        images live ($TMPDIR or /tmp), SHM=0|1 (1)
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=colo-lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/colo-lib.sh"

RUNTIME=${RUNTIME:-5}
REPS=${REPS:-3}
SIZE=${SIZE:-512M}
SHM=${SHM:-1}
bench_init "${1:-.}" fio certtool psktool
[ "$SHM" = 1 ] && ! { [ -d /dev/shm ] && [ -w /dev/shm ]; } && SHM=0

bench_workdir colo-tls-bench
sdir=$work
if [ "$SHM" = 1 ]; then
	sdir=$(mktemp -d /dev/shm/colo-tls-bench.XXXXXX)
	bench_dirs+=("$sdir")
fi
warn_tmpfs

# The credentials, as docs/colo.md "Securing the link" makes them (one directory for both).
pki=$work/pki
mkdir -p "$pki"
ct() { certtool "$@" >>"$pki/certtool.log" 2>&1; }
ct --generate-privkey --key-type=ecdsa --outfile "$pki/ca-key.pem"
printf 'cn = bench CA\nca\ncert_signing_key\nexpiration_days = 2\n' >"$pki/ca.info"
ct --generate-self-signed --load-privkey "$pki/ca-key.pem" --template "$pki/ca.info" \
	--outfile "$pki/ca-cert.pem"
for role in server client; do
	ct --generate-privkey --key-type=ecdsa --outfile "$pki/$role-key.pem"
	chmod 600 "$pki/$role-key.pem"
	printf 'cn = %s\ntls_www_%s\nsigning_key\nexpiration_days = 2\n' "$role" "$role" >"$pki/$role.info"
	ct --generate-certificate --load-privkey "$pki/$role-key.pem" \
		--load-ca-certificate "$pki/ca-cert.pem" --load-ca-privkey "$pki/ca-key.pem" \
		--template "$pki/$role.info" --outfile "$pki/$role-cert.pem"
done
psktool -u bench -p "$pki/keys.psk" >/dev/null

modes=(none psk x509)
declare -A uri pids P S tls tlsp
tls[none]="tls=none" tlsp[none]=""
tls[psk]="tls=psk tls_psk=$pki/keys.psk" tlsp[psk]="tls_user=bench"
tls[x509]="tls=x509 tls_dir=$pki" tlsp[x509]=""
for m in "${modes[@]}"; do
	bench_fill "$work/p-$m.img" "$sdir/s-$m.img"
	COLO_TLS=${tls[$m]} COLO_TLS_PRIMARY=${tlsp[$m]} colo_pair "$work/p-$m.img" "$sdir/s-$m.img" \
		ram_limit=2G
	S[$m]="$S_PID $S_MINOR" P[$m]="$P_PID $P_MINOR" uri[$m]=$P_URI pids[$m]="$P_PID $S_PID"
done
grep -q '^[0-9]* (tapdisk) ' "/proc/${P_PID}/stat" ||
	{ echo "bench: unexpected /proc/PID/stat format" >&2; exit 1; }

hz=$(getconf CLK_TCK)
workloads=(seqwrite1m randwrite4k)
declare -A vals drain cpu_p cpu_s
for rep in $(seq "$REPS"); do
	for w in "${workloads[@]}"; do
		workload_args "$w"
		for m in "${modes[@]}"; do
			read -r -a c0 < <(proc_counts ${pids[$m]})
			read -r iops mib bytes ms < <(fio_nbd "${uri[$m]}" "${args[@]}")
			v=$iops
			[ "$w" = seqwrite1m ] && v=$mib
			vals[$m,$w]+=" $v"
			# shellcheck disable=SC2086
			set -- ${P[$m]} ${S[$m]}
			timed "$1" "$2" checkpoint
			d=$(drain_rate "$bytes" "$ms" "$MS" "$w")
			drain[$m,$w]+=" $d"
			timed "$3" "$4" checkpoint
			read -r -a c1 < <(proc_counts ${pids[$m]})
			per=()
			for i in 0 2; do
				per+=("$(awk -v d=$((c1[i] - c0[i])) -v hz="$hz" -v b="$bytes" \
					'BEGIN {m = b / 1048576; printf "%.0f", !m ? 0 : d / hz * 1e6 / m}')")
			done
			cpu_p[$m,$w]+=" ${per[0]}" cpu_s[$m,$w]+=" ${per[1]}"
			echo "  rep $rep $w tls=$m: $v (incl. drain $d); CPU us/MiB ${per[0]} + ${per[1]}" >&2
		done
	done
done
for m in "${modes[@]}"; do
	# shellcheck disable=SC2086
	still_replicating "tls=$m" ${P[$m]}
done

echo
echo "Replicated guest writes through the Primary's NBD export, median of $REPS runs of ${RUNTIME} s"
echo "(Secondary images in $([ "$SHM" = 1 ] && echo /dev/shm || echo "$work")); ratios to tls=none,"
echo "the median of each round's; CPU: the tapdisks' user + system time per MiB written:"
printf '%-24s%-7s%10s%14s%10s%12s%18s%18s\n' workload tls result "incl. drain" "/ none" \
	"drain/none" "Primary us/MiB" "Secondary us/MiB"
for w in "${workloads[@]}"; do
	for m in "${modes[@]}"; do
		case $w in
		randwrite4k) l="4k randwrite QD32 IOPS" ;;
		seqwrite1m) l="1M seq write QD8 MiB/s" ;;
		esac
		printf '%-24s%-7s%10s%14s%10s%12s%18s%18s\n' "$l" "$m" "$(med "${vals[$m,$w]}")" \
			"$(med "${drain[$m,$w]}")" "$(ratio "${vals[$m,$w]}" "${vals[none,$w]}")" \
			"$(ratio "${drain[$m,$w]}" "${drain[none,$w]}")" "$(med "${cpu_p[$m,$w]}")" \
			"$(med "${cpu_s[$m,$w]}")"
	done
done
