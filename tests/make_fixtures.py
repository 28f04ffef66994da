#!/usr/bin/env python3
"""make_fixtures.py — PyTorch ground truth for the retinac reference backend.

Builds test-size versions of the two reference architectures with real PyTorch modules, in the
torch-deep-retina semantics (reference §1.1-1.5, §1.8, §3.4), and writes for each
tests/fixtures/torch_<model>.h5 holding everything tests/test_torch_fixtures.c checks:

  /ir                 uint8 bytes of the canonical retinac IR text (also root attribute "ir")
  /frames (T,H,W) float32, /starts (B,) int64, /targets (B,cells) float32
  /centers, /cell_pos (cells,2) int32   (gcconv models: RF centers and the "data" readout)
  /params/<name>      initial parameters by retinac name ("1.conv.weight", ...), torch layout
  /state/<name>       initial BN running statistics
  /y_train (B,cells)  train-mode output (batch statistics)
  /loss_data, /loss_l1, /loss_total   PoissonNLLLoss(log_input=False) + l1 * ||y||_1 (sum)
  /grads/<name>       d loss_total / d param
  /state_after/<name> running statistics after that training forward
  /y_eval (B,cells)   eval-mode output with the initial params and state_after
  /eval_dy (B,cells), /eval_dx_sum (history,H,W)   the eval-mode input gradient (gradient STA,
                      analysis/rf.c): d sum(eval_dy * y_eval) / d windows, summed over the batch
  /adam_losses (10,)  loss_total before each of ten torch.optim.Adam(lr, weight_decay=l2) steps
                      (coupled L2) on the same batch, starting from the initial params/state
  /params_adam/<name>, /state_adam/<name>   after the ten steps

The fixture models use noise std 0 and dropout p 0: torch's RNG differs from retinac's
counter-based one, so only the deterministic parts can agree exactly; noise and dropout are
pinned by tests/test_ref.c instead (finite differences and hand-computed draws).

Usage: python3 tests/make_fixtures.py   (needs torch, h5py, numpy; CPU only; deterministic)
"""
import os
import sys

import h5py
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures")
SCHED = " schedule.tile_h=0 schedule.tile_w=0 schedule.tile_c=0 schedule.vector=0 schedule.threads=0"


def fmt_num(v):
    """Shortest %g that reads back to the same double (as ir.c fmt_num)."""
    for p in range(1, 18):
        s = "%.*g" % (p, v)
        if float(s) == v:
            return s
    return repr(v)


def b(v):
    return "true" if v else "false"


# ------------------------------------------------------------------ canonical IR text

def ir_text(name, history, h, w, layers, train):
    """Canonical text as compiler/ir.c rc_ir_format writes it (every field, table order)."""
    out = ["retinac-ir 1", "model " + name,
           "input history=%d height=%d width=%d crop=0" % (history, h, w),
           "schedule tile_h=0 tile_w=0 tile_c=0 vector=0 threads=0"]
    for L in layers:
        k = L["kind"]
        if k == "conv":
            out.append("layer conv channels=%d kernel=%d bias=%s period=%d stack=%d stack_channels=%d "
                       "stack_dropout=%s" % (L["channels"], L["kernel"], b(L["bias"]), L.get("period", 1),
                                             L.get("stack", 0), L.get("stack_channels", 0),
                                             fmt_num(L.get("stack_dropout", 0.0))) + SCHED)
        elif k == "dense":
            out.append("layer dense units=%d bias=%s" % (L.get("units", 0), b(L["bias"])) + SCHED)
        elif k == "batchnorm":
            out.append("layer batchnorm over=%s abs=%s eps=%s momentum=%s" % (
                L["over"], b(L["abs"]), fmt_num(L["eps"]), fmt_num(L["momentum"])))
        elif k == "noise":
            out.append("layer noise std=%s" % fmt_num(L["std"]))
        elif k == "gcconv":
            out.append("layer gcconv kernel=%d bias=%s position=%s" % (L["kernel"], b(L["bias"]),
                                                                    L["position"]) + SCHED)
        else:  # activation
            out.append("layer " + k)
    t = train
    out.append("train loss=poisson optimizer=adam lr=%s l2=%s l1_activity=%s l1_mode=sum batch=%d epochs=40 "
               "schedule=plateau sched_factor=0.5 sched_patience=6 sched_threshold=0.01 sched_gamma=0.1 "
               "milestones=- early_patience=10 early_min_delta=0 seed=1 val_fraction=0.1 val_split=block"
               % (fmt_num(t["lr"]), fmt_num(t["l2"]), fmt_num(t["l1"]), t["batch"]))
    out.append("search trials=0 seed=1")
    out.append("end")
    return "\n".join(out) + "\n"


# ------------------------------------------------------------------ torch modules (reference semantics)

class AbsBatchNorm(nn.Module):
    """torch-deep-retina AbsBatchNorm1d/2d: F.batch_norm with weight=|scale| (§1.8)."""

    def __init__(self, n, eps, momentum):
        super().__init__()
        self.scale = nn.Parameter(torch.ones(n))
        self.shift = nn.Parameter(torch.zeros(n))
        self.register_buffer("running_mean", torch.zeros(n))
        self.register_buffer("running_var", torch.ones(n))
        self.eps, self.momentum = eps, momentum

    def forward(self, x):
        return F.batch_norm(x, self.running_mean, self.running_var, weight=self.scale.abs(),
                            bias=self.shift, training=self.training, momentum=self.momentum, eps=self.eps)


class UnitBN(nn.Module):
    """Flatten -> BatchNorm1d(C*H*W) (or AbsBatchNorm over units) -> Reshape, as BNCNN (§1.1)."""

    def __init__(self, shape, eps, momentum, absolute):
        super().__init__()
        n = int(np.prod(shape))
        self.shape = shape
        self.bn = AbsBatchNorm(n, eps, momentum) if absolute else nn.BatchNorm1d(n, eps=eps, momentum=momentum)

    def forward(self, x):
        return self.bn(x.reshape(x.shape[0], -1)).reshape((x.shape[0],) + tuple(self.shape))


class ChannelBN(nn.Module):
    def __init__(self, c, eps, momentum, absolute):
        super().__init__()
        self.bn = AbsBatchNorm(c, eps, momentum) if absolute else nn.BatchNorm2d(c, eps=eps, momentum=momentum)

    def forward(self, x):
        return self.bn(x)


class GaussianNoise(nn.Module):
    def __init__(self, std):
        super().__init__()
        self.std = std

    def forward(self, x):
        if not self.training or self.std == 0:
            return x
        return x + self.std * torch.randn_like(x)


class StackedConv(nn.Module):
    """LinearStackedConv2d (§1.3): 3x3 sub-convs, no nonlinearity, bias on the last only."""

    def __init__(self, cin, cout, k, s, stack_chan):
        super().__init__()
        n = (k - s) // (s - 1) + 1
        ks = [s] * n
        if (k - s) % (s - 1):
            ks.append(k - (s + (n - 1) * (s - 1)) + 1)
        convs = []
        for j, kk in enumerate(ks):
            last = j == len(ks) - 1
            convs.append(nn.Conv2d(cin if j == 0 else stack_chan, cout if last else stack_chan, kk, bias=last))
        self.convs = nn.ModuleList(convs)

    def forward(self, x):
        for c in self.convs:
            x = c(x)
        return x


class GrabUnits(nn.Module):
    def __init__(self, pos):
        super().__init__()
        self.register_buffer("rows", torch.tensor(pos[:, 0], dtype=torch.long))
        self.register_buffer("cols", torch.tensor(pos[:, 1], dtype=torch.long))

    def forward(self, x):
        return x[:, torch.arange(x.shape[1]), self.rows, self.cols]


def build(spec, history, H, W, cells, pos):
    """torch modules for the layer list, and (retinac name, tensor) lists for params and state."""
    mods, params, state = [], [], []
    c, h, w = history, H, W
    for i, L in enumerate(spec, start=1):
        k = L["kind"]
        if k == "conv":
            if L.get("stack", 0):
                m = StackedConv(c, L["channels"], L["kernel"], L["stack"], L.get("stack_channels") or L["channels"])
                for j, cv in enumerate(m.convs):
                    params.append(("%d.conv.sub%d.weight" % (i, j), cv.weight))
                if L["bias"]:
                    params.append(("%d.conv.bias" % i, m.convs[-1].bias))
            else:
                m = nn.Conv2d(c, L["channels"], L["kernel"], bias=L["bias"])
                params.append(("%d.conv.weight" % i, m.weight))
                if L["bias"]:
                    params.append(("%d.conv.bias" % i, m.bias))
            c, h, w = L["channels"], h - L["kernel"] + 1, w - L["kernel"] + 1
        elif k == "batchnorm":
            if L["over"] == "unit":
                m = UnitBN((c, h, w), L["eps"], L["momentum"], L["abs"])
            else:
                m = ChannelBN(c, L["eps"], L["momentum"], L["abs"])
            bn = m.bn
            sc = bn.scale if L["abs"] else bn.weight
            sh = bn.shift if L["abs"] else bn.bias
            params += [("%d.batchnorm.scale" % i, sc), ("%d.batchnorm.shift" % i, sh)]
            state += [("%d.batchnorm.running_mean" % i, bn.running_mean),
                      ("%d.batchnorm.running_var" % i, bn.running_var)]
        elif k == "noise":
            m = GaussianNoise(L["std"])
        elif k == "relu":
            m = nn.ReLU()
        elif k == "softplus":
            m = nn.Softplus()      # beta 1, threshold 20
        elif k == "dense":
            units = L.get("units", 0) or cells
            lin = nn.Linear(c * h * w, units, bias=L["bias"])
            m = nn.Sequential(nn.Flatten(), lin)
            params.append(("%d.dense.weight" % i, lin.weight))
            if L["bias"]:
                params.append(("%d.dense.bias" % i, lin.bias))
            c, h, w = units, 1, 1
        elif k == "gcconv":
            cv = nn.Conv2d(c, cells, L["kernel"], bias=L["bias"])
            m = nn.Sequential(cv, GrabUnits(pos))
            params.append(("%d.gcconv.weight" % i, cv.weight))
            if L["bias"]:
                params.append(("%d.gcconv.bias" % i, cv.bias))
            c, h, w = cells, 1, 1
        else:
            raise ValueError(k)
        mods.append(m)
    return nn.Sequential(*mods), params, state


class Flat(nn.Module):
    """Model output (B, cells, 1, 1) or (B, cells) -> (B, cells)."""

    def __init__(self, seq):
        super().__init__()
        self.seq = seq

    def forward(self, x):
        y = self.seq(x)
        return y.reshape(y.shape[0], -1)


def windows(frames, starts, history):
    return torch.stack([frames[s:s + history] for s in starts.tolist()])


def loss_fn(y, target, l1):
    data = nn.PoissonNLLLoss(log_input=False)(y, target)
    act = l1 * torch.norm(y, 1)           # reference: sum over batch and cells
    return data, act, data + act


def make(name, history, H, W, cells, B, spec, train, seed):
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    pos = None
    centers = None
    gc = [L for L in spec if L["kind"] == "gcconv"]
    if gc:
        # "data" positions: center - half, half = sum over spatial kernels of (k-1)//2, clamped
        half = sum((L["kernel"] - 1) // 2 for L in spec if L["kind"] in ("conv", "gcconv"))
        hm = H - sum(L["kernel"] - 1 for L in spec if L["kind"] in ("conv", "gcconv"))
        centers = rng.integers(0, H, size=(cells, 2)).astype(np.int32)
        centers[0] = (0, H - 1)                        # exercise both clamps
        pos = np.clip(centers - half, 0, hm - 1).astype(np.int32)
    seq, params, state = build(spec, history, H, W, cells, pos)
    model = Flat(seq)
    with torch.no_grad():
        for n, p in params:                            # BN: scales of both signs, random shifts
            if n.endswith(".scale"):
                v = torch.tensor(rng.uniform(0.5, 1.5, p.shape), dtype=torch.float32)
                v[1::3] *= -1
                p.copy_(v)
            elif n.endswith(".shift"):
                p.copy_(torch.tensor(rng.uniform(-0.5, 0.5, p.shape), dtype=torch.float32))
        for n, s in state:
            if n.endswith("running_var"):
                s.copy_(torch.tensor(rng.uniform(0.5, 2.0, s.shape), dtype=torch.float32))
            else:
                s.copy_(torch.tensor(rng.uniform(-0.3, 0.3, s.shape), dtype=torch.float32))
    T = B + history + 4
    frames = torch.tensor(rng.standard_normal((T, H, W)), dtype=torch.float32)
    starts = rng.integers(0, T - history + 1, size=B).astype(np.int64)
    target = torch.tensor(rng.poisson(1.0, (B, cells)), dtype=torch.float32)
    x = windows(frames, starts, history)

    p0 = {n: p.detach().clone() for n, p in params}
    s0 = {n: s.detach().clone() for n, s in state}

    model.train()
    y = model(x)
    ld, la, lt = loss_fn(y, target, train["l1"])
    model.zero_grad()
    lt.backward()
    grads = {n: p.grad.detach().clone() for n, p in params}
    s1 = {n: s.detach().clone() for n, s in state}
    model.eval()
    with torch.no_grad():
        y_eval = model(x)
    # eval-mode input gradient (drawn last from rng, so every earlier value is unchanged)
    eval_dy = torch.tensor(rng.standard_normal(tuple(y_eval.shape)), dtype=torch.float32)
    xg = x.detach().clone().requires_grad_(True)
    (eval_dy * model(xg)).sum().backward()
    eval_dx_sum = xg.grad.sum(0)

    # ten Adam steps (coupled L2) from the initial params and state on the same batch
    with torch.no_grad():
        for n, p in params:
            p.copy_(p0[n])
        for n, s in state:
            s.copy_(s0[n])
    opt = torch.optim.Adam([p for _, p in params], lr=train["lr"], weight_decay=train["l2"])
    model.train()
    adam_losses = []
    for _ in range(10):
        opt.zero_grad()
        _, _, l = loss_fn(model(x), target, train["l1"])
        adam_losses.append(l.item())
        l.backward()
        opt.step()

    text = ir_text(name, history, H, W, spec, train)
    path = os.path.join(OUT, "torch_%s.h5" % name)
    tmp = path + ".tmp"
    with h5py.File(tmp, "w", track_order=True) as f:
        f.attrs["ir"] = text
        f.attrs["generator"] = "tests/make_fixtures.py (torch %s)" % torch.__version__
        f.attrs["note"] = "noise std 0 and dropout p 0: torch and retinac RNGs differ"
        f["ir"] = np.frombuffer(text.encode(), dtype=np.uint8)
        f["frames"] = frames.numpy()
        f["starts"] = starts
        f["targets"] = target.numpy()
        if pos is not None:
            f["centers"] = centers
            f["cell_pos"] = pos
        for n, t in p0.items():
            f["params/" + n] = t.numpy()
        for n, t in s0.items():
            f["state/" + n] = t.numpy()
        f["y_train"] = y.detach().numpy()
        f["loss_data"] = np.float64(ld.item())
        f["loss_l1"] = np.float64(la.item())
        f["loss_total"] = np.float64(lt.item())
        for n, t in grads.items():
            f["grads/" + n] = t.numpy()
        for n, t in s1.items():
            f["state_after/" + n] = t.numpy()
        f["y_eval"] = y_eval.numpy()
        f["eval_dy"] = eval_dy.numpy()
        f["eval_dx_sum"] = eval_dx_sum.numpy()
        f["adam_losses"] = np.array(adam_losses, dtype=np.float64)
        for n, p in params:
            f["params_adam/" + n] = p.detach().numpy()
        for n, s in state:
            f["state_adam/" + n] = s.detach().numpy()
    os.replace(tmp, path)
    print("%s: %d bytes, loss %.6f -> %.6f after 10 Adam steps" % (path, os.path.getsize(path),
                                                                  adam_losses[0], adam_losses[-1]))


def main():
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    os.makedirs(OUT, exist_ok=True)
    train = {"lr": 0.01, "l2": 0.001, "l1": 0.001, "batch": 8}
    bn = {"eps": 1e-3, "momentum": 0.01}
    # BN-CNN (McIntosh 2016, §1.1) at test size: per-unit BN, plain convs, dense readout
    bncnn = [
        dict(kind="conv", channels=3, kernel=5, bias=True), dict(kind="batchnorm", over="unit", abs=False, **bn),
        dict(kind="noise", std=0.0), dict(kind="relu"),
        dict(kind="conv", channels=2, kernel=3, bias=True), dict(kind="batchnorm", over="unit", abs=False, **bn),
        dict(kind="noise", std=0.0), dict(kind="relu"),
        dict(kind="dense", bias=False), dict(kind="batchnorm", over="unit", abs=False, **bn),
        dict(kind="softplus"),
    ]
    make("bncnn", 5, 14, 14, 3, 8, bncnn, dict(train, batch=8), 1)
    # stacked BN-CNN (Maheswaranathan 2023, §1.4 VaryModel config) at test size: stacked convs,
    # abs per-channel BN, convolutional GC layer read out at each cell's position, abs BN per unit
    stacked = [
        dict(kind="conv", channels=3, kernel=5, bias=True, stack=3, stack_channels=4, stack_dropout=0.0),
        dict(kind="batchnorm", over="channel", abs=True, **bn), dict(kind="noise", std=0.0), dict(kind="relu"),
        dict(kind="conv", channels=3, kernel=5, bias=True, stack=3, stack_dropout=0.0),
        dict(kind="batchnorm", over="channel", abs=True, **bn), dict(kind="noise", std=0.0), dict(kind="relu"),
        dict(kind="gcconv", kernel=3, bias=False, position="data"),
        dict(kind="batchnorm", over="unit", abs=True, **bn), dict(kind="softplus"),
    ]
    make("stacked_bncnn", 5, 16, 16, 4, 8, stacked, dict(train, batch=8), 2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
