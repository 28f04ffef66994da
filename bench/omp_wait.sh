#!/bin/sh
# omp_wait.sh — training speed at a small and a large batch under OpenMP wait policies, on an
# idle machine and beside a CPU-bound neighbour (issue 19, item 1: small batches must not
# collapse on a shared machine).
#
#   bench/omp_wait.sh [RETINAC] [SPEC] [ROUNDS]      (defaults: build/retinac specs/bncnn.lua 3)
#
# For each load (idle; LOAD_PROCS busy-looping processes beside it, default 1) and each policy
# in POLICIES (default: "default active passive spin10000": the environment retinac gets
# without OMP_WAIT_POLICY/GOMP_SPINCOUNT set; OMP_WAIT_POLICY=active or passive; spinN:
# GOMP_SPINCOUNT=N, libgomp's spin iterations before a thread sleeps), `retinac train`
# runs one epoch of a synthetic recording (FRAMES frames, default 12000, 8 cells) at batch 32
# and 512 with THREADS threads (default: the cores), interleaved over ROUNDS rounds; prints the
# median training samples/s (log.csv: the whole epoch, data pipeline and optimizer included)
# and batch 32's per-sample rate as a fraction of batch 512's.
set -eu
R=${1:-build/retinac} SPEC=${2:-specs/bncnn.lua} ROUNDS=${3:-3}
THREADS=${THREADS:-$(nproc)} LOAD_PROCS=${LOAD_PROCS:-1} FRAMES=${FRAMES:-12000}
POLICIES=${POLICIES:-default active passive spin10000}
T=$(mktemp -d "${TMPDIR:-/tmp}/rc-ompw.XXXXXX")
load_pids=""
cleanup() { for p in $load_pids; do kill "$p" 2>/dev/null || true; done; rm -rf "$T"; }
trap cleanup EXIT INT TERM
export RETINAC_CACHE_DIR="$T/cache"
"$R" synth -o "$T/rec.h5" --cells 8 --frames "$FRAMES" --test-frames 2000 --quiet
"$R" bench "$SPEC" --cells 8 --batch 32 --iters 1 --movie 0 -q --threads "$THREADS" > /dev/null   # JIT once

envargs() { # policy -> the words for env (fixed tokens, no blanks)
    case $1 in
        default) echo "-u OMP_WAIT_POLICY -u GOMP_SPINCOUNT" ;;
        spin*) echo "-u OMP_WAIT_POLICY GOMP_SPINCOUNT=${1#spin}" ;;
        *) echo "-u GOMP_SPINCOUNT OMP_WAIT_POLICY=$1" ;;
    esac
}
run() { # load policy batch round -> samples/s of the epoch
    d="$T/run.$1.$2.$3.$4"
    # shellcheck disable=SC2046
    env $(envargs "$2") "$R" train "$SPEC" --data "$T/rec.h5" -o "$d" --epochs 1 --batch "$3" \
        --threads "$THREADS" -q > /dev/null
    tail -n 1 "$d/log.csv" | awk -F, '{ print $NF }'
}
for load in idle loaded; do
    if [ $load = loaded ]; then
        i=0
        while [ $i -lt "$LOAD_PROCS" ]; do sh -c 'while :; do :; done' & load_pids="$load_pids $!"; i=$((i + 1)); done
    fi
    r=1
    while [ $r -le "$ROUNDS" ]; do
        for pol in $POLICIES; do
            run $load $pol 32 $r > "$T/$load.$pol.32.$r.txt"
            run $load $pol 512 $r > "$T/$load.$pol.512.$r.txt"
        done
        r=$((r + 1))
    done
    for p in $load_pids; do kill "$p" 2>/dev/null || true; done
    load_pids=""
done
med() { # files
    cat $1 | sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
printf '%s, %s threads, %s rounds, medians; loaded = %s busy-looping process(es) beside it\n' "$SPEC" "$THREADS" "$ROUNDS" "$LOAD_PROCS"
printf '%-8s %-8s %12s %12s %10s %s\n' load policy "b32 samp/s" "b512 samp/s" "b32/b512" "(each round: b32, b512)"
for load in idle loaded; do
    for pol in $POLICIES; do
        a=$(med "$T/$load.$pol.32.*.txt")
        b=$(med "$T/$load.$pol.512.*.txt")
        each="" r=1
        while [ $r -le "$ROUNDS" ]; do
            each="$each $(cat "$T/$load.$pol.32.$r.txt" "$T/$load.$pol.512.$r.txt" | awk '{ v[NR] = $1 } END { printf "%.0f/%.0f", v[1], v[2] }')"
            r=$((r + 1))
        done
        printf '%-8s %-8s %12.1f %12.1f %10.2f %s\n' $load $pol "$a" "$b" "$(echo "$a $b" | awk '{ print $1 / $2 }')" "$each"
    done
done
