#!/bin/sh
# triage.sh — sorts the artifacts a fuzz run saved (crash-*, leak-*, oom-*, timeout-*) into
# retinac's bugs and HDF5's. Each is rerun on its harness (full stacks: fast_unwind_on_malloc=0) and
# classified by the first frame past the sanitizer, libFuzzer and libc of each stack in the report
# (the error stack and, for memory errors and leaks, the "allocated by" stack):
#   RETINAC   a frame in retinac source (runtime/, compiler/, common/, ..., fuzz/): a retinac bug or
#             a retinac buffer HDF5 overran; or a harness check (round trip, HDF5 object left open);
#   HDF5      only HDF5 frames: an HDF5 1.10.8 bug on a corrupt file (see fuzz/hdf5_known/);
#   NO REPRO  nothing on a rerun alone (seen for HDF5 leaks that need earlier inputs' state;
#             fork mode does not keep the child's report): rerun with the run's corpus to look.
# Check by hand an HDF5 leak whose stack passes through H5Aread/H5Dread called by retinac: memory
# HDF5 allocates for the caller (variable-length strings) is the caller's to free.
# usage: sh fuzz/triage.sh [ARTIFACT_DIR]  (default build-fuzz/artifacts; FUZZ_BUILD: the binaries)
# Exit 1 if any artifact points at retinac code.
B=${FUZZ_BUILD:-build-fuzz}
D=${1:-$B/artifacts}
ours=0
for a in "$D"/*-crash-* "$D"/*-leak-* "$D"/*-oom-* "$D"/*-timeout-* "$D"/*-slow-unit-*; do
    [ -f "$a" ] || continue
    t=$(basename "$a"); t=${t%%-crash-*}; t=${t%%-leak-*}; t=${t%%-oom-*}; t=${t%%-timeout-*}; t=${t%%-slow-unit-*}
    out=$(ASAN_OPTIONS=allocator_may_return_null=1:fast_unwind_on_malloc=0 \
          timeout 120 "$B/fuzz/fuzz_$t" -rss_limit_mb=2048 -timeout=30 "$a" 2>&1)
    what=$(printf '%s\n' "$out" | grep -m1 -oE 'ERROR: [A-Za-z]+: [A-Za-z-]+( \([^)]*\))?|round trip \([a-z ]*\)|left [0-9]+ HDF5 object')
    frames=$(printf '%s\n' "$out" | awk '/^ +#0 /{s++}
        /^ +#[0-9]+ / && !(s in got) && $0 !~ /sanitizer|interceptor|fuzzer::|libc\.so|libc-start|memmove|memcpy|memset| in (malloc|calloc|realloc|free|strdup)| in _start/ {
            got[s] = 1; sub(/^ +#[0-9]+ 0x[0-9a-f]+ (in )?/, ""); sub(/ \(BuildId.*/, ""); print "    " $0 }' | head -3)
    if [ -z "$what" ]; then v="NO REPRO"
    elif printf '%s\n%s\n' "$frames" "$what" | grep -qE '(runtime|compiler|common|analysis|sim|search|cli|fuzz)/|round trip|HDF5 object'; then
        v="RETINAC"; ours=$((ours + 1))
    else v="HDF5"; fi
    echo "$v  $a  [$what]"
    [ -n "$frames" ] && printf '%s\n' "$frames"
done
echo "triage: $ours artifact(s) point at retinac code"
[ $ours -eq 0 ]
