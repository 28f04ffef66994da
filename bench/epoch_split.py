"""epoch_split.py — the training/validation window split of runtime/data/data.c (RC_VAL_BLOCKS, the
default), for the benchmarks that size an epoch: bench/report.py (epoch time extrapolated from
step times) and bench/torch_epoch.py (a real PyTorch epoch on the same windows as retinac's).

Mirrors data.c plan() for one segment of T frames and history h: window i (i = 0 .. T-h-1) reads
frames i .. i+h-1 and is labelled by frame i+h, so it spans frames [i, i+h]. val_fraction of the
frames lie in n_blocks contiguous blocks of vlen = llround(frac * T / n_blocks) frames, block k
centred in part k of n_blocks equal parts. A window is validation if it lies wholly in a block,
dropped if it touches one partly, training otherwise. Pure Python (no numpy): intervals only.
Invariant: the returned intervals are disjoint, sorted, inclusive, and inside [0, T-h-1]."""
import math


def block_split(T, h, frac=0.1, n_blocks=4):
    """(train, val): lists of inclusive (first, last) window-index intervals."""
    N = T - h
    if N <= 0:
        return [], []
    vlen = max(1, int(math.floor(frac * T / n_blocks + 0.5)))   # llround for positive values
    if n_blocks * vlen >= T:
        raise ValueError("%d validation blocks of %d frames do not fit %d frames" % (n_blocks, vlen, T))
    val, touched = [], []
    for k in range(n_blocks):
        p0, p1 = T * k // n_blocks, T * (k + 1) // n_blocks
        lo = p0 + (p1 - p0 - vlen) // 2
        hi = lo + vlen - 1
        if hi - h >= lo:
            val.append((lo, min(hi - h, N - 1)))
        a, b = max(0, lo - h), min(N - 1, hi)          # windows with any frame in the block
        if a <= b:
            touched.append((a, b))
    touched.sort()
    train, nxt = [], 0
    for a, b in touched:
        if a > nxt:
            train.append((nxt, a - 1))
        nxt = max(nxt, b + 1)
    if nxt <= N - 1:
        train.append((nxt, N - 1))
    return train, val


def count(intervals):
    return sum(b - a + 1 for a, b in intervals)


def indices(intervals):
    """Every window index of the intervals, in order (a Python list; the caller wraps it)."""
    out = []
    for a, b in intervals:
        out.extend(range(a, b + 1))
    return out
