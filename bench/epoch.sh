#!/bin/sh
# epoch.sh — issue #7 (d): the wall time of one real training epoch on a full-size synthetic
# recording (300,000 training frames = 50 min at 100 Hz), retinac next to PyTorch, written to
# results/epoch.md (via bench/epoch_report.py) and printed.
#   1. The recording: `retinac synth --frames N --cells 5 --cheap` (uint8 frames, ~0.8 GB at 300k;
#      --cheap: binary noise and a trivial response, since only the timing matters here; set
#      EPOCH_SYNTH='' for the simulated retina, much slower to generate). Kept for reuse; an
#      existing file is used if its training split has N frames.
#   2. retinac: `retinac train SPEC --data F --epochs 1 --no-eval -q`, wall time of the whole
#      command (JIT compile, reading and normalizing the recording, the epoch, checkpoint
#      writes) and the epoch's own seconds from the run's log.csv (training + validation pass).
#   3. PyTorch: bench/torch_epoch.py on the same file and the same split (torch-deep-retina's data
#      path, Adam); by default only EPOCH_TORCH_BATCHES training steps and validation batches are
#      timed and the epoch is extrapolated from them (a full PyTorch epoch at 300k frames is hours
#      on a few cores); EPOCH_TORCH_BATCHES=0 times the whole epoch. EPOCH_TORCH=0 skips it.
# Needs ~1 GB of disk next to the data file and, at 300k frames, ~3 GB of memory for retinac
# (the resident training split) and ~4 GB for PyTorch. Several tens of minutes on 2 cores.
# Usage: sh bench/epoch.sh [BUILD_DIR]
# Env: EPOCH_FRAMES (300000), EPOCH_DATA (BUILD/bench/epoch_<frames>.h5), EPOCH_SPEC
#   (specs/bncnn.lua), EPOCH_BATCH (the spec's), EPOCH_SYNTH (--cheap), EPOCH_TORCH (1),
#   EPOCH_TORCH_BATCHES (5), EPOCH_OUT (results/epoch.md)
set -eu
BUILD=${1:-build}
FRAMES=${EPOCH_FRAMES:-300000}
SPEC=${EPOCH_SPEC:-specs/bncnn.lua}
DATA=${EPOCH_DATA:-$BUILD/bench/epoch_$FRAMES.h5}
SYNTH=${EPOCH_SYNTH---cheap}
RUN_TORCH=${EPOCH_TORCH:-1}
TORCH_BATCHES=${EPOCH_TORCH_BATCHES:-5}
OUT=${EPOCH_OUT:-results/epoch.md}
BIN=$BUILD/retinac

die() { echo "epoch.sh: $*" >&2; exit 1; }
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.3f\n", b - a }'; }
[ -x "$BIN" ] || die "$BIN not built (make BUILD=$BUILD)"
mkdir -p "$(dirname "$DATA")" "$(dirname "$OUT")" "$BUILD/bench"

# --- 1. the recording
train_frames() { "$BIN" info "$1" --json --quick | python3 -c 'import json,sys; print(json.load(sys.stdin)["splits"]["train"]["frames"])'; }
synth_s=0
if [ -f "$DATA" ]; then
    have=$(train_frames "$DATA") || die "$DATA: not a usable recording (remove it to regenerate)"
    [ "$have" = "$FRAMES" ] || die "$DATA has $have training frames, not $FRAMES (remove it or set EPOCH_DATA)"
    echo "epoch.sh: using $DATA ($FRAMES training frames)" >&2
else
    # uint8 frames (train + test) plus a few float datasets; 20% slack
    need_kb=$(( (FRAMES * 2500 + 6000 * 2500 * 2 + FRAMES * 5 * 5 * 8) * 12 / 10 / 1024 ))
    avail_kb=$(df -Pk "$(dirname "$DATA")" | awk 'NR == 2 { print $4 }')
    [ "$avail_kb" -ge "$need_kb" ] || die "$(dirname "$DATA"): $((avail_kb / 1024)) MB free, need ~$((need_kb / 1024)) MB"
    echo "epoch.sh: generating $DATA ($FRAMES training frames${SYNTH:+, $SYNTH}) ..." >&2
    t0=$(now)
    # shellcheck disable=SC2086  # SYNTH is a list of options
    "$BIN" synth -o "$DATA" --frames "$FRAMES" --cells 5 $SYNTH --quiet || die "retinac synth failed"
    synth_s=$(since "$t0")
fi
info=$("$BIN" info "$DATA" --json --quick) || die "retinac info $DATA failed"
n_train=$(echo "$info" | python3 -c 'import json,sys; print(json.load(sys.stdin)["windows"]["train"])')
n_val=$(echo "$info" | python3 -c 'import json,sys; print(json.load(sys.stdin)["windows"]["val"])')
# the spec's training settings, from its canonical IR's train line (key=value pairs)
rundir=$(mktemp -d "$BUILD/bench/epoch_run.XXXXXX")
trap 'rm -rf "$rundir"' EXIT
"$BIN" check "$SPEC" --cells 5 --emit-ir "$rundir/ir.txt" > /dev/null || die "retinac check $SPEC failed"
train_field() { awk -v k="$1" '$1 == "train" { for (i = 2; i <= NF; i++) { split($i, kv, "="); if (kv[1] == k) print kv[2] } }' "$rundir/ir.txt"; }
[ "$(train_field val_split)" = block ] || die "$SPEC: val_split is not 'block' (bench/epoch_split.py mirrors the block split only)"
VALFRAC=$(train_field val_fraction)
BATCH=${EPOCH_BATCH:-$(train_field batch)}
[ -n "$BATCH" ] || die "$SPEC: no train batch in its IR; set EPOCH_BATCH"
# `retinac info` splits with the default validation fraction (0.1): check counts only then
expect=""
[ "$VALFRAC" = 0.1 ] && expect="--expect-train $n_train --expect-val $n_val"

# --- 2. retinac: one epoch, whole-command wall time
echo "epoch.sh: retinac train, 1 epoch, batch $BATCH ..." >&2
t0=$(now)
"$BIN" train "$SPEC" --data "$DATA" --epochs 1 -o "$rundir/run" --no-eval -q --batch "$BATCH" || die "retinac train failed"
wall=$(since "$t0")
ours=$(python3 - "$rundir/run/log.csv" "$wall" <<'EOF'
import csv, json, sys
rows = list(csv.DictReader(open(sys.argv[1])))
if len(rows) != 1:
    sys.exit("epoch.sh: %s: %d epochs logged, expected 1" % (sys.argv[1], len(rows)))
r = rows[0]
print(json.dumps({"wall_s": float(sys.argv[2]), "epoch_s": float(r["seconds"]),
                  "train_samples_per_s": float(r["samples_per_s"])}))
EOF
) || die "reading $rundir/run/log.csv failed"

# --- 3. PyTorch
torch='null'
if [ "$RUN_TORCH" != 0 ]; then
    avail_kb=$(awk '/^MemAvailable:/ { print $2 }' /proc/meminfo)
    need_kb=$(( FRAMES * 2500 * 5 * 12 / 10 / 1024 ))   # float32 frames + one uint8 slab, slack
    [ "$avail_kb" -ge "$need_kb" ] || die "PyTorch needs ~$((need_kb / 1024)) MB, $((avail_kb / 1024)) MB available (EPOCH_TORCH=0 skips it)"
    what="$TORCH_BATCHES timed steps, extrapolated"
    [ "$TORCH_BATCHES" = 0 ] && what="the whole epoch"
    echo "epoch.sh: PyTorch, same file and split ($what) ..." >&2
    # shellcheck disable=SC2086  # expect is a list of options
    torch=$(python3 bench/torch_epoch.py --data "$DATA" --batch "$BATCH" --max-batches "$TORCH_BATCHES" \
        --val-fraction "$VALFRAC" $expect) || die "bench/torch_epoch.py failed"
fi

load=$(cut -d' ' -f1-3 /proc/loadavg)
python3 bench/epoch_report.py --ours "$ours" --torch "$torch" --info "$info" --data "$DATA" \
    --spec "$SPEC" --batch "$BATCH" --synth="${SYNTH:-simulated retina}" --synth-s "$synth_s" \
    --load "$load" > "$OUT.tmp" || die "bench/epoch_report.py failed"
mv "$OUT.tmp" "$OUT"
cat "$OUT"
