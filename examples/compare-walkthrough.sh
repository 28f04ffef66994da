#!/bin/sh
# compare-walkthrough.sh — the variant walkthrough of issue 17, run for real: take the 2016
# BN-CNN (specs/bncnn.lua), change one thing (the first kernel, 15x15 -> 9x9), and ask
# `retinac compare` whether the change is better, worse or neither, over 3 seeds, with paired
# statistics over cells and the cost beside it. Writes results/compare-walkthrough.md: every
# command and its output as it came, plus the machine it ran on (nothing is edited by hand).
#
# Usage: examples/compare-walkthrough.sh [OUTDIR]   (default runs/compare-walkthrough; needs
# build/retinac: `make`). About 10 minutes on 2 cores. The recording is a shorter synthetic
# retina than the main job's (10,000 training frames, 8 cells) so that 6 runs fit that time.
set -eu
OUT=${1:-runs/compare-walkthrough}
RC=${RETINAC:-build/retinac}
DOC=results/compare-walkthrough.md
mkdir -p "$OUT"
TMP="$DOC.tmp"

run() {   # run CMD...: append the command and its output (stdout and stderr) to the document
    printf '```sh\n$ %s\n' "$*" >> "$TMP"
    set +e
    "$@" >> "$TMP" 2>&1
    rc=$?
    set -e
    [ "$rc" -eq 0 ] || printf '(exit status %s)\n' "$rc" >> "$TMP"
    printf '```\n\n' >> "$TMP"
}

cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)
cat > "$TMP" <<HEAD
# Is a 9x9 first kernel as good as 15x15? A variant walkthrough with \`retinac compare\`

Produced by \`examples/compare-walkthrough.sh\` on $(date -u +%Y-%m-%d), retinac $(git describe --always --dirty 2>/dev/null || echo unknown),
$(nproc) cores ($cpu). Every block below is a command and its output as it ran.

## 1. A recording, the baseline spec and one change

HEAD
run "$RC" synth -o "$OUT/rec.h5" --frames 10000 --cells 8 --seed 1 --quiet
printf 'The variant is the shipped spec with the first kernel changed and the model renamed:\n\n' >> "$TMP"
sed -e 's/model "bncnn"/model "bncnn_k9"/' -e 's/conv { channels = 8, kernel = 15 }/conv { channels = 8, kernel = 9 }/' \
    specs/bncnn.lua > "$OUT/bncnn_k9.lua"
printf '```sh\n$ diff specs/bncnn.lua %s/bncnn_k9.lua\n' "$OUT" >> "$TMP"
diff specs/bncnn.lua "$OUT/bncnn_k9.lua" >> "$TMP" || true
printf '```\n\n' >> "$TMP"
run "$RC" check "$OUT/bncnn_k9.lua" --cells 8

cat >> "$TMP" <<'MID'
## 2. Compare over three seeds

Both specs train with the same settings (here the main job's learning rate, a batch of 64 and
4 epochs, given as flags so that only the architecture differs), each with seeds
`train.seed + 0, 1, 2`. The first spec is the baseline. Model selection uses the validation
split only (each seed's `best.h5`); the test set only reports.

MID
run "$RC" compare specs/bncnn.lua "$OUT/bncnn_k9.lua" --data "$OUT/rec.h5" -o "$OUT/cmp" --seeds 3 \
    --epochs 4 --batch 64 --lr 0.002 -q
printf 'The per-cell test r of each variant (mean over its seeds), `%s/cmp/compare_cells.csv`:\n\n' "$OUT" >> "$TMP"
printf '```\n' >> "$TMP"
cat "$OUT/cmp/compare_cells.csv" >> "$TMP"
printf '```\n\n' >> "$TMP"

cat >> "$TMP" <<'TAIL'
## 3. Reading it

- `test_r`, `feve`: mean over cells of the test r and FEVe, averaged over the variant's seeds;
  `sd`: the spread of the per-seed mean r over seeds.
- `diff_r` and `95% interval`: the paired difference to the baseline over cells (per-cell r
  averaged over seeds, variant minus baseline) with its percentile-bootstrap interval; `p`: the
  two-sided Wilcoxon signed-rank test of the same differences. With 8 cells the smallest
  possible p is 2/2^8 = 0.0078; an interval that covers 0 and a large p say the change is not
  distinguishable from the baseline on this recording at this training length.
- `params`, `MFLOP/fwd`: the cost per sample; `train/s`, `infer/s`: samples per second measured
  on this machine right after training (batch = the spec's); `epoch`: mean epoch of the lowest
  validation loss. Speed is measured, not derived from FLOPs: the compiler picks kernels per
  shape (the FFT first layer among them), so fewer FLOPs need not mean more samples/s
  (`retinac bench SPEC` times one variant alone).
- `compare.csv` and `compare.json` in the output folder hold all of it (per seed too); a rerun of
  the same command reads the finished seeds back instead of training them again.
TAIL
mv "$TMP" "$DOC"
echo "wrote $DOC"
