#!/usr/bin/env bash
# Draws what bench/colo-pause.sh OUT=DIR wrote: the disk part of a checkpoint's pause against
# queue_limit (left), and the guest's IOPS against time with the smallest and the largest limit
# (right), as a PNG, with gnuplot (Debian: gnuplot-nox).
#
#   bench/colo-pause-plot.sh DIR OUT.png
set -euo pipefail
dir=$1 out=$2
command -v gnuplot >/dev/null || { echo "bench: gnuplot is not installed" >&2; exit 1; }
[ -s "$dir/pause.tsv" ] || { echo "bench: no $dir/pause.tsv" >&2; exit 1; }

# The IOPS of the smallest and of the largest limit (iops-LIMIT.log, fio's: msec, IOPS, ...).
curves=()
mapfile -t limits < <(grep -v '^#' "$dir/pause.tsv" | awk '{print $13}')
for lim in "${limits[0]}" "${limits[-1]}"; do
	f=$dir/iops-$lim.log
	[ -s "$f" ] && curves+=("'$f' using (\$1 / 1000):2 with lines title 'queue\\_limit $lim'")
done
plots=$(IFS=,; echo "${curves[*]}")

gnuplot <<GP
set terminal pngcairo size 1400,520 font 'sans,11'
set output '$out'
set multiplot layout 1,2
set title 'Disk part of a checkpoint pause (checkpoints 100 ms apart, guest 4k random writes QD32)'
set logscale xy 2
set xlabel 'queue\_limit (MiB)'
set ylabel 'ms'
set key top left
set grid
plot '$dir/pause.tsv' using (\$1 / 1048576):11 with linespoints lw 2 title 'pause p99 (prepare + do\_checkpoint)', \
     '' using (\$1 / 1048576):10 with linespoints title 'pause median', \
     '' using (\$1 / 1048576):5 with linespoints title 'prepare p99', \
     '' using (\$1 / 1048576):8 with linespoints title 'do\_checkpoint p99', \
     '' using (\$1 / 1048576):15 with linespoints dt 3 title 'bare status round trip p99 (the load)', \
     5 with lines dt 2 lc rgb 'red' title 'goal 5 ms'
unset logscale
set title 'Guest IOPS during the run (100 ms averages)'
set xlabel 'seconds'
set ylabel 'IOPS'
set key top right
plot $plots
unset multiplot
GP
