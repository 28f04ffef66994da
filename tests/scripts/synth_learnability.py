#!/usr/bin/env python3
"""synth_learnability.py — how close an LN model and the 2016 BN-CNN get to the known ceiling of a
`retinac synth` recording. PyTorch (CUDA if available, else CPU: slow). A benchmark tool for
tuning and documenting the synthetic retina (docs/synthetic-retina.md); never part of the build
or of the test suites.

Conventions mirror runtime/data/data.h: scalar z-score with training statistics (std + 1e-7),
window i = frames i..i+39, label rate[i+40]; validation = 4 blocks (10%) centred in 4 equal parts,
windows touching a block edge dropped. Metric: per-cell Pearson r between the prediction and the
trial-averaged test firing_rate_10ms; ceiling: r between the noise-free expected rate
(/test/response/true_rate) and the same trial average. The test r of the epoch with the best
validation loss is reported.

usage: synth_learnability.py FILE [FILE...] [--epochs N] [--ln-epochs N] [--lr X] [--json OUT]
"""
import argparse, json, sys, time

import h5py
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

H = 40


def val_windows(T, frac=0.1, nb=4):
    """Window split of runtime/data/data.c plan() (RC_VAL_BLOCKS): 1 train, 2 val, 0 dropped."""
    N = T - H
    vlen = max(1, int(round(frac * T / nb)))
    inval = np.zeros(T, bool)
    for k in range(nb):
        p0, p1 = T * k // nb, T * (k + 1) // nb
        b0 = p0 + (p1 - p0 - vlen) // 2
        inval[b0:b0 + vlen] = True
    c = np.concatenate([[0], np.cumsum(inval)])
    nv = c[np.arange(N) + H + 1] - c[np.arange(N)]
    return np.where(nv == 0, 1, np.where(nv == H + 1, 2, 0))


def load(path, dev):
    f = h5py.File(path, "r")
    st = f["train/stimulus"][:].astype(np.float32)
    m, s = st.mean(dtype=np.float64), st.std(dtype=np.float64) + 1e-7
    d = dict(
        st=torch.from_numpy((st - m) / s).float().to(dev),
        te=torch.from_numpy((f["test/stimulus"][:].astype(np.float32) - m) / s).float().to(dev),
        y=torch.from_numpy(f["train/response/firing_rate_10ms"][:].T.copy()).float().to(dev),
        yt=f["test/response/firing_rate_10ms"][:].T[H:],
        truth=f["test/response/true_rate"][:].T[H:],
        types=f["cells/types"][:] if "cells/types" in f else None,
    )
    w = val_windows(st.shape[0])
    d["tr_idx"] = torch.from_numpy(np.nonzero(w == 1)[0]).to(dev)
    d["va_idx"] = torch.from_numpy(np.nonzero(w == 2)[0]).to(dev)
    return d


def windows(st, idx):
    return st[idx[:, None] + torch.arange(H, device=st.device)]  # (B, 40, h, w): this script only


def pearson_cols(p, y):
    p = p - p.mean(0); y = y - y.mean(0)
    return (p * y).mean(0) / np.sqrt((p * p).mean(0) * (y * y).mean(0) + 1e-30)


class BNCNN(nn.Module):
    """McIntosh et al. 2016: conv 8@15, BN(unit), noise, relu, conv 8@11, BN, noise, relu,
    dense (no bias), BN, softplus."""

    def __init__(self, C, hw=50, noise=0.05):
        super().__init__()
        a, b = hw - 14, hw - 24
        self.c1, self.b1 = nn.Conv2d(H, 8, 15), nn.BatchNorm1d(8 * a * a, momentum=0.01)
        self.c2, self.b2 = nn.Conv2d(8, 8, 11), nn.BatchNorm1d(8 * b * b, momentum=0.01)
        self.d, self.b3 = nn.Linear(8 * b * b, C, bias=False), nn.BatchNorm1d(C, momentum=0.01)
        self.noise, self.a = noise, a

    def forward(self, x):
        x = self.b1(self.c1(x).flatten(1))
        if self.training: x = x + self.noise * torch.randn_like(x)
        x = F.relu(x).view(-1, 8, self.a, self.a)
        x = self.b2(self.c2(x).flatten(1))
        if self.training: x = x + self.noise * torch.randn_like(x)
        return F.softplus(self.b3(self.d(F.relu(x))))


class LN(nn.Module):
    def __init__(self, C, hw=50):
        super().__init__()
        self.lin = nn.Linear(H * hw * hw, C)

    def forward(self, x):
        return F.softplus(self.lin(x.flatten(1)))


def predict(model, st, idx, B=1000):
    model.eval()
    out = []
    with torch.no_grad():
        for i in range(0, len(idx), B):
            out.append(model(windows(st, idx[i:i + B])))
    return torch.cat(out).cpu().numpy()


def fit(d, model, epochs, lr, l2, l1, B=512, seed=0, deadline=None):
    torch.manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=l2)
    sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, "min", factor=0.5, patience=4)
    g = torch.Generator(device=d["tr_idx"].device).manual_seed(seed)
    best = (np.inf, None, None, -1)
    test_idx = torch.arange(d["te"].shape[0] - H, device=d["te"].device)
    for ep in range(epochs):
        model.train()
        perm = d["tr_idx"][torch.randperm(len(d["tr_idx"]), generator=g, device=g.device)]
        for i in range(0, len(perm) - B + 1, B):  # last partial batch dropped, as the reference
            idx = perm[i:i + B]
            p = model(windows(d["st"], idx))
            y = d["y"][idx + H]
            loss = (p - y * torch.log(p + 1e-8)).mean() + l1 * p.abs().sum(1).mean()
            if not torch.isfinite(loss):  # diverged: keep the best epoch so far
                return dict(val_loss=best[0], val_r=None if best[1] is None else best[1].tolist(),
                            test_r=None if best[2] is None else best[2].tolist(), best_epoch=best[3],
                            epochs_run=ep + 1, diverged=True)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        pv = predict(model, d["st"], d["va_idx"])
        yv = d["y"][d["va_idx"] + H].cpu().numpy()
        vl = float((pv - yv * np.log(pv + 1e-8)).mean())
        sched.step(vl)
        if vl < best[0]:
            pt = predict(model, d["te"], test_idx)
            best = (vl, pearson_cols(pv, yv), pearson_cols(pt, d["yt"]), ep)
        if deadline and time.time() > deadline: break
    return dict(val_loss=best[0], val_r=best[1].tolist(), test_r=best[2].tolist(), best_epoch=best[3], epochs_run=ep + 1)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("files", nargs="+")
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--ln-epochs", type=int, default=20)
    ap.add_argument("--ln-lr", type=float, default=1e-4, help="LN learning rate (1e-3 diverged on white noise)")
    ap.add_argument("--lr", default="5e-3", help="BN-CNN learning rates, comma-separated; best by val loss")
    ap.add_argument("--minutes", type=float, default=0, help="soft time limit per model fit")
    ap.add_argument("--json")
    a = ap.parse_args()
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    print(f"device {dev} ({torch.cuda.get_device_name() if dev == 'cuda' else 'cpu'}), torch {torch.__version__}", flush=True)
    report = {}
    for path in a.files:
        t0 = time.time()
        d = load(path, dev)
        C = d["y"].shape[1]
        ceil = pearson_cols(d["truth"], d["yt"])
        res = {"ceiling": ceil.tolist(), "types": None if d["types"] is None else d["types"].tolist()}
        dl = lambda: time.time() + 60 * a.minutes if a.minutes else None
        ln_best = None
        for l2 in (1e-3, 1e-2, 1e-1):
            r = fit(d, LN(C).to(dev), a.ln_epochs, a.ln_lr, l2, 0.0, deadline=dl())
            r["l2"] = l2
            print(f"  LN l2 {l2}: val loss {r['val_loss']:.4f} mean test r {np.mean(r['test_r'] or [np.nan]):.3f} (best epoch {r['best_epoch']}/{r['epochs_run']})", flush=True)
            if ln_best is None or r["val_loss"] < ln_best["val_loss"]: ln_best = r
        res["ln"] = ln_best
        res["bncnn_all"] = []
        for lr in [float(x) for x in a.lr.split(",")]:
            r = fit(d, BNCNN(C).to(dev), a.epochs, lr, 1e-3, 1e-4, deadline=dl())
            r["lr"] = lr
            res["bncnn_all"].append(r)
            print(f"  BN-CNN lr {lr}: val loss {r['val_loss']:.4f} mean test r {np.mean(r['test_r'] or [np.nan]):.3f} (best epoch {r['best_epoch']}/{r['epochs_run']})", flush=True)
        res["bncnn"] = min(res["bncnn_all"], key=lambda r: r["val_loss"])
        res["seconds"] = time.time() - t0
        report[path] = res
        nan = [float("nan")] * C
        ln, cnn = np.array(ln_best["test_r"] or nan), np.array(res["bncnn"]["test_r"] or nan)
        print(f"\n{path}: {C} cells, {len(d['tr_idx'])} train / {len(d['va_idx'])} val windows, {res['seconds']:.0f} s")
        print(" cell type  ceiling   LN r  BN-CNN r   LN/ceil  CNN/ceil")
        for c in range(C):
            t = "-" if d["types"] is None else ["OFF", "ON", "ON-OFF"][int(d["types"][c])]
            print(f" {c:4d} {t:>6} {ceil[c]:8.3f} {ln[c]:6.3f} {cnn[c]:9.3f} {ln[c] / ceil[c]:9.2f} {cnn[c] / ceil[c]:9.2f}")
        print(f" mean        {ceil.mean():8.3f} {ln.mean():6.3f} {cnn.mean():9.3f} {(ln / ceil).mean():9.2f} {(cnn / ceil).mean():9.2f}"
              f"   (LN l2 {ln_best['l2']}, CNN lr {res['bncnn']['lr']})", flush=True)
    if a.json:
        with open(a.json, "w") as f: json.dump(report, f, indent=1)


if __name__ == "__main__":
    main()
