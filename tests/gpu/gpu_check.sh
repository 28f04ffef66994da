#!/usr/bin/env bash
# gpu_check.sh — the one prepared GPU run (make gpu-check; or, on a GPU machine without the dev
# packages, tests/gpu/gpu_check.sh build-gpu/bundle after `make gpu-bundle` on the build host).
#
# Runs from the self-contained bundle (binaries + their non-glibc shared libraries; NVRTC is
# taken from the GPU machine's CUDA toolkit or its Python nvidia-cuda-nvrtc package, since
# libnvrtc is ~110 MB), in this order, each step under its own timeout (all < 6 min):
#   1. probe the GPU (no GPU: a clear message, exit 2);
#   2. GPU-vs-CPU numerics for every layer kind and shipped spec (tests/gpu/gpu_numerics.c);
#   3. one epoch of bncnn training on synthetic data on the GPU (retinac synth + train --device cuda);
#   4. training and inference throughput vs PyTorch + cuDNN on the identical model
#      (tests/gpu/gpu_bench.c vs bench/torch_gpu_bench.py), with ratios;
#   5. with time left, retinac alone on bench/same_cnn.lua (convs inside defined layers).
# Writes $OUT/gpu_results.md (markdown summary) and $OUT/gpu_check.log (everything).
# OUT defaults to build-gpu/out. Exit 0 when every step passed, 1 when one failed, 2 no GPU.
set -u
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BUNDLE=$(cd "${1:-$ROOT/build-gpu/bundle}" 2>/dev/null && pwd) || { echo "gpu_check: no bundle at ${1:-build-gpu/bundle} (run make gpu-bundle)"; exit 1; }
OUTDIR=${OUT:-$ROOT/build-gpu/out}
mkdir -p "$OUTDIR"
MD=$OUTDIR/gpu_results.md
LOG=$OUTDIR/gpu_check.log
WORK=$(mktemp -d /tmp/rc_gpu.XXXXXX)
export RETINAC_CACHE_DIR=$WORK/cache
export LD_LIBRARY_PATH="$BUNDLE/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
BIN=$BUNDLE/bin
T_START=$(date +%s)
status=0
: > "$LOG"

log() { echo "$@" | tee -a "$LOG"; }
# The bundle's libraries (Debian's libssl, libgomp, ...) are for our binaries only: PyTorch's
# Python must not see them.
py() { env -u LD_LIBRARY_PATH python3 "$@"; }
md() { echo "$@" >> "$MD"; }

# NVRTC: the bundle leaves it out; find the machine's (toolkit or pip wheel)
nvrtc_dir=""
for d in /usr/local/cuda/lib64 /usr/local/cuda-13*/lib64 /usr/local/cuda/targets/x86_64-linux/lib; do
    [ -e "$d/libnvrtc.so.13" ] && { nvrtc_dir=$d; break; }
done
if [ -z "$nvrtc_dir" ] && command -v python3 >/dev/null; then
    nvrtc_dir=$(py -c 'import glob, os, site, sys
for p in site.getsitepackages() + sys.path:
    for f in glob.glob(os.path.join(p, "nvidia", "**", "libnvrtc.so.13"), recursive=True):
        print(os.path.dirname(f)); sys.exit(0)' 2>/dev/null | head -1)
fi
[ -n "$nvrtc_dir" ] && export LD_LIBRARY_PATH="$LD_LIBRARY_PATH:$nvrtc_dir"

{
    echo "# retinac GPU check"
    echo
    echo "- date: $(date -u '+%Y-%m-%d %H:%M UTC')"
    echo "- host: $(uname -srm)"
    if command -v nvidia-smi >/dev/null; then
        echo "- nvidia-smi: $(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null | head -1)"
    fi
    echo "- NVRTC library dir: ${nvrtc_dir:-not found, using the rpath of the binaries}"
    echo "- bundle: $BUNDLE"
} > "$MD"

# ---------------------------------------------------------------- 1. probe
log "== probe"
probe=$(timeout 60 "$BIN/gpu_numerics" --probe 2>&1); prc=$?
log "$probe"
if [ $prc -ne 0 ]; then
    md "- device: none"
    md
    md "**No GPU: the CUDA device could not be opened** ($probe). Nothing else was run."
    echo "gpu_check: no GPU here: $probe" >&2
    exit 2
fi
md "- device (retinac): ${probe#device: }"
md

# ---------------------------------------------------------------- 2. numerics
log "== numerics (GPU vs CPU reference, tolerance 1e-4 relative)"
timeout 150 "$BIN/gpu_numerics" --specs "$ROOT/specs" --batch 8 > "$WORK/num.txt" 2>&1; nrc=$?
cat "$WORK/num.txt" >> "$LOG"
cat "$WORK/num.txt"
md "## 1. GPU vs CPU numerics"
md
md "One training step (forward, BN running statistics, backward) and one inference per case, CUDA"
md "backend vs the reference backend, B=8; error = max|gpu-ref| / max|ref| per tensor (gradients:"
md "floor at 1% of the model's largest gradient). Pass: every error <= 1e-4."
md
md '```'
grep -E '^(PASS|FAIL|device|[0-9]+ passed)' "$WORK/num.txt" >> "$MD"
[ $nrc -eq 124 ] && md "TIMEOUT after 150 s"
md '```'
md
[ $nrc -ne 0 ] && status=1

# ---------------------------------------------------------------- 3. one epoch of training
log "== train bncnn one epoch on the GPU"
md "## 2. Training bncnn for one epoch on synthetic data (GPU)"
md
if ! "$BIN/retinac" help train 2>/dev/null | grep -q -- "--device"; then
    md "NOT RUN: \`retinac train\` has no --device option in this build."
    status=1
else
    t0=$(date +%s)
    timeout 60 "$BIN/retinac" synth -o "$WORK/synth.h5" --cells 5 --frames 6000 --test-frames 600 --seed 1 \
        >> "$LOG" 2>&1; src=$?
    t1=$(date +%s)
    if [ $src -ne 0 ]; then
        md "FAILED: \`retinac synth\` exited $src (see gpu_check.log)."
        tail -5 "$LOG" | sed 's/^/    /' >> "$MD"
        status=1
    else
        timeout 100 "$BIN/retinac" train "$ROOT/specs/bncnn.lua" --data "$WORK/synth.h5" -o "$WORK/run" \
            --device cuda --epochs 1 --batch 128 > "$WORK/train.txt" 2>&1; trc=$?
        t2=$(date +%s)
        cat "$WORK/train.txt" >> "$LOG"
        md "synth: $((t1 - t0)) s (6000 train + 600 test frames, 5 cells); train: $((t2 - t1)) s, exit $trc"
        md
        md '```'
        tail -25 "$WORK/train.txt" >> "$MD"
        [ $trc -eq 124 ] && echo "TIMEOUT after 100 s" >> "$MD"
        md '```'
        [ $trc -ne 0 ] && status=1
    fi
fi
md

# ---------------------------------------------------------------- 4. benchmarks
log "== benchmarks vs PyTorch + cuDNN"
md "## 3. Throughput vs PyTorch + cuDNN (same card, same model, same batch)"
md
md "retinac: generated CUDA (FP32, NVRTC CUBIN), train step = forward + loss + backward + Adam on the"
md "device; PyTorch $(py -c 'import torch; print(torch.__version__)' 2>/dev/null || echo '?'):"
md "cuDNN with cudnn.benchmark, 'tf32' = TF32 tensor cores allowed (PyTorch's conv default), 'fp32' = TF32 off."
md "Ratio = retinac samples/s / PyTorch samples/s (> 1: retinac faster)."
md
md "| model | B | what | retinac ms | PyTorch tf32 ms | PyTorch fp32 ms | ratio vs tf32 | ratio vs fp32 |"
md "|---|---|---|---|---|---|---|---|"
for spec in bncnn stacked_bncnn; do
    now=$(date +%s)
    # keep the whole check under ~6 minutes: bncnn unless very late, the others only with time left
    limit=250; [ "$spec" = bncnn ] && limit=300
    if [ $((now - T_START)) -gt $limit ]; then log "skipping $spec: time budget"; md "| $spec | | skipped (time budget) | | | | | |"; continue; fi
    timeout 45 "$BIN/gpu_bench" "$ROOT/specs/$spec.lua" --cells 5 --iters 20 --json --emit-ir "$WORK/$spec.ir" \
        > "$WORK/$spec.ours" 2>> "$LOG"; brc=$?
    cat "$WORK/$spec.ours" >> "$LOG"
    timeout 60 env -u LD_LIBRARY_PATH python3 "$ROOT/bench/torch_gpu_bench.py" "$WORK/$spec.ir" --cells 5 --iters 20 --json \
        > "$WORK/$spec.torch" 2>> "$LOG"; trc=$?
    cat "$WORK/$spec.torch" >> "$LOG"
    if [ $brc -ne 0 ] || [ $trc -ne 0 ]; then
        md "| $spec | | FAILED (retinac exit $brc, PyTorch exit $trc; see gpu_check.log) | | | | | |"
        status=1
        continue
    fi
    py - "$WORK/$spec.ours" "$WORK/$spec.torch" >> "$MD" <<'EOF'
import json, sys
o = json.loads(open(sys.argv[1]).read().strip().splitlines()[-1])
t = json.loads(open(sys.argv[2]).read().strip().splitlines()[-1])
for what, k in (("inference", "infer"), ("train step", "train")):
    ours = o[k + "_ms"]; a = t["tf32"][k + "_ms"]; b = t["fp32"][k + "_ms"]
    print(f"| {o['model']} | {o['batch']} | {what} | {ours:.2f} | {a:.2f} | {b:.2f} | {a/ours:.2f} | {b/ours:.2f} |")
EOF
done
# 5. defined layers whose convs are not a built-in form (bench/same_cnn.lua: two "same" convs in a
#    defined layer, on the tiled kernels since session 12), retinac alone (PyTorch's mirror reads
#    built-in kinds only); only with time left
md
md "Defined layers (graph convs on the tiled kernels; retinac only):"
md
now=$(date +%s)
if [ $((now - T_START)) -gt 280 ]; then
    log "skipping same_cnn: time budget"; md "- same_cnn: skipped (time budget)"
else
    timeout 45 "$BIN/gpu_bench" "$ROOT/bench/same_cnn.lua" --cells 5 --iters 20 --json > "$WORK/same_cnn.ours" 2>> "$LOG"; brc=$?
    cat "$WORK/same_cnn.ours" >> "$LOG"
    if [ $brc -ne 0 ]; then md "- same_cnn: FAILED (exit $brc; see gpu_check.log)"; status=1
    else py - "$WORK/same_cnn.ours" >> "$MD" <<'EOF'
import json, sys
o = json.loads(open(sys.argv[1]).read().strip().splitlines()[-1])
print(f"- {o['model']}, batch {o['batch']}: inference {o['infer_ms']:.2f} ms, train step {o['train_ms']:.2f} ms")
EOF
    fi
fi
md
md "Raw lines (retinac):"
md '```'
cat "$WORK"/*.ours 2>/dev/null | grep -v '^{' >> "$MD"
md '```'
md
md "Total wall time of the check: $(( $(date +%s) - T_START )) s."
log "== done (status $status); results in $MD"
cat "$MD"
exit $status
