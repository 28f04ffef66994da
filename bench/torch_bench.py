#!/usr/bin/env python3
"""torch_bench.py — PyTorch CPU baseline for `make bench`: the BN-CNN of specs/bncnn.lua (McIntosh
et al. 2016, torch-deep-retina BNCNN with bnorm_d=1) at the same batch and cell count, timed the
way `retinac bench` times it: a training step is forward + Poisson loss + backward (no optimizer
update, gradients zeroed each step); inference is model.eval() under torch.no_grad().
Inputs are a materialized (B, 40, 50, 50) tensor, as torch-deep-retina feeds them.
Prints one JSON object (train_samples_per_s, infer_samples_per_s, train_step_s, infer_s,
train_cpu_s, infer_cpu_s, torch, threads)."""
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


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, default=512)
    ap.add_argument("--cells", type=int, default=5)
    ap.add_argument("--iters", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--threads", type=int, default=0)
    a = ap.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    model = bncnn(a.cells)
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
    res.update({"torch": torch.__version__, "threads": torch.get_num_threads(), "batch": a.batch,
                "cells": a.cells, "iters": a.iters})
    print(json.dumps(res))


if __name__ == "__main__":
    main()
