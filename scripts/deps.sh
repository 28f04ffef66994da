#!/bin/sh
# deps.sh — the one list of Debian packages retinac needs, and the one check that installs them.
#
# usage: scripts/deps.sh [build|browser|fuzz|bench]...   (default: build)
#   build    compiler, Lua 5.4, HDF5, Criterion, FFTW, Open MPI, PLplot with its cairo driver
#            cJSON (retinac report) and libzip (retinac import): what `make`, `make test` and `make demo` need
#   browser  headless Chromium: `make test` opens a report's index.html in it
#   fuzz     clang with libFuzzer and its OpenMP headers (libomp), for `make fuzz` /
#            `make fuzz-regress`
#   bench    python3 and its venv module: `make bench` installs PyTorch into a venv of its own
# Exit 0 when every package is installed. Otherwise, as root on Debian or Ubuntu, install the
# missing ones with apt-get (noninteractive) and exit with apt-get's status; as anyone else,
# print the one command to run and exit 1. Used by make demo, make test and .ci/run.
set -eu

build="build-essential pkg-config liblua5.4-dev libhdf5-dev libcriterion-dev libfftw3-dev hdf5-tools libopenmpi-dev openmpi-bin libplplot-dev plplot-driver-cairo libcjson-dev libzip-dev"
browser="chromium"
fuzz="clang libclang-rt-14-dev libomp-14-dev"
bench="python3 python3-venv"

want=""
[ $# -eq 0 ] && set -- build
for group in "$@"; do
    case "$group" in
        build) want="$want $build" ;;
        browser) want="$want $browser" ;;
        fuzz) want="$want $fuzz" ;;
        bench) want="$want $bench" ;;
        *) echo "deps.sh: unknown group '$group' (build, browser, fuzz, bench)" >&2; exit 2 ;;
    esac
done

missing=""
for p in $want; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0

if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "deps.sh: installing:$missing" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    # shellcheck disable=SC2086
    exec apt-get install -y -qq $missing
fi
echo "retinac needs these Debian packages:$missing" >&2
echo "install them with:  sudo apt-get install$missing" >&2
exit 1
