#!/bin/sh
# learning-curve.sh — issue 20's learning-curve study: test r and FEVe against the length of the
# training recording and against epochs, for the BN-CNN (specs/bncnn.lua), the LN baseline
# (specs/ln.lua) and the stacked BN-CNN (specs/stacked_bncnn.lua), on the synthetic retina
# (`retinac synth`, seed 1: the main job's retina, 8 cells), at the main job's settings (batch
# 32; lr 0.002 for the CNNs, 0.0005 for LN) with early stopping after PATIENCE epochs without a
# better validation loss (at most EPOCHS). Every recording has the same test movie (the test
# split depends on the seed and --test-frames only; the script checks it), so the columns are
# comparable: the split-half ceiling and the noise-free rate's r are the same in every row.
# Where the curve is still rising at the main job's 28,000 frames, the data limit the fit; where
# it is flat below the ceiling, the model class or the optimizer do.
# Writes results/learning-curve.md: the table, each run's validation r per epoch, the commands,
# and the machine. Usage: examples/learning-curve.sh [OUTDIR]  (default runs/learning-curve;
# needs `make`). Knobs: FRAMES (list), EPOCHS, PATIENCE, STACKED_MAX (longest recording the
# stacked model trains on; it is the slowest), THREADS. Runs that finished are kept, so the study
# can be stopped and resumed. About 35 minutes on 2 cores.
set -eu
OUT=${1:-runs/learning-curve}
RC=${RETINAC:-build/retinac}
FRAMES=${FRAMES:-"3500 7000 14000 28000 56000"}
EPOCHS=${EPOCHS:-12}
PATIENCE=${PATIENCE:-3}
STACKED_MAX=${STACKED_MAX:-28000}
THREADS=${THREADS:-$(nproc)}
TEST_FRAMES=2800
DOC=results/learning-curve.md
TMP="$DOC.tmp"
mkdir -p "$OUT"

# mean row of `retinac train`'s final table: "mean r feve ceiling oracle truth"
mean_row() { sed -n 's/^mean[[:space:]]\+//p' "$1" | tail -1; }
best_epoch() { sed -n 's/.*best epoch \([0-9]\+\).*/\1/p' "$1" | tail -1; }
# validation r per epoch from log.csv, comma-separated
val_r() { awk -F, 'NR > 1 { printf "%s%.3f", (NR > 2 ? ", " : ""), $4 }' "$1/log.csv"; }

train() {   # train NAME SPEC REC LR: one run into OUT/NAME, its stdout in OUT/NAME.txt
    echo "\$ $RC train $2 --data $3 -o $OUT/$1 --epochs $EPOCHS --patience $PATIENCE --batch 32 --lr $4 --threads $THREADS" >> "$OUT/commands.txt"
    # a run that finished (metrics.json written) is kept: the study can be stopped and resumed
    [ -f "$OUT/$1/metrics.json" ] && [ -f "$OUT/$1.txt" ] || "$RC" train "$2" --data "$3" -o "$OUT/$1" --epochs "$EPOCHS" --patience "$PATIENCE" \
        --batch 32 --lr "$4" --threads "$THREADS" > "$OUT/$1.txt" 2>&1 || {
        echo "learning-curve.sh: training $1 failed:" >&2; tail -5 "$OUT/$1.txt" >&2; exit 1; }
    set -- "$1" $(mean_row "$OUT/$1.txt")
    printf '| %s | %s | %s | %s | %s | %s |\n' "$NAME" "$2" "$3" "$(best_epoch "$OUT/$1.txt")" "$4" "$6" >> "$OUT/rows.md"
    printf -- '- %s: %s\n' "$NAME" "$(val_r "$OUT/$1")" >> "$OUT/epochs.md"
}

: > "$OUT/commands.txt"
: > "$OUT/rows.md"
: > "$OUT/epochs.md"
t0=$(date +%s)
first=""
for n in $FRAMES; do
    rec="$OUT/rec$n.h5"
    echo "\$ $RC synth -o $rec --seed 1 --frames $n --test-frames $TEST_FRAMES --quiet" >> "$OUT/commands.txt"
    [ -f "$rec" ] || "$RC" synth -o "$rec" --seed 1 --frames "$n" --test-frames "$TEST_FRAMES" --quiet
    if [ -z "$first" ]; then first=$rec
    elif command -v h5diff >/dev/null 2>&1; then
        h5diff -q "$first" "$rec" /test/stimulus /test/stimulus ||
            { echo "learning-curve.sh: $rec's test movie differs from $first's" >&2; exit 1; }
    fi
    NAME="bncnn, $n frames"; train "bncnn-$n" specs/bncnn.lua "$rec" 0.002
    NAME="ln, $n frames"; train "ln-$n" specs/ln.lua "$rec" 0.0005
    if [ "$n" -le "$STACKED_MAX" ]; then
        NAME="stacked_bncnn, $n frames"; train "stacked-$n" specs/stacked_bncnn.lua "$rec" 0.002
    fi
    echo "learning-curve.sh: $n frames done after $(( $(date +%s) - t0 )) s" >&2
done

cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)
{
    cat <<HEAD
# Learning curves on the synthetic retina (issue 20)

Produced by \`examples/learning-curve.sh\` on $(date -u +%Y-%m-%d), retinac $(git describe --always --dirty 2>/dev/null || echo unknown),
$(nproc) cores ($cpu); the runs' training took $(cat "$OUT"/*/log.csv | awk -F, '$1 != "epoch" { s += $6 } END { printf "%.0f", s }') s in all (the
seconds column of their log.csv; the machine was not idle throughout: not a benchmark). The synthetic retina of the main job (seed 1, 8
cells) recorded for each length of training movie, all with the same $TEST_FRAMES-frame test movie
(6 repeats). Main-job settings: batch 32, lr 0.002 (CNNs) or 0.0005 (LN), at most $EPOCHS epochs,
early stopping after $PATIENCE epochs without a lower validation loss; each run's best.h5 (lowest
validation loss) is evaluated on the test movie. Means over the 8 cells; the split-half ceiling
is the data's limit, the true rate's r the noise-free simulator's own.

| model, training frames | test r | FEVe | best epoch | ceiling | true rate r |
|---|---|---|---|---|---|
HEAD
    cat "$OUT/rows.md"
    printf '\n## Validation r per epoch (single trials of the held-out 10%% of the training movie)\n\n'
    cat "$OUT/epochs.md"
    printf '\n## Commands\n\n```sh\n'
    cat "$OUT/commands.txt"
    printf '```\n'
} > "$TMP"
mv "$TMP" "$DOC"
echo "wrote $DOC"
