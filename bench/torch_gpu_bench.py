#!/usr/bin/env python3
"""torch_gpu_bench.py — PyTorch + cuDNN throughput on the model retinac benchmarks, built from
the canonical IR text that `gpu_bench --emit-ir FILE` writes (so both sides run the identical
layer list, shapes, batch and optimizer).

Measures inference (eval mode) and one training step (train forward, Poisson/MSE loss + L1
activity, backward, Adam with coupled L2), after warm-up, with torch.cuda.synchronize around
the timed loop. The input windows are gathered from a (T, H, W) frame tensor on the GPU inside
the timed region (retinac reads the frame stream directly, so both pay for the data path).
Two settings: cuDNN defaults (TF32 tensor cores allowed for convolutions, cudnn.benchmark on)
and strict FP32 (TF32 off), since retinac computes in FP32.

usage: torch_gpu_bench.py IR_FILE --cells N [--batch B] [--iters N] [--json] [--device cuda|cpu]
"""
import argparse
import json
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


def parse_ir(path):
    layers, inp, train, name = [], {}, {}, "model"
    with open(path) as f:
        for line in f:
            parts = line.split()
            if not parts:
                continue
            head = parts[0]
            if head == "model":
                name = parts[1]
                continue
            if head == "layer":
                kind = parts[1]
                kv = dict(p.split("=", 1) for p in parts[2:])
                layers.append((kind, kv))
            elif head in ("input", "train"):
                kv = dict(p.split("=", 1) for p in parts[1:])
                (inp if head == "input" else train).update(kv)
    return name, inp, layers, train


def stack_plan(k, s):
    if (k - s) % (s - 1) == 0:
        return [s] * ((k - s) // (s - 1) + 1)
    n0 = (k - s) // (s - 1) + 1
    last = k - (s + (n0 - 1) * (s - 1)) + 1
    return [s] * n0 + [last]


class Noise(nn.Module):
    def __init__(self, std):
        super().__init__()
        self.std = std

    def forward(self, x):
        return x + self.std * torch.randn_like(x) if self.training and self.std > 0 else x


class BN(nn.Module):
    """BatchNorm over units (flattened C*H*W) or channels, optional |scale| (AbsBatchNorm)."""

    def __init__(self, feat, over, eps, momentum, absscale):
        super().__init__()
        self.over, self.eps, self.momentum, self.absscale = over, eps, momentum, absscale
        self.scale = nn.Parameter(torch.ones(feat))
        self.shift = nn.Parameter(torch.zeros(feat))
        self.register_buffer("running_mean", torch.zeros(feat))
        self.register_buffer("running_var", torch.ones(feat))

    def forward(self, x):
        shp = x.shape
        if self.over == "unit":
            x = x.reshape(shp[0], -1)
        w = self.scale.abs() if self.absscale else self.scale
        y = F.batch_norm(x, self.running_mean, self.running_var, w, self.shift, self.training,
                         self.momentum, self.eps)
        return y.reshape(shp)


class Act(nn.Module):
    def __init__(self, kind):
        super().__init__()
        self.kind = kind

    def forward(self, x):
        k = self.kind
        if k == "relu": return F.relu(x)
        if k == "softplus": return F.softplus(x)
        if k == "exp": return torch.exp(x)
        if k == "abs": return x.abs()
        if k == "square": return x * x
        if k == "requ": return F.relu(x) ** 2
        if k == "sigmoid": return torch.sigmoid(x)
        if k == "tanh": return torch.tanh(x)
        return x


class GC(nn.Module):
    def __init__(self, cin, cells, k, bias):
        super().__init__()
        self.conv = nn.Conv2d(cin, cells, k, bias=bias)
        self.cells = cells

    def forward(self, x):
        y = self.conv(x)
        r, c = y.shape[2] // 2, y.shape[3] // 2   # RC_POS_CENTER, as gpu_bench uses
        return y[:, :, r, c]


def build(inp, layers, cells):
    c, h, w = int(inp["history"]), int(inp["height"]), int(inp["width"])
    if int(inp.get("crop", "0")):
        h = w = int(inp["crop"])
    mods = []
    for kind, kv in layers:
        if kind == "conv":
            k, ch, bias = int(kv["kernel"]), int(kv["channels"]), kv["bias"] == "true"
            if int(kv.get("period", "1")) != 1:
                raise SystemExit("torch_gpu_bench: tiled conv (period != 1) has no PyTorch equivalent here")
            s = int(kv.get("stack", "0"))
            if s:
                sc = int(kv.get("stack_channels", "0")) or ch
                ks = stack_plan(k, s)
                p = float(kv.get("stack_dropout", "0"))
                cin = c
                for j, kj in enumerate(ks):
                    last = j == len(ks) - 1
                    mods.append(nn.Conv2d(cin, ch if last else sc, kj, bias=bias and last))
                    if not last and p > 0:
                        mods.append(nn.Dropout(p))
                    cin = sc
            else:
                mods.append(nn.Conv2d(c, ch, k, bias=bias))
            c, h, w = ch, h - k + 1, w - k + 1
        elif kind == "batchnorm":
            over = kv["over"]
            feat = c * h * w if over == "unit" else c
            mods.append(BN(feat, over, float(kv["eps"]), float(kv["momentum"]), kv["abs"] == "true"))
        elif kind == "noise":
            mods.append(Noise(float(kv["std"])))
        elif kind == "dropout":
            mods.append(nn.Dropout(float(kv["p"])))
        elif kind == "dense":
            units = int(kv["units"]) or cells
            mods.append(nn.Flatten())
            mods.append(nn.Linear(c * h * w, units, bias=kv["bias"] == "true"))
            c, h, w = units, 1, 1
        elif kind == "gcconv":
            k = int(kv["kernel"])
            mods.append(GC(c, cells, k, kv["bias"] == "true"))
            c, h, w = cells, 1, 1
        else:
            mods.append(Act(kind))
    mods.append(nn.Flatten())
    return nn.Sequential(*mods)


def bench(model, frames, hist, B, train, iters, dev):
    starts = torch.arange(B, device=dev)
    idx = starts[:, None] + torch.arange(hist, device=dev)[None, :]
    cells = None
    tl = float(train.get("lr", "5e-3")), float(train.get("l2", "0")), float(train.get("l1_activity", "0"))
    opt = torch.optim.Adam(model.parameters(), lr=tl[0], weight_decay=tl[1])
    mse = train.get("loss", "poisson") == "mse"
    l1_sum = train.get("l1_mode", "mean") == "sum"

    def sync():
        if dev == "cuda":
            torch.cuda.synchronize()

    model.eval()
    with torch.no_grad():
        for _ in range(3):
            y = model(frames[idx])
        cells = y.shape[1]
        sync()
        t0 = time.perf_counter()
        for _ in range(iters):
            y = model(frames[idx])
        sync()
        t_inf = (time.perf_counter() - t0) / iters
    target = (torch.arange(B * cells, device=dev) % 3).float().reshape(B, cells)
    model.train()

    def step():
        opt.zero_grad(set_to_none=True)
        y = model(frames[idx])
        loss = F.mse_loss(y, target) if mse else F.poisson_nll_loss(y, target, log_input=False)
        l1 = y.abs().sum() if l1_sum else y.abs().sum() / B
        (loss + tl[2] * l1).backward()
        opt.step()

    for _ in range(3):
        step()
    sync()
    t0 = time.perf_counter()
    for _ in range(iters):
        step()
    sync()
    t_train = (time.perf_counter() - t0) / iters
    return t_inf, t_train


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("ir")
    ap.add_argument("--cells", type=int, required=True)
    ap.add_argument("--batch", type=int, default=0)
    ap.add_argument("--iters", type=int, default=20)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--device", default="cuda")
    a = ap.parse_args()
    name, inp, layers, train = parse_ir(a.ir)
    B = a.batch or int(train.get("batch", "512"))
    dev = a.device
    if dev == "cuda" and not torch.cuda.is_available():
        print("torch_gpu_bench: torch sees no CUDA device", file=sys.stderr)
        return 3
    hist = int(inp["history"])
    h = w = int(inp["crop"]) if int(inp.get("crop", "0")) else None
    H, W = (h, w) if h else (int(inp["height"]), int(inp["width"]))
    torch.manual_seed(0)
    frames = torch.randn(B + hist + 16, H, W, device=dev)
    out = {"model": name, "batch": B, "torch": torch.__version__,
           "device": torch.cuda.get_device_name(0) if dev == "cuda" else "cpu"}
    for label, tf32 in (("tf32", True), ("fp32", False)):
        if dev == "cuda":
            torch.backends.cudnn.benchmark = True
            torch.backends.cudnn.allow_tf32 = tf32
            torch.backends.cuda.matmul.allow_tf32 = tf32
        model = build(inp, layers, a.cells).to(dev)
        t_inf, t_train = bench(model, frames, hist, B, train, a.iters, dev)
        out[label] = {"infer_ms": t_inf * 1e3, "infer_samples_s": B / t_inf,
                      "train_ms": t_train * 1e3, "train_samples_s": B / t_train}
        print(f"pytorch {label:4s} {name:14s} B={B}  infer {t_inf*1e3:.3f} ms/batch {B/t_inf:.0f} samples/s  "
              f"train {t_train*1e3:.3f} ms/step {B/t_train:.0f} samples/s", file=sys.stderr)
        if dev != "cuda":
            break
    if a.json:
        print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
