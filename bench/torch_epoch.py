#!/usr/bin/env python3
"""torch_epoch.py — one PyTorch CPU training epoch of the BN-CNN on a recording, for bench/epoch.sh:
the PyTorch side of "epoch time on a full-size recording" (issue #7 d), done the way
torch-deep-retina does it (reference §2.3-2.4): the whole /train/stimulus read into memory as
float32 and z-scored with one scalar mean/std, the history windows an as_strided view
(rolling_window), y[i] = rate[i + 40]; each step gathers a shuffled batch of windows (a copy),
runs forward + Poisson loss (+ L1 activity) + backward + Adam (coupled L2, torch's
weight_decay); then one validation pass in eval mode under torch.no_grad().

The windows are split exactly as retinac's trainer splits them (bench/epoch_split.py, checked
against --expect-train/--expect-val, which bench/epoch.sh takes from `retinac info`), so both
run the same number of steps and validation windows.

--max-batches K > 0 times only K training steps (after one untimed warm-up step) and K
validation batches, and extrapolates the epoch from them ("extrapolated": true in the output);
0 runs and times the whole epoch. Prints one JSON object: load_s, n_train, n_val, steps,
measured_steps, step_s, train_s, val_s, epoch_s (train_s + val_s; load_s not included),
extrapolated, torch, threads, batch, cells.
usage: torch_epoch.py --data FILE [--batch 512] [--max-batches K] [--threads N]"""
import argparse
import json
import sys
import time

import h5py
import numpy as np
import torch
import torch.nn as nn

import epoch_split
from torch_bench import bncnn


def load(path, key, hist):
    """(X (N, hist, H, W) view, y (N, cells), frames (T, H, W)) z-scored as the reference."""
    with h5py.File(path, "r") as f:
        stim = f["train/stimulus"]
        T, H, W = stim.shape
        x = torch.empty(T, H, W)
        s1 = s2 = 0.0
        for t0 in range(0, T, 10000):          # read and convert in slabs: bounded extra memory
            part = torch.from_numpy(np.asarray(stim[t0:t0 + 10000], dtype=np.float32))
            x[t0:t0 + part.shape[0]] = part
            s1 += float(part.sum(dtype=torch.float64))
            s2 += float((part.double() ** 2).sum())
        rate = np.asarray(f["train/response/" + key], dtype=np.float32)   # (cells, T)
    n = float(T) * H * W
    mean = s1 / n
    std = max(s2 / n - mean * mean, 0.0) ** 0.5 + 1e-7
    x.sub_(mean).div_(std)
    N = T - hist
    X = x.as_strided((N, hist, H, W), (H * W, H * W, W, 1))
    y = torch.from_numpy(np.ascontiguousarray(rate[:, hist:].T))
    return X, y, x


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", required=True)
    ap.add_argument("--batch", type=int, default=512)
    ap.add_argument("--max-batches", type=int, default=0)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--rate-key", default="firing_rate_10ms")
    ap.add_argument("--val-fraction", type=float, default=0.1)
    ap.add_argument("--val-blocks", type=int, default=4)
    ap.add_argument("--expect-train", type=int, default=-1)
    ap.add_argument("--expect-val", type=int, default=-1)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    hist, B = 40, a.batch

    t0 = time.perf_counter()
    X, y, frames = load(a.data, a.rate_key, hist)
    load_s = time.perf_counter() - t0
    T, cells = frames.shape[0], y.shape[1]
    tr, va = epoch_split.block_split(T, hist, a.val_fraction, a.val_blocks)
    tr_idx = torch.tensor(epoch_split.indices(tr), dtype=torch.int64)
    va_idx = torch.tensor(epoch_split.indices(va), dtype=torch.int64)
    n_tr, n_va = len(tr_idx), len(va_idx)
    for name, got, want in (("training", n_tr, a.expect_train), ("validation", n_va, a.expect_val)):
        if want >= 0 and got != want:
            sys.exit("torch_epoch.py: %s: %d %s windows, but retinac counts %d"
                     % (a.data, got, name, want))
    steps = n_tr // B
    if steps == 0:
        sys.exit("torch_epoch.py: %s: batch %d larger than the %d training windows" % (a.data, B, n_tr))

    model = bncnn(cells, hist, X.shape[2])
    opt = torch.optim.Adam(model.parameters(), lr=5e-3, weight_decay=1e-3)
    loss_fn = nn.PoissonNLLLoss(log_input=False)
    l1 = 1e-4
    perm = tr_idx[torch.randperm(n_tr)]

    def step(k):
        idx = perm[k * B:(k + 1) * B]
        out = model(X[idx])                 # X[idx]: gathers a (B, 40, H, W) copy
        loss = loss_fn(out, y[idx]) + l1 * out.abs().sum(1).mean()
        opt.zero_grad(set_to_none=False)
        loss.backward()
        opt.step()

    partial = 0 < a.max_batches < steps
    model.train()
    if partial:
        step(0)                             # warm-up (allocator, thread pool); not timed
        k_meas = a.max_batches
        t0 = time.perf_counter()
        for k in range(1, 1 + k_meas):
            step(k)
        step_s = (time.perf_counter() - t0) / k_meas
        train_s = steps * step_s
    else:
        k_meas = steps
        t0 = time.perf_counter()
        for k in range(steps):
            step(k)
        train_s = time.perf_counter() - t0
        step_s = train_s / steps

    model.eval()
    nb_val = (n_va + B - 1) // B
    nb_meas = min(a.max_batches, nb_val) if partial else nb_val
    t0 = time.perf_counter()
    with torch.no_grad():
        for k in range(nb_meas):
            model(X[va_idx[k * B:(k + 1) * B]])
    val_s = time.perf_counter() - t0
    if nb_meas < nb_val:
        val_s *= n_va / float(min(nb_meas * B, n_va))

    print(json.dumps({"load_s": load_s, "n_train": n_tr, "n_val": n_va, "steps": steps,
                      "measured_steps": k_meas, "step_s": step_s, "train_s": train_s,
                      "val_s": val_s, "epoch_s": train_s + val_s, "extrapolated": partial,
                      "torch": torch.__version__, "threads": torch.get_num_threads(), "batch": B,
                      "cells": cells, "frames": T}))


if __name__ == "__main__":
    main()
