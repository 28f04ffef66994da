#!/bin/sh
# make_corpus.sh — regenerates the committed fuzz seed corpus fuzz/corpus/<target>/ from the
# sources (run from the repository root after `make`; BUILD=build by default):
#   spec/        specs/*.lua and tests/fixtures/bad_specs/* (valid specs and every rejected kind;
#                bad_specs/def/X.lua as def_X.lua)
#   ir_text/     `retinac check --emit-ir` of each shipped spec and of the seed specs below
#   prim/        the graph text of each defined layer in ir_text/ (its `prim` lines, unprefixed),
#                one file per distinct graph
#   checkpoint/  checkpoints of three tiny models (conv+dense+batchnorm, LN, gcconv), trained for
#                one or two epochs (--backend ref) on a 16x16 tiny retina (fuzz/make_seeds.c)
#   probe/       the small recordings fuzz/make_seeds.c writes (Baccus with every optional part,
#                per-cell repeats, training split only, openretina)
#   torch/       the smaller torch.save fixtures of tests/fixtures/torch_import (zip and legacy,
#                a convgc model, a whole pickled module, random bytes)
# The generators are deterministic (checkpoints record the git version and timing, so their
# bytes differ run to run; their structure does not). Reproducers of fixed bugs are added by
# hand as <target>/regress-*: this script keeps them.
set -eu
B=${BUILD:-build}
R=$B/retinac
C=fuzz/corpus
[ -x "$R" ] || { echo "make_corpus.sh: $R not built (run make)" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p $C/spec $C/ir_text $C/prim $C/checkpoint $C/probe $C/torch "$tmp/probe"
T=tests/fixtures/torch_import
cp $T/cnn.pt $T/cnn_legacy.pt $T/vary_convgc.pt $T/vary_convgc_legacy.pt $T/bad/whole_module.pt \
    $T/bad/not_torch.pt $C/torch/

cc -std=c11 -O1 -Icommon $(pkg-config --cflags hdf5) -o "$tmp/make_seeds" fuzz/make_seeds.c \
    $(pkg-config --libs hdf5) -lm
"$tmp/make_seeds" "$tmp"
cp "$tmp"/probe/*.h5 $C/probe/

cp specs/*.lua $C/spec/
cp tests/fixtures/bad_specs/*.lua $C/spec/
for f in tests/fixtures/bad_specs/def/*.lua; do cp "$f" "$C/spec/def_$(basename "$f")"; done

# seed specs for the checkpoints (16x16 input, history 8, as the tiny retina)
cat > "$tmp/tiny_ln.lua" <<'LUA'
return model "tiny_ln" {
  input = { history = 8, height = 16, width = 16 },
  dense { bias = true },
  softplus {},
  train = { lr = 1e-2, batch = 16, epochs = 2, l1_activity = 0, seed = 7 },
}
LUA
cat > "$tmp/gc.lua" <<'LUA'
return model "gc" {
  input = { history = 8, height = 16, width = 16 },
  conv { channels = 3, kernel = 5 }, relu {},
  gcconv { kernel = 3, position = "data" }, softplus {},
  train = { lr = 1e-2, batch = 16, epochs = 1, l1_activity = 0, seed = 7, schedule = "plateau" },
}
LUA
# seed spec with every prelude definition and a defined layer over most primitives
cp fuzz/def_prelude.lua "$tmp/def_prelude.lua"
# and one with the conv forms compiler/lower.c lowers whole (stacked, tiled, local, gcconv), a
# near miss and a padded conv
cp fuzz/def_forms.lua "$tmp/def_forms.lua"
cp "$tmp/tiny_ln.lua" "$tmp/gc.lua" "$tmp/def_prelude.lua" "$tmp/def_forms.lua" $C/spec/

for s in specs/*.lua "$tmp/tiny_ln.lua" "$tmp/gc.lua" "$tmp/def_prelude.lua" "$tmp/def_forms.lua"; do
    n=$(basename "$s" .lua)
    "$R" check "$s" --emit-ir "$C/ir_text/$n.ir" > /dev/null
done

# one seed per distinct defined-layer graph: the prim lines after each `layer def kind=K`
for f in $C/ir_text/*.ir; do
    awk -v out="$tmp/prim_$(basename "$f" .ir)" '
        /^layer def kind=/ { n++; k = substr($0, 16); file = out "-" n "-" k ".txt"; next }
        /^prim / { if (file) print substr($0, 6) > file; next }
        { file = "" }' "$f"
done
for f in "$tmp"/prim_*.txt; do
    h=$(sha1sum < "$f" | cut -c1-8)         # the same graph twice: one file
    k=$(basename "$f" .txt)
    cp "$f" "$C/prim/${k##*-}_$h.txt"
done

for m in specs/tiny.lua:tiny:1 "$tmp/tiny_ln.lua:tiny_ln:2" "$tmp/gc.lua:gc:1"; do
    s=${m%%:*}; rest=${m#*:}; n=${rest%%:*}; e=${rest#*:}
    RETINAC_CACHE_DIR="$tmp/cache" "$R" train "$s" --data "$tmp/train_rec.h5" -o "$tmp/run_$n" \
        --epochs "$e" --backend ref --no-eval -q
    cp "$tmp/run_$n/checkpoint.h5" "$C/checkpoint/$n.h5"
done
du -sh $C/*
