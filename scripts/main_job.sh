#!/bin/sh
# main_job.sh — retinac's main job, end to end: build, synthesize the default recording
# (data/synth.h5, `retinac synth`) if it is absent, train the 2016 BN-CNN (specs/bncnn.lua) and
# the LN baseline (specs/ln.lua) on it with the JIT-compiled C backend, and print the
# comparison table of `retinac eval` (per-cell test r and FEVe of both models, the data's
# reliability ceiling and jackknife oracle, and the true rate's r, known for synthetic data),
# then read the BN-CNN's receptive fields (`retinac rf`, runs/bncnn/rf.h5), the phenomena
# battery of both models beside the simulated retina's own (`retinac phenomena`), and the
# correlation of the BN-CNN's units with the simulated retina's bipolar and amacrine cells
# (`retinac synth --interneurons`, `retinac interneurons`, runs/bncnn/intr.h5), and end with
# `retinac report`: every figure as PNG and SVG and runs/report/index.html.
#
# Budget: under 10 minutes on 2 cores. The epoch counts and batch sizes below are chosen for
# that budget (ten epochs of the CNN at batch 32, about 2.6 of the ~4.4 minutes), not for the
# best possible numbers. Measured 2026-11-26 on an idle 2-core Xeon @ 2.50 GHz from a clean
# clone: 4 min 21 s in all (synthesis 6 s, receptive fields 6 s, phenomena 62 s); with the
# interneuron step (6 s), 4 min 48 s from a fresh clone including the 19 s build;
# default recording (8 cells): BN-CNN mean test r 0.838, FEVe 0.46; LN 0.405; split-half
# ceiling 0.945 (the noise-free rate itself reaches 0.942). With issue 20's defaults (output
# calibration, precise batch-norm statistics: a forward pass over up to 8,192 training windows
# per epoch) on a 2-core AMD EPYC without AVX-512, 2026-12-07: 12 min 17 s in all (BN-CNN epochs
# ~58 s at ~490 samples/s), over the budget on that CPU; BN-CNN r 0.8455, FEVe 0.579; LN 0.367.
# With output_lr = 10 as well (the final batchnorm's scale and shift at 10x lr), later that day on
# the same VM: 539 s in all (BN-CNN epochs ~43 s at ~680 samples/s: the VM ran faster than in
# the morning), BN-CNN r 0.8624 (0.91 of the ceiling), FEVe 0.692, best epoch 3 of 10; LN 0.367
# (results/main-job.md). Since then the BN-CNN stops early (CNN_PATIENCE=3: three epochs without a
# lower validation loss), which keeps the same best.h5 and skips the epochs past it. Since
# session 11 it trains the BN-CNN at three training-noise strengths (std 0.05, the reference's,
# 0.1 and 0.15 after each conv: the spec's --param noise; CNN_NOISES) and keeps the one with the
# lowest validation loss (the test set is never used to select). On this recording that is 0.15:
# FEVe 0.731-0.734 over two seeds against 0.681-0.709 with 0.05, test r 0.852-0.857 against
# 0.857-0.862 (results/fit-variants.md); on a 6,000-frame recording the validation loss picks
# 0.05 (FEVe 0.42, where 0.15 gives 0.22): one noise does not fit every length. Longer runs
# and longer recordings: examples/learning-curve.sh, results/learning-curve.md. E.g.:
#   CNN_EPOCHS=20 CNN_BATCH=128 CNN_LR=0.005 LN_EPOCHS=20 scripts/main_job.sh
# Other knobs: CNN_NOISES (the noise stds tried; "0.05" alone: the reference's BN-CNN, one
# training), CNN_PATIENCE, LN_PATIENCE (early stopping), RETINAC (use this retinac binary and
# skip the build), BUILD (build dir), DATA (recording), RUNS (run folders), THREADS (OpenMP
# threads, default: all cores), JOBS (make -j),
# BACKEND (c|ref), DEVICE (cpu|cuda), FRESH=0 to keep runs that already finished (default 1),
# RECORD=1 to write the result to results/main-job.md and README.md (see below).
set -eu
cd "$(dirname "$0")/.."

BUILD=${BUILD:-build}
DATA=${DATA:-data/synth.h5}
RUNS=${RUNS:-runs}
NPROC=$(getconf _NPROCESSORS_ONLN 2>/dev/null || echo 2)
THREADS=${THREADS:-$NPROC}
JOBS=${JOBS:-$NPROC}
BACKEND=${BACKEND:-c}
DEVICE=${DEVICE:-cpu}
FRESH=${FRESH:-1}
CNN_EPOCHS=${CNN_EPOCHS:-10}
CNN_BATCH=${CNN_BATCH:-32}
CNN_LR=${CNN_LR:-0.002}
CNN_PATIENCE=${CNN_PATIENCE:-3}   # early stopping: the BN-CNN's validation loss is lowest at epoch 3
CNN_NOISES=${CNN_NOISES:-"0.05 0.1 0.15"}   # specs/bncnn.lua's training noise std (--param noise),
                                            # the one with the lowest validation loss is kept
LN_EPOCHS=${LN_EPOCHS:-4}
LN_BATCH=${LN_BATCH:-32}
LN_LR=${LN_LR:-0.0005}
LN_PATIENCE=${LN_PATIENCE:-10}    # the spec's own early_patience
RETINAC=${RETINAC:-}
RF_SAMPLES=${RF_SAMPLES:-1024}
SEED=1            # the recording's `retinac synth` seed: the phenomena's ground-truth column
FIGURES="cells.png predictions.png rf-1-bncnn.png"   # the report's figures that RECORD=1 publishes

t0=$(date +%s)
say() { printf '[main job %4ss] %s\n' "$(( $(date +%s) - t0 ))" "$*" >&2; }

if [ -z "$RETINAC" ]; then
    say "building retinac ($BUILD, make -j$JOBS)"
    make --no-print-directory BUILD="$BUILD" -j"$JOBS" all >/dev/null
    RETINAC=$BUILD/retinac
fi

if [ ! -f "$DATA" ]; then
    say "synthesizing the default recording $DATA (retinac synth)"
    mkdir -p "$(dirname "$DATA")"
    "$RETINAC" synth -o "$DATA" --quiet
fi

train() {   # train NAME SPEC EPOCHS BATCH LR PATIENCE [spec parameters, --param NAME=VALUE]
    name=$1 spec=$2 epochs=$3 batch=$4 lr=$5 patience=$6
    shift 6
    if [ "$FRESH" = 0 ] && [ -f "$RUNS/$name/metrics.json" ]; then
        say "keeping $RUNS/$name (FRESH=0)"
        return
    fi
    rm -rf "$RUNS/$name"
    say "training $name: $spec, at most $epochs epoch(s) (early stopping after $patience without a better validation loss), batch $batch, lr $lr, backend $BACKEND${*:+, $*}"
    "$RETINAC" train "$spec" --data "$DATA" -o "$RUNS/$name" --epochs "$epochs" \
        --patience "$patience" --batch "$batch" --lr "$lr" --backend "$BACKEND" --device "$DEVICE" \
        --threads "$THREADS" "$@" >/dev/null
}

# the BN-CNN at each noise std; runs/bncnn is the one with the lowest validation loss
CNN_NOISE="" best=""
for nz in $CNN_NOISES; do
    train "bncnn-noise$nz" specs/bncnn.lua "$CNN_EPOCHS" "$CNN_BATCH" "$CNN_LR" "$CNN_PATIENCE" --param noise="$nz"
    l=$(sed -n 's/.*"best_val_loss": *\([-+0-9.eE]*\).*/\1/p' "$RUNS/bncnn-noise$nz/metrics.json" | head -1)
    [ -n "$l" ] || { echo "main_job.sh: no best_val_loss in $RUNS/bncnn-noise$nz/metrics.json" >&2; exit 1; }
    if [ -z "$best" ] || awk -v a="$l" -v b="$best" 'BEGIN { exit !(a < b) }'; then best=$l CNN_NOISE=$nz; fi
done
say "the BN-CNN's training noise by validation loss: std $CNN_NOISE (validation loss $best)"
rm -rf "$RUNS/bncnn"
cp -R "$RUNS/bncnn-noise$CNN_NOISE" "$RUNS/bncnn"
train ln specs/ln.lua "$LN_EPOCHS" "$LN_BATCH" "$LN_LR" "$LN_PATIENCE"

say "evaluating on the test movie (retinac eval)"
"$RETINAC" eval "$RUNS/bncnn" "$RUNS/ln" --data "$DATA" --backend "$BACKEND" --device "$DEVICE" \
    --threads "$THREADS" | tee "$RUNS/eval.txt"
t_eval=$(( $(date +%s) - t0 ))

# The result as a file: runs/main-job.md (this run), and with RECORD=1 results/main-job.md and
# README.md's "main job" block too (between the main-job markers), so the published numbers are
# this script's output, never copied by hand.
cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo 2>/dev/null | head -1)
{
    printf 'Measured by `scripts/main_job.sh` (`make demo`) on %s, retinac %s, %s cores (%s),
' \
        "$(date -u +%Y-%m-%d)" "$(git describe --always --dirty 2>/dev/null || echo unknown)" "$NPROC" "${cpu:-unknown CPU}"
    printf 'threads %s, backend %s: BN-CNN (training noise std %s, the lowest validation loss of %s) at most %s epochs at batch %s (lr %s; early stopping after %s epochs
without a lower validation loss: %s epochs ran, best %s), LN %s epochs at batch %s (lr %s);
' \
        "$THREADS" "$BACKEND" "$CNN_NOISE" "$(echo $CNN_NOISES | sed 's/ /, /g')" "$CNN_EPOCHS" "$CNN_BATCH" "$CNN_LR" "$CNN_PATIENCE" \
        "$(($(wc -l < "$RUNS/bncnn/log.csv") - 1))" "$(awk -F, 'NR > 1 && (NR == 2 || $3 < b) { b = $3; e = $1 } END { print e }' "$RUNS/bncnn/log.csv")" \
        "$LN_EPOCHS" "$LN_BATCH" "$LN_LR"
    printf 'the recording %s; %s s from the start to the end of evaluation. `retinac eval`:

' "$DATA" "$t_eval"
    printf '```\n'
    cat "$RUNS/eval.txt"
    printf '```\n'
} > "$RUNS/main-job.md"
say "receptive fields of the BN-CNN (retinac rf, $RF_SAMPLES white-noise windows)"
"$RETINAC" rf "$RUNS/bncnn" --samples "$RF_SAMPLES" --threads "$THREADS" -o "$RUNS/bncnn/rf.h5"

say "in-silico phenomena: BN-CNN, LN and the simulated retina itself (retinac phenomena)"
"$RETINAC" phenomena "$RUNS/bncnn" "$RUNS/ln" --retina "$SEED" --threads "$THREADS" \
    -o "$RUNS/phenomena.h5"
say "model units vs the simulated retina's bipolars and amacrines (retinac interneurons)"
"$RETINAC" synth --interneurons "$RUNS/intr" --seed "$SEED" --quiet
"$RETINAC" interneurons "$RUNS/bncnn" "$RUNS/intr/bipolars_synth.h5" "$RUNS/intr/amacrines_synth.h5" \
    --threads "$THREADS" -o "$RUNS/bncnn/intr.h5"
say "figures and a page of them (retinac report)"
"$RETINAC" report "$RUNS/bncnn" "$RUNS/ln" "$RUNS/phenomena.h5" --data "$DATA" -o "$RUNS/report" >/dev/null
{
    printf '\nFigures of this run (`retinac report`, PNG; the page with all of them, SVGs included:\n'
    printf '%s/report/index.html):\n\n' "$RUNS"
    for f in $FIGURES; do printf '![%s](FIGDIR/%s)\n' "$f" "$f"; done
} > "$RUNS/main-job-figures.md"
if [ "${RECORD:-0}" = 1 ]; then
    mkdir -p results/figures
    for f in $FIGURES; do
        cp "$RUNS/report/$f" "results/figures/$f.tmp" && mv "results/figures/$f.tmp" "results/figures/$f"
    done
    { cat "$RUNS/main-job.md"; sed 's|FIGDIR|figures|' "$RUNS/main-job-figures.md"; } > results/main-job.md.tmp
    mv results/main-job.md.tmp results/main-job.md
    { cat "$RUNS/main-job.md"; sed 's|FIGDIR|results/figures|' "$RUNS/main-job-figures.md"; } > "$RUNS/main-job-readme.md"
    awk -v f="$RUNS/main-job-readme.md" '
        /<!-- main-job:begin -->/ { print; while ((getline line < f) > 0) print line; skip = 1; next }
        /<!-- main-job:end -->/ { skip = 0 }
        !skip { print }' README.md > README.md.tmp && mv README.md.tmp README.md
    say "recorded results/main-job.md, results/figures/ and README.md's main-job block"
fi
say "done: open $RUNS/report/index.html"
