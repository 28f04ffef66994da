#!/bin/sh
# ab.sh — interleaved A/B of two retinac binaries on one spec: `retinac bench` alternately with
# A and B for ROUNDS rounds (A B A B ...: load drifts hit both alike), then the median samples/s
# of training, inference and stream inference for each, and B/A.
#
#   bench/ab.sh OLD_RETINAC NEW_RETINAC [SPEC] [ROUNDS] [bench options...]
#   e.g. bench/ab.sh /tmp/old/build/retinac build/retinac specs/bncnn.lua 4 --batch 128 --iters 5
#
# Each binary gets its own JIT cache under $TMPDIR so neither reuses the other's objects.
set -eu
[ $# -ge 2 ] || { echo "usage: bench/ab.sh OLD_RETINAC NEW_RETINAC [SPEC] [ROUNDS] [bench options]" >&2; exit 2; }
A=$1 B=$2 SPEC=${3:-specs/bncnn.lua} ROUNDS=${4:-4}
shift 2; [ $# -gt 0 ] && shift; [ $# -gt 0 ] && shift
T=$(mktemp -d "${TMPDIR:-/tmp}/rc-ab.XXXXXX")
trap 'rm -rf "$T"' EXIT
r=1
while [ "$r" -le "$ROUNDS" ]; do
    for v in A B; do
        if [ $v = A ]; then bin=$A; else bin=$B; fi
        RETINAC_CACHE_DIR="$T/cache-$v" "$bin" bench "$SPEC" --json "$@" > "$T/$v.$r.json"
    done
    r=$((r + 1))
done
# median of one key over the rounds of one side
med() {
    cat "$T"/"$1".*.json | tr ',{}' '\n\n\n' | grep "\"$2\"" | sed 's/.*: *//' | sort -g |
        awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
printf '%-24s %12s %12s %8s   (%s rounds, %s)\n' "samples/s (median)" "A" "B" "B/A" "$ROUNDS" "$SPEC"
for k in train_samples_per_s infer_samples_per_s stream_samples_per_s; do
    a=$(med A $k) b=$(med B $k)
    [ -n "$a" ] && [ -n "$b" ] || continue
    printf '%-24s %12.1f %12.1f %8.3f\n' "$k" "$a" "$b" "$(echo "$b $a" | awk '{ print $1 / $2 }')"
done
