#!/bin/sh
# run.sh — `make bench`: retinac vs PyTorch on the BN-CNN (specs/bncnn.lua, 5 cells, batch 512,
# all cores), both measured in this one run on this machine, plus the machine's FMA peak
# (bench/fma_peak.c); writes results/cpu_bench.md (via bench/report.py) and prints it.
# Measured: training step, random-window inference, and streaming inference over a test movie
# (BENCH_MOVIE frames, every window in batches of consecutive windows); the epoch time of a
# BENCH_EPOCH_FRAMES-frame recording is extrapolated from the step times (bench/epoch.sh
# measures a real one). Several minutes on 2 cores, mostly PyTorch's training steps.
# PyTorch: the python3 on PATH if it has torch, else a venv of this benchmark's own
# (BENCH_VENV, default ~/.cache/retinac/bench-venv) that pip fills once (PyPI's torch, ~7 GB with
# its CUDA libraries; Debian's system pip refuses to install into the system python). Benchmarks
# only; never needed to build or test.
# Usage: sh bench/run.sh [BUILD_DIR]   Env: BENCH_BATCH (512), BENCH_ITERS (3), BENCH_CELLS (5),
#   BENCH_MOVIE (2040 frames = 2000 windows; 0 skips streaming), BENCH_MOVIE_ITERS (1),
#   BENCH_EPOCH_FRAMES (300000; 0 drops the epoch section), BENCH_SMALL_BATCH (32: the batch
#   sweep's small batch, 0 skips the sweep), BENCH_COMPILE (1: also time torch.compile, the
#   stronger CPU peer; 0 skips it)
# The batch sweep times training and inference at BENCH_SMALL_BATCH and BENCH_BATCH with retinac,
# PyTorch eager and torch.compile, the same number of samples at each batch.
set -eu
BUILD=${1:-build}
BATCH=${BENCH_BATCH:-512}
ITERS=${BENCH_ITERS:-3}
CELLS=${BENCH_CELLS:-5}
MOVIE=${BENCH_MOVIE:-2040}
MOVIE_ITERS=${BENCH_MOVIE_ITERS:-1}
EPOCH_FRAMES=${BENCH_EPOCH_FRAMES:-300000}
SMALL=${BENCH_SMALL_BATCH:-32}
COMPILE=${BENCH_COMPILE:-1}
CC=${CC:-cc}
mkdir -p "$BUILD/bench" results
$CC -O3 -march=native -fopenmp bench/fma_peak.c -o "$BUILD/bench/fma_peak"
PY=python3
if ! python3 -c 'import torch' 2>/dev/null; then
    sh scripts/deps.sh bench || exit 1
    V=${BENCH_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/retinac/bench-venv}
    if ! "$V/bin/python3" -c 'import torch' 2>/dev/null; then
        echo "bench: installing PyTorch into $V (pip, once) ..." >&2
        python3 -m venv "$V" && "$V/bin/pip" install --quiet torch numpy ||
            { echo "bench: could not install PyTorch into $V" >&2; exit 1; }
    fi
    PY=$V/bin/python3
fi
echo "bench: FMA peak ..." >&2
peak=$("$BUILD/bench/fma_peak")
echo "bench: retinac (JIT-compiled C), bncnn batch $BATCH ..." >&2
ours=$("$BUILD/retinac" bench specs/bncnn.lua --cells "$CELLS" --batch "$BATCH" --iters "$ITERS" \
    --movie "$MOVIE" --movie-iters "$MOVIE_ITERS" --json)
echo "bench: PyTorch, same model and batch ..." >&2
torch=$("$PY" bench/torch_bench.py --batch "$BATCH" --cells "$CELLS" --iters "$ITERS" \
    --movie "$MOVIE" --movie-iters "$MOVIE_ITERS")
# batch sweep: one JSON object per line (retinac, PyTorch eager, torch.compile at each batch)
sweep="$BUILD/bench/sweep.jsonl"
: > "$sweep"
line() { printf '%s\n' "$(printf '%s' "$1" | tr -d '\n')" >> "$sweep"; }   # one JSON object per line
if [ "$SMALL" -gt 0 ]; then
    line "$ours"
    line "$torch"
    it=$(( ITERS * BATCH / SMALL ))
    echo "bench: batch $SMALL: retinac, PyTorch ($it steps each) ..." >&2
    line "$("$BUILD/retinac" bench specs/bncnn.lua --cells "$CELLS" --batch "$SMALL" --iters "$it" --movie 0 --json)"
    line "$("$PY" bench/torch_bench.py --batch "$SMALL" --cells "$CELLS" --iters "$it" --movie 0)"
    if [ "$COMPILE" != 0 ]; then
        for b in "$SMALL" "$BATCH"; do
            echo "bench: torch.compile, batch $b (compiling takes a minute or two) ..." >&2
            line "$("$PY" bench/torch_bench.py --batch "$b" --cells "$CELLS" --iters $(( ITERS * BATCH / b )) \
                --movie 0 --compile)"
        done
    fi
fi
load=$(cut -d' ' -f1-3 /proc/loadavg)
python3 bench/report.py --peak "$peak" --ours "$ours" --torch "$torch" --load "$load" \
    --cc "$($CC --version | head -n 1)" --epoch-frames "$EPOCH_FRAMES" --sweep "$sweep" > results/cpu_bench.md.tmp
mv results/cpu_bench.md.tmp results/cpu_bench.md
cat results/cpu_bench.md
