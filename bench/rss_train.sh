#!/usr/bin/env bash
# rss_train.sh — peak memory and time of one training epoch against the data budget (issue 19,
# item 3): the C backend's FFT first conv keeps a spectrum per frame of the chunk it trains on,
# and the data chunks are sized so that frames and spectra fit the budget together.
#
# Writes a `retinac synth --cheap` recording (uniform binary noise, uint8 on disk, a trivial
# response: an I/O and memory test, not a retina) of FRAMES training frames, then for each budget
# trains SPEC for one epoch (`retinac train --epochs 1 --no-eval --mem-budget MB`) under
# /usr/bin/time and prints one markdown row: binary, budget, wall seconds, peak RSS, RSS minus
# budget. With --base OLD, the same runs with another retinac binary, interleaved.
#
# usage: bench/rss_train.sh [--frames N] [--budgets "150 300 620"] [--spec SPEC] [--base OLD]
#                           [--retinac PATH] [--dir DIR]
set -euo pipefail
FRAMES=60000
BUDGETS="150 300 620 1000"
ROOT=$(cd "$(dirname "$0")/.." && pwd)
SPEC=$ROOT/specs/bncnn.lua
RETINAC=$ROOT/build/retinac
BASE=""
DIR=${TMPDIR:-/tmp}
while [ $# -gt 0 ]; do
    case "$1" in
        --frames) FRAMES=$2; shift 2 ;;
        --budgets) BUDGETS=$2; shift 2 ;;
        --spec) SPEC=$2; shift 2 ;;
        --base) BASE=$2; shift 2 ;;
        --retinac) RETINAC=$2; shift 2 ;;
        --dir) DIR=$2; shift 2 ;;
        -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
        *) echo "rss_train.sh: unknown argument $1" >&2; exit 2 ;;
    esac
done
[ -x "$RETINAC" ] || { echo "rss_train.sh: $RETINAC not built" >&2; exit 2; }
[ -x /usr/bin/time ] || { echo "rss_train.sh: needs /usr/bin/time (Debian package time)" >&2; exit 2; }
W=$(mktemp -d "$DIR/rc_rss_train.XXXXXX")
trap 'rm -rf "$W"' EXIT
"$RETINAC" synth -o "$W/rec.h5" --cheap --frames "$FRAMES" --test-frames 2000 --cells 8 --quiet
echo "# $(basename "$SPEC"), one epoch of $FRAMES training frames; $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) cores; $(date -u +%Y-%m-%d)"
echo "| binary | budget (MB) | wall (s) | peak RSS (MB) | RSS - budget (MB) |"
echo "|---|---:|---:|---:|---:|"
for mb in $BUDGETS; do
    for bin in "$RETINAC" ${BASE:+"$BASE"}; do
        rm -rf "$W/run"
        /usr/bin/time -o "$W/t" -f "%e %M" "$bin" train "$SPEC" --data "$W/rec.h5" -o "$W/run" --epochs 1 --no-eval \
            --mem-budget "$mb" -q
        read -r wall kb < "$W/t"
        name=$([ "$bin" = "$RETINAC" ] && echo this || echo base)
        awk -v n="$name" -v mb="$mb" -v w="$wall" -v kb="$kb" \
            'BEGIN { printf "| %s | %d | %.1f | %.0f | %+.0f |\n", n, mb, w, kb / 1024, kb / 1024 - mb }'
    done
done
