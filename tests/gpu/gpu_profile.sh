#!/usr/bin/env bash
# gpu_profile.sh — per-kernel times of the CUDA backend on the benchmark models (run on the GPU
# machine, like gpu_check.sh, from the bundle of `make gpu-bundle`):
#   tests/gpu/gpu_profile.sh [BUNDLE] [SPEC...]      (default specs: bncnn stacked_bncnn)
# Runs gpu_bench with RETINAC_CUDA_PROFILE=1 (every launch synchronized and timed; the totals are
# therefore a little above the unprofiled step times) and writes the tables to
# $OUT/gpu_profile.txt (OUT defaults to build-gpu/out). Exit 1 if a run failed, 2 without a GPU.
set -u
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BUNDLE=$(cd "${1:-$ROOT/build-gpu/bundle}" 2>/dev/null && pwd) || { echo "gpu_profile: no bundle (run make gpu-bundle)"; exit 1; }
shift $(( $# > 0 ? 1 : 0 ))
specs=${*:-bncnn stacked_bncnn}
OUTDIR=${OUT:-$ROOT/build-gpu/out}
mkdir -p "$OUTDIR"
TXT=$OUTDIR/gpu_profile.txt
export RETINAC_CACHE_DIR=${RETINAC_CACHE_DIR:-$(mktemp -d /tmp/rc_prof.XXXXXX)}
export LD_LIBRARY_PATH="$BUNDLE/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
for d in /usr/local/cuda/lib64 /usr/local/cuda/targets/x86_64-linux/lib; do
    [ -e "$d/libnvrtc.so.13" ] && { export LD_LIBRARY_PATH="$LD_LIBRARY_PATH:$d"; break; }
done
"$BUNDLE/bin/gpu_numerics" --probe > /dev/null 2>&1 || { echo "gpu_profile: no GPU" | tee "$TXT"; exit 2; }
status=0
: > "$TXT"
for s in $specs; do
    echo "== $s" | tee -a "$TXT"
    RETINAC_CUDA_PROFILE=1 timeout 60 "$BUNDLE/bin/gpu_bench" "$ROOT/specs/$s.lua" --cells 5 --iters 10 \
        >> "$TXT" 2>&1 || status=1
done
cat "$TXT"
exit $status
