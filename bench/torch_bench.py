#!/usr/bin/env python3
"""torch_bench.py — PyTorch CPU baseline for `make bench`: the BN-CNN of specs/bncnn.lua (McIntosh
et al. 2016, torch-deep-retina BNCNN with bnorm_d=1) at the same batch and cell count, timed the
way `retinac bench` times it: a training step is forward + Poisson loss + backward (no optimizer
update, gradients zeroed each step); inference is model.eval() under torch.no_grad().
Inputs are a materialized (B, 40, 50, 50) tensor, as torch-deep-retina feeds them.
Streaming inference (matching `retinac bench --movie`): a (T, 50, 50) movie of --movie frames,
its T - 40 history windows as one as_strided view (torch-deep-retina's rolling_window), fed in
batches of B consecutive windows under torch.inference_mode(), eval mode; the predictions are
kept in a (T - 40, cells) tensor. One batch is a warmup; each pass is timed whole.
--compile wraps the model in torch.compile (inductor, static shapes), the stronger CPU peer:
its compilation happens in the warmup (at least 2 calls per mode), never in the timed calls;
streaming is then skipped (the movie's last, shorter batch would recompile).
Prints one JSON object (train_samples_per_s, infer_samples_per_s, train_step_s, infer_s,
train_cpu_s, infer_cpu_s, stream_samples_per_s, stream_s, stream_cpu_s, movie_frames,
movie_windows, torch, threads, mode: "eager" or "compile")."""
import argparse
import json
import time

import torch
import torch.nn as nn


class GaussianNoise(nn.Module):
    def __init__(self, std):
        super().__init__()
        self.std = std

    def forward(self, x):
        return x + self.std * torch.randn_like(x) if self.training and self.std > 0 else x


def bncnn(cells, hist=40, hw=50):
    h1, h2 = hw - 14, hw - 24
    return nn.Sequential(
        nn.Conv2d(hist, 8, 15), nn.Flatten(), nn.BatchNorm1d(8 * h1 * h1, eps=1e-3, momentum=0.01),
        nn.Unflatten(1, (8, h1, h1)), GaussianNoise(0.05), nn.ReLU(),
        nn.Conv2d(8, 8, 11), nn.Flatten(), nn.BatchNorm1d(8 * h2 * h2, eps=1e-3, momentum=0.01),
        nn.Unflatten(1, (8, h2, h2)), GaussianNoise(0.05), nn.ReLU(),
        nn.Flatten(), nn.Linear(8 * h2 * h2, cells, bias=False),
        nn.BatchNorm1d(cells, eps=1e-3, momentum=0.01), nn.Softplus())


def stream(model, batch, cells, frames, iters, warmup, hist=40, hw=50):
    """Batched inference over every window of a movie, as a PyTorch user predicts a test set."""
    if frames <= hist:
        raise SystemExit("torch_bench.py: --movie %d holds no %d-frame window" % (frames, hist))
    movie = torch.rand(frames, hw, hw) * 2 - 1
    n = frames - hist
    # X[i, j] = movie[i + j]: the (n, 40, 50, 50) history tensor as a view, nothing copied
    X = movie.as_strided((n, hist, hw, hw), (hw * hw, hw * hw, hw, 1))
    out = torch.empty(n, cells)
    model.eval()
    with torch.inference_mode():
        for _ in range(warmup):
            model(X[:batch])
        t0, c0 = time.perf_counter(), time.process_time()
        for _ in range(iters):
            for i in range(0, n, batch):
                out[i:i + batch] = model(X[i:i + batch])
        t, c = (time.perf_counter() - t0) / iters, (time.process_time() - c0) / iters
    return {"stream_s": t, "stream_cpu_s": c, "stream_samples_per_s": n / t,
            "movie_frames": frames, "movie_windows": n, "movie_iters": iters}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, default=512)
    ap.add_argument("--cells", type=int, default=5)
    ap.add_argument("--iters", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--movie", type=int, default=2000 + 40,
                    help="streaming inference movie frames (0 skips it)")
    ap.add_argument("--movie-iters", type=int, default=1)
    ap.add_argument("--compile", action="store_true", help="time torch.compile(model) (inductor)")
    a = ap.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    model = bncnn(a.cells)
    if a.compile:
        model = torch.compile(model, dynamic=False)
        a.warmup = max(a.warmup, 2)
        a.movie = 0
    x = torch.randn(a.batch, 40, 50, 50)
    target = torch.randint(0, 3, (a.batch, a.cells)).float()
    loss_fn = nn.PoissonNLLLoss(log_input=False)

    def train_step():
        model.train()
        model.zero_grad(set_to_none=False)
        loss = loss_fn(model(x), target)
        loss.backward()

    def infer():
        model.eval()
        with torch.no_grad():
            model(x)

    res = {}
    for name, fn in (("train", train_step), ("infer", infer)):
        for _ in range(a.warmup):
            fn()
        t0, c0 = time.perf_counter(), time.process_time()
        for _ in range(a.iters):
            fn()
        t, c = (time.perf_counter() - t0) / a.iters, (time.process_time() - c0) / a.iters
        key = "train_step_s" if name == "train" else "infer_s"
        res[key] = t
        res[name + "_cpu_s"] = c
        res[name + "_samples_per_s"] = a.batch / t
    if a.movie:
        res.update(stream(model, a.batch, a.cells, a.movie, a.movie_iters, a.warmup))
    res.update({"torch": torch.__version__, "threads": torch.get_num_threads(), "batch": a.batch,
                "cells": a.cells, "iters": a.iters, "mode": "compile" if a.compile else "eager"})
    print(json.dumps(res))


if __name__ == "__main__":
    main()
