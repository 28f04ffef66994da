#!/bin/sh
# ab_epoch.sh — interleaved A/B of two retinac binaries on whole training epochs of a synthetic
# recording: the real training batches (windows drawn at random from the whole training set,
# data pipeline, optimizer and validation included), unlike `retinac bench`, whose batches are
# drawn densely from 4 x batch + history frames. Also a correctness check at full size: the
# two runs' losses after the last epoch must agree to what float rounding allows.
#
#   bench/ab_epoch.sh OLD_RETINAC NEW_RETINAC [SPEC] [ROUNDS]
#   Env: FRAMES (60000), CELLS (5), BATCH (512), EPOCHS (1), THREADS (the cores)
#
# Prints each round's training samples/s (log.csv: the whole epoch), the medians and B/A, and
# the last epoch's training and validation losses of each side's first round.
set -eu
[ $# -ge 2 ] || { echo "usage: bench/ab_epoch.sh OLD_RETINAC NEW_RETINAC [SPEC] [ROUNDS]" >&2; exit 2; }
A=$1 B=$2 SPEC=${3:-specs/bncnn.lua} ROUNDS=${4:-3}
FRAMES=${FRAMES:-60000} CELLS=${CELLS:-5} BATCH=${BATCH:-512} EPOCHS=${EPOCHS:-1}
THREADS=${THREADS:-$(nproc)}
T=$(mktemp -d "${TMPDIR:-/tmp}/rc-abe.XXXXXX")
trap 'rm -rf "$T"' EXIT INT TERM
"$B" synth -o "$T/rec.h5" --cells "$CELLS" --frames "$FRAMES" --test-frames 2000 --quiet
for v in A B; do   # JIT each binary's module once, outside the timed runs
    if [ $v = A ]; then bin=$A; else bin=$B; fi
    RETINAC_CACHE_DIR="$T/cache-$v" "$bin" bench "$SPEC" --cells "$CELLS" --batch 32 --iters 1 --movie 0 -q > /dev/null
done
r=1
while [ "$r" -le "$ROUNDS" ]; do
    for v in A B; do
        if [ $v = A ]; then bin=$A; else bin=$B; fi
        RETINAC_CACHE_DIR="$T/cache-$v" "$bin" train "$SPEC" --data "$T/rec.h5" -o "$T/run.$v.$r" \
            --epochs "$EPOCHS" --batch "$BATCH" --threads "$THREADS" --no-eval -q > /dev/null
        tail -n 1 "$T/run.$v.$r/log.csv" | awk -F, '{ print $NF }' > "$T/$v.$r.sps"
    done
    printf 'round %d: A %s  B %s samples/s\n' "$r" "$(cat "$T/A.$r.sps")" "$(cat "$T/B.$r.sps")"
    r=$((r + 1))
done
med() { cat "$T"/"$1".*.sps | sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
ma=$(med A) mb=$(med B)
printf 'training samples/s, median of %s epochs of %s frames at batch %s: A %s  B %s  B/A %s\n' "$ROUNDS" "$FRAMES" \
    "$BATCH" "$ma" "$mb" "$(awk -v a="$ma" -v b="$mb" 'BEGIN { printf "%.3f", b / a }')"
echo "last epoch of round 1 (log.csv):"
head -n 1 "$T/run.A.1/log.csv" | sed 's/^/  header /'
tail -n 1 "$T/run.A.1/log.csv" | sed 's/^/  A      /'
tail -n 1 "$T/run.B.1/log.csv" | sed 's/^/  B      /'
