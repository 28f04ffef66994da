#!/usr/bin/env bash
# rss_stream.sh — bounded-memory streaming check for the data layer (runtime/data/data.h).
#
# Writes a large recording with `retinac synth --cheap` (uniform binary noise stored as float32,
# 10 kB per 50x50 frame, a trivial response: an I/O test, not a retina), then runs
# `retinac info --epoch-pass 512 --mem-budget MB`: the streaming statistics pass, one shuffled
# training epoch over all chunks, the validation pass and the (small) test split. It compares the
# process's peak RSS with the budget plus a fixed allowance for the process itself (libraries,
# HDF5, the test split, label buffers); exit 1 if it is exceeded.
#
# usage: tests/scripts/rss_stream.sh [--gb G] [--mem-budget MB] [--slack MB] [--dir DIR]
#                                    [--file FILE] [--keep] [--retinac PATH]
#   --gb G          size of the training frames to generate, in GB (default 1; 8 = 800k frames)
#   --mem-budget MB data budget (default $RETINAC_MEM_BUDGET or 256)
#   --slack MB      allowance above the budget (default 160)
#   --dir DIR       where to write the file (default $TMPDIR or /tmp); needs G GB free
#   --file FILE     reuse an existing recording instead of generating one
#   --keep          keep the generated file
set -euo pipefail

GB=1
BUDGET=${RETINAC_MEM_BUDGET:-256}
SLACK=160
DIR=${TMPDIR:-/tmp}
FILE=""
KEEP=0
RETINAC=""
while [ $# -gt 0 ]; do
    case "$1" in
        --gb) GB=$2; shift 2 ;;
        --mem-budget) BUDGET=$2; shift 2 ;;
        --slack) SLACK=$2; shift 2 ;;
        --dir) DIR=$2; shift 2 ;;
        --file) FILE=$2; shift 2 ;;
        --keep) KEEP=1; shift ;;
        --retinac) RETINAC=$2; shift 2 ;;
        -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
        *) echo "rss_stream.sh: unknown argument $1" >&2; exit 2 ;;
    esac
done
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
RETINAC=${RETINAC:-$ROOT/build/retinac}
[ -x "$RETINAC" ] || { echo "rss_stream.sh: $RETINAC not built (make, or --retinac PATH)" >&2; exit 2; }

if [ -z "$FILE" ]; then
    FRAMES=$(awk -v g="$GB" 'BEGIN { printf "%d", g * 1e9 / 10000 }')
    NEED=$(awk -v g="$GB" 'BEGIN { printf "%d", g * 1e9 * 1.02 + 1e8 }')
    AVAIL=$(df --output=avail -B1 "$DIR" | tail -1)
    if [ "$AVAIL" -lt "$NEED" ]; then
        echo "rss_stream.sh: $DIR has $((AVAIL / 1000000)) MB free, need $((NEED / 1000000)) MB" >&2
        exit 2
    fi
    FILE="$DIR/rc_rss_stream_$$.h5"
    [ "$KEEP" = 1 ] || trap 'rm -f "$FILE"' EXIT
    echo "== writing $FILE: $FRAMES frames (float32, $GB GB of frames)"
    T0=$(date +%s.%N)
    "$RETINAC" synth -o "$FILE" --cheap --dtype float32 --frames "$FRAMES" --cells 8 --quiet
    T1=$(date +%s.%N)
    echo "   synth: $(awk -v a="$T0" -v b="$T1" 'BEGIN { printf "%.1f", b - a }') s, $(du -h "$FILE" | cut -f1)"
fi

echo "== epoch data pass, budget $BUDGET MB"
OUT=$("$RETINAC" info "$FILE" --mem-budget "$BUDGET" --epoch-pass 512 --json)
echo "$OUT" | grep -E '"(frames|chunks|train|val|batches|windows|seconds|val_windows|val_seconds|peak_rss_mb|mem_budget_mb)"' | tr -s ' '
RSS=$(echo "$OUT" | sed -n 's/.*"peak_rss_mb": \([0-9.e+]*\).*/\1/p')
LIMIT=$((BUDGET + SLACK))
if awk -v r="$RSS" -v l="$LIMIT" 'BEGIN { exit !(r <= l) }'; then
    echo "PASS: peak RSS $RSS MB <= budget $BUDGET MB + $SLACK MB allowance"
else
    echo "FAIL: peak RSS $RSS MB > budget $BUDGET MB + $SLACK MB allowance"
    exit 1
fi
