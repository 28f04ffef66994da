#!/usr/bin/env python3
"""make_import_fixtures.py — torch.save checkpoints for testing `retinac import`.

Builds tiny, faithful transcriptions of four torch-deep-retina model classes (reference §1.1-1.8:
same class names, same `self.sequential` module order, hence the same state-dict key names) and
writes, under tests/fixtures/torch_import/:

  NAME.pt, NAME_legacy.pt   the checkpoint dict of io.save_checkpoint (§3.6) in the zip format
                            and in the legacy (pre-1.6) pickle format, for NAME in
                            bncnn (BNCNN), cnn (legacy CNN, Exponential output),
                            stacked (LinearStackedBNCNN), vary_convgc (VaryModel, convgc + GrabUnits)
  expected.h5               /NAME/frames (T,H,W) raw stimulus; /NAME/y_eval (T-history, n_units), the
                            eval-mode output on X[i] = (frames[i:i+history] - mean) / std (float32);
                            /NAME/y_eval_float64, the same with model.double() on float64 windows
  bad/*.pt                  malformed or malicious variations of bncnn.pt (evil pickles: NEVER
                            torch.load them; truncated files, a missing key, a wrong img_shape, ...)

Deterministic and byte-reproducible (fixed seeds, one thread, CPU only; the legacy files' storage
keys, memory addresses in torch, are renamed to fixed strings). The zip archives' record prefix is
the file stem (as when torch.save is given a path), so every file is written into a temporary
folder next to its destination and then renamed.

Usage: /tmp/tv/bin/python tests/make_import_fixtures.py   (needs torch, numpy, h5py)
"""
import copy
import io
import os
import pickle
import pickletools
import shutil
import struct
import sys

import h5py
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures", "torch_import")
TMP = os.path.join(OUT, ".tmp")


# ------------------------------------------------------------------ custom_modules.py (§1.3, §1.5, §1.8)

class GaussianNoise(nn.Module):
    def __init__(self, std=0.1, trainable=False):
        super().__init__()
        self.std = std
        # a Parameter, so it is in the state dict as "...sigma" (shape (1,))
        self.sigma = nn.Parameter(torch.ones(1) * std, requires_grad=trainable)

    def forward(self, x):
        if not self.training or self.std == 0:
            return x
        return x + self.sigma * torch.randn_like(x)


class Flatten(nn.Module):
    def forward(self, x):
        return x.view(x.shape[0], -1)


class Reshape(nn.Module):
    def __init__(self, shape):
        super().__init__()
        self.shape = shape

    def forward(self, x):
        return x.view(self.shape)


class _AbsBatchNorm(nn.Module):
    """AbsBatchNorm1d/2d: running stats are nn.Parameters in the reference (§1.8), declared in this
    order, so the state-dict order is running_mean, running_var, scale, shift."""
    NDIM = 0

    def __init__(self, n_units, bias=True, abs_bias=False, momentum=.1, eps=1e-5):
        super().__init__()
        self.n_units, self.momentum, self.eps = n_units, momentum, eps
        self.running_mean = nn.Parameter(torch.zeros(n_units))
        self.running_var = nn.Parameter(torch.ones(n_units))
        self.scale = nn.Parameter(torch.ones(n_units).float())
        self.bias, self.abs_bias = bias, abs_bias
        self.shift = nn.Parameter(torch.zeros(n_units).float())

    def forward(self, x):
        assert len(x.shape) == self.NDIM
        shift = self.shift.abs() if self.abs_bias else self.shift
        return F.batch_norm(x, self.running_mean.data, self.running_var.data, weight=self.scale.abs(),
                            bias=shift, eps=self.eps, momentum=self.momentum, training=self.training)


class AbsBatchNorm1d(_AbsBatchNorm):
    NDIM = 2


class AbsBatchNorm2d(_AbsBatchNorm):
    NDIM = 4


class LinearStackedConv2d(nn.Module):
    """k x k conv as a chain of stack_ksize convs, no nonlinearity; Dropout between them sits in the
    same nn.Sequential, so the sub-conv keys skip the dropout indices (padding 0 only here)."""

    def __init__(self, in_channels, out_channels, kernel_size, bias=True, conv_bias=False,
                 stack_ksize=3, stack_chan=None, abs_bnorm=False, drop_p=0):
        super().__init__()
        assert kernel_size % 2 == 1 and kernel_size > 1 and stack_ksize <= kernel_size
        assert not abs_bnorm  # the newest models pass abs_bnorm=False
        sc = self.stack_chan = out_channels if stack_chan is None else stack_chan
        n = (kernel_size - stack_ksize) / (stack_ksize - 1) + 1
        self.last_ksize = stack_ksize
        if n - int(n) > 0:                              # the last sub-conv takes the remainder
            self.last_ksize = kernel_size - (stack_ksize + int(n - 1) * (stack_ksize - 1)) + 1
            n += 1
        n, convs = int(n), []
        for j in range(n):                              # [conv, Dropout] * (n-1), conv (with the bias)
            last = j == n - 1
            convs.append(nn.Conv2d(in_channels if j == 0 else sc, out_channels if last else sc,
                                   self.last_ksize if last else stack_ksize, bias=bias if last else conv_bias))
            if not last and drop_p > 0:
                convs.append(nn.Dropout(drop_p))
        self.convs = nn.Sequential(*convs)

    def forward(self, x):
        return self.convs(x)


class GrabUnits(nn.Module):
    """The reference formula with its quirk (§1.5): the clamp's upper bound H - 2*(half-1) can be
    negative, and PyTorch then indexes from the end of the map."""

    def __init__(self, centers, ksizes, img_shape):
        super().__init__()
        assert len(ksizes) > 2 and centers is not None
        half = (ksizes[0] - 1) + (ksizes[1] - 1) + (ksizes[2] // 2 - 1) + 1
        coords = [[min(max(0, r - half), img_shape[1] - 2 * (half - 1)),
                   min(max(0, c - half), img_shape[2] - 2 * (half - 1))] for r, c in centers]
        self.coords = torch.LongTensor(coords)         # plain attributes: not in the state dict
        self.chans = torch.arange(len(centers)).long()

    def forward(self, x):
        return x[..., :, self.chans, self.coords[:, 0], self.coords[:, 1]]


class Exponential(nn.Module):
    def __init__(self, train_off=True):
        super().__init__()
        self.train_off = train_off

    def forward(self, x):
        if self.training and self.train_off:
            return x
        return torch.exp(x)


# ------------------------------------------------------------------ models.py (§1.0-1.4)

class TDRModel(nn.Module):
    def __init__(self, n_units=5, noise=.05, bias=True, gc_bias=None, chans=[8, 8], bn_moment=.01,
                 softplus=True, inference_exp=False, img_shape=(40, 50, 50), ksizes=(15, 11, 11),
                 convgc=False, centers=None, bnorm_d=1, activ_fxn='ReLU', **kwargs):
        super().__init__()
        self.n_units, self.noise, self.bias, self.gc_bias = n_units, noise, bias, gc_bias
        self.chans, self.bn_moment, self.softplus, self.infr_exp = chans, bn_moment, softplus, inference_exp
        self.img_shape, self.ksizes, self.convgc, self.centers = img_shape, ksizes, convgc, centers
        self.bnorm_d, self.activ_fxn = bnorm_d, activ_fxn

    def final(self):
        return nn.Softplus() if self.softplus else Exponential(train_off=True)

    def bn_cnn(self, conv, bn):
        """The BNCNN list (§1.1): [conv, Flatten, BN, Reshape, noise, ReLU] x 2, Flatten, Linear, BN, out."""
        h, w = self.img_shape[1:]
        c_in, mods = self.img_shape[0], []
        for i, (c, k) in enumerate(zip(self.chans, self.ksizes[:2])):
            h, w = h - k + 1, w - k + 1
            mods += [conv(i, c_in, c, k), Flatten(), bn(c * h * w, eps=1e-3, momentum=self.bn_moment),
                     Reshape((-1, c, h, w)), GaussianNoise(std=self.noise), nn.ReLU()]
            c_in = c
        mods += [Flatten(), nn.Linear(c_in * h * w, self.n_units, bias=self.gc_bias),
                 bn(self.n_units, eps=1e-3, momentum=self.bn_moment), self.final()]
        return nn.Sequential(*mods)

    def forward(self, x):
        if not self.training and self.infr_exp:
            return torch.exp(self.sequential(x))
        return self.sequential(x)


class BNCNN(TDRModel):
    """Newest BNCNN, bnorm_d=1, convgc=False (§1.1)."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        assert self.bnorm_d == 1 and not self.convgc
        self.sequential = self.bn_cnn(lambda i, ci, co, k: nn.Conv2d(ci, co, kernel_size=k, bias=self.bias),
                                      nn.BatchNorm1d)


class CNN(TDRModel):
    """Legacy CNN (no BN, §1.7); linear_bias None means 'same as bias'."""

    def __init__(self, linear_bias=None, **kwargs):
        super().__init__(**kwargs)
        linear_bias = self.bias if linear_bias is None else linear_bias
        h, w = self.img_shape[1:]
        c_in, mods = self.img_shape[0], []
        for c, k in zip(self.chans, self.ksizes[:2]):
            h, w = h - k + 1, w - k + 1
            mods += [nn.Conv2d(c_in, c, kernel_size=k, bias=self.bias), GaussianNoise(std=self.noise), nn.ReLU()]
            c_in = c
        mods += [Flatten(), nn.Linear(c_in * h * w, self.n_units, bias=linear_bias), self.final()]
        self.sequential = nn.Sequential(*mods)


class LinearStackedBNCNN(TDRModel):
    """Newest LinearStackedBNCNN (§1.2): BNCNN with stacked convs and AbsBatchNorm1d everywhere."""

    def __init__(self, drop_p=0, stack_ksizes=3, stack_chans=None, **kwargs):
        super().__init__(**kwargs)
        sk = lambda i: stack_ksizes if isinstance(stack_ksizes, int) else stack_ksizes[i]
        self.sequential = self.bn_cnn(lambda i, ci, co, k: LinearStackedConv2d(
            ci, co, kernel_size=k, abs_bnorm=False, bias=self.bias, stack_ksize=sk(i),
            stack_chan=None if stack_chans is None else stack_chans[i], drop_p=drop_p), AbsBatchNorm1d)


class VaryModel(TDRModel):
    """VaryModel (§1.4), the published configuration only: stacked convs, AbsBatchNorm2d per channel,
    convolutional GC layer read out by GrabUnits."""

    def __init__(self, n_layers=3, stackconvs=True, drop_p=0, stack_ksizes=[3, 3], stack_chans=[None, None],
                 **kwargs):
        super().__init__(**kwargs)
        assert stackconvs and self.bnorm_d == 2 and self.convgc
        temp_chans, mods = [self.img_shape[0]] + list(self.chans), []
        for i in range(n_layers - 1):
            mods += [LinearStackedConv2d(temp_chans[i], temp_chans[i + 1], kernel_size=self.ksizes[i],
                                         abs_bnorm=False, bias=self.bias, stack_ksize=stack_ksizes[i],
                                         stack_chan=stack_chans[i], drop_p=drop_p),
                     AbsBatchNorm2d(temp_chans[i + 1], eps=1e-3, momentum=self.bn_moment),
                     GaussianNoise(std=self.noise), getattr(nn, self.activ_fxn)()]
        mods += [nn.Conv2d(self.chans[-1], self.n_units, self.ksizes[n_layers - 1], bias=self.gc_bias),
                 GrabUnits(self.centers, self.ksizes, self.img_shape),
                 AbsBatchNorm1d(self.n_units, eps=1e-3, momentum=self.bn_moment), self.final()]
        self.sequential = nn.Sequential(*mods)


CLASSES = {c.__name__: c for c in (BNCNN, CNN, LinearStackedBNCNN, VaryModel)}

COMMON = dict(n_units=3, bias=True, noise=0.05, bn_moment=0.01, softplus=True, inference_exp=False, drop_p=0.0,
              bnorm_d=1, convgc=False, stackconvs=False, n_layers=3, lr=5e-3, l1=1e-4, l2=1e-3, batch_size=512,
              n_epochs=100, dataset="15-10-07", stim_type="naturalscene")
CONFIGS = [  # (NAME, seed, hyps overrides)
    ("bncnn", 11, dict(model_type="BNCNN", img_shape=[6, 14, 14], chans=[3, 4], ksizes=[5, 3], gc_bias=False)),
    ("cnn", 12, dict(model_type="CNN", img_shape=[5, 12, 12], chans=[2, 3], ksizes=[5, 3], linear_bias=True,
                     softplus=False)),
    ("stacked", 13, dict(model_type="LinearStackedBNCNN", img_shape=[6, 16, 16], chans=[3, 3], ksizes=[5, 5],
                         gc_bias=False, drop_p=0.05, stackconvs=True, stack_ksizes=[3, 3])),
    ("vary_convgc", 14, dict(model_type="VaryModel", n_units=4, img_shape=[6, 16, 16], chans=[3, 3],
                             ksizes=[5, 5, 5], gc_bias=False, drop_p=0.05, stackconvs=True, bnorm_d=2,
                             convgc=True, bnorm=True, activ_fxn="ReLU", stack_ksizes=[3, 3],
                             centers=[[3, 4], [8, 8], [12, 2], [15, 15]])),
]
NORM = {"mean": np.float32(2.5), "std": np.float32(1.75)}


# ------------------------------------------------------------------ building, checkpoint dict

def u(rng, lo, hi, shape):
    return torch.tensor(rng.uniform(lo, hi, tuple(shape)), dtype=torch.float32)


def randomise_bn(model, rng):
    """BN scales of both signs, random shifts and running stats, so no BN is a near-identity."""
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d, _AbsBatchNorm)):
                sc, sh = (m.scale, m.shift) if isinstance(m, _AbsBatchNorm) else (m.weight, m.bias)
                v = u(rng, 0.5, 1.5, sc.shape)
                v[1::3] *= -1
                sc.copy_(v)
                sh.copy_(u(rng, -0.5, 0.5, sh.shape))
                m.running_mean.copy_(u(rng, -0.3, 0.3, m.running_mean.shape))
                m.running_var.copy_(u(rng, 0.5, 2.0, m.running_var.shape))


def build(seed, over):
    """The model (BN randomised, eval mode, after one Adam step) and its checkpoint dict."""
    hyps = dict(COMMON, **over)
    hyps["cells"] = list(range(hyps["n_units"]))
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    model = CLASSES[hyps["model_type"]](**hyps)        # as io.load_model: globals()[model_type](**hyps)
    randomise_bn(model, rng)
    model.eval()
    # one Adam step (the reference optimizer, §3.4) in eval mode, so that running stats, noise and
    # dropout are untouched; the state dict saved below is the post-step one
    opt = torch.optim.Adam(model.parameters(), lr=hyps["lr"], weight_decay=hyps["l2"])
    x = torch.tensor(rng.standard_normal((4, *hyps["img_shape"])), dtype=torch.float32)
    target = torch.tensor(rng.poisson(1.0, (4, hyps["n_units"])), dtype=torch.float32)
    y = model(x)
    loss = nn.PoissonNLLLoss(log_input=False)(y, target) + hyps["l1"] * torch.norm(y, 1)
    opt.zero_grad()
    loss.backward()
    opt.step()
    # the io.save_checkpoint dict (§3.6), every hyps key also copied to the top level
    d = {"model_type": hyps["model_type"], "model_state_dict": model.state_dict(),
         "optim_state_dict": opt.state_dict(), "hyps": hyps, "norm_stats": dict(NORM),
         "epoch": 3, "loss": 0.5, "val_acc": 0.4, **hyps}
    return model, d, rng


def expected(model, hyps, rng):
    """Raw frames (normal noise around the norm stats plus a slow drift) and eval outputs."""
    hist, H, W = hyps["img_shape"]
    T = hist + 9
    t = np.arange(T)[:, None, None]
    yy, xx = np.mgrid[0:H, 0:W][:, None] / max(H, W)
    drift = 0.8 * np.sin(2 * np.pi * (t / T + 0.5 * yy)) + 0.4 * np.cos(2 * np.pi * (t / (2 * T) + xx))
    frames = (2.5 + 1.75 * rng.standard_normal((T, H, W)) + drift).astype(np.float32)
    out = {"frames": frames}
    for key, dt, m in (("y_eval", torch.float32, model), ("y_eval_float64", torch.float64,
                                                         copy.deepcopy(model).double())):
        f = torch.tensor(frames, dtype=dt)
        x = torch.stack([(f[i:i + hist] - float(NORM["mean"])) / float(NORM["std"]) for i in range(T - hist)])
        with torch.no_grad():
            out[key] = m(x).numpy()
    assert out["y_eval"].dtype == np.float32 and out["y_eval"].shape == (T - hist, hyps["n_units"])
    return out


def check_grabunits_quirk(model, hyps, frames):
    """With these sizes every cell is read at map index -2 (= 2 of the 4x4 map), whatever its center."""
    gu = model.sequential[9]
    assert isinstance(gu, GrabUnits) and gu.coords.tolist() == [[-2, -2]] * hyps["n_units"]
    hist = hyps["img_shape"][0]
    x = (torch.tensor(frames[:hist])[None] - float(NORM["mean"])) / float(NORM["std"])
    with torch.no_grad():
        fmap = model.sequential[:9](x)
    assert fmap.shape[-2:] == (4, 4)
    assert torch.equal(gu(fmap), fmap[:, torch.arange(hyps["n_units"]), 2, 2])


# ------------------------------------------------------------------ output (temp file + rename)

def put(rel, obj=None, data=None, legacy=False, write=None):
    """Write into OUT/.tmp/<basename>, then rename (torch.save names the zip records after the file stem):
    torch.save(obj) (legacy: the pre-1.6 pickle format), raw bytes data, or write(path)."""
    tmp = os.path.join(TMP, os.path.basename(rel))
    if legacy:
        buf = io.BytesIO()
        torch.save(obj, buf, _use_new_zipfile_serialization=False)
        data = pin_legacy_keys(buf.getvalue())
    if write:
        write(tmp)
    elif data is None:
        torch.save(obj, tmp)
    else:
        with open(tmp, "wb") as f:
            f.write(data)
    os.replace(tmp, os.path.join(OUT, rel))


ELEM = {"FloatStorage": 4, "DoubleStorage": 8, "LongStorage": 8, "IntStorage": 4, "BoolStorage": 1}


def pin_legacy_keys(data):
    """The legacy format names each storage by its memory address (str(storage._cdata)) and writes
    the storages in the sorted order of those names, so two runs differ. Rename them to fixed
    address-like strings in the order the object pickle first names them, and write the key list and
    the storages in that (again sorted) order. Only the key list is unpickled (safe on evil files)."""
    f = io.BytesIO(data)
    for _ in range(3):                                  # magic number, protocol version, sys_info
        for _ in pickletools.genops(f):
            pass
    start, firsts, gmemo, typ, prev = f.tell(), {}, {}, None, None
    for op, arg, _ in pickletools.genops(f):            # persistent ids ('storage', torch.XStorage, key, ...)
        if op.name == "GLOBAL":
            typ = arg
        elif op.name in ("BINPUT", "LONG_BINPUT") and prev == "GLOBAL":
            gmemo[arg] = typ                            # a memoised class, named again by BINGET
        elif op.name in ("BINGET", "LONG_BINGET"):
            typ = gmemo.get(arg)
        elif op.name == "BINUNICODE" and arg.isdigit() and arg not in firsts:
            firsts[arg] = ELEM[typ.split()[-1]]         # a key comes right after its storage class
        prev = op.name
    end = f.tell()
    keys, blocks = pickle.load(f), {}
    tail = f.tell()
    for k in keys:                                      # int64 numel, then the raw bytes
        n = struct.unpack("<q", data[tail:tail + 8])[0] * firsts[k] + 8
        blocks[k], tail = data[tail:tail + n], tail + n
    assert tail == len(data) and set(keys) == set(firsts)
    new = {k: str(94000000000001 + 4096 * i) for i, k in enumerate(firsts)}
    obj = data[start:end]
    for k in keys:
        obj = obj.replace(*(b"X" + struct.pack("<I", len(x)) + x.encode() for x in (k, new[k])))
    out = io.BytesIO()
    pickle.dump([new[k] for k in firsts], out, protocol=2)
    return data[:start] + obj + out.getvalue() + b"".join(blocks[k] for k in firsts)


class Evil:
    """Unpickling this calls os.system (pickle: GLOBAL posix system + REDUCE). Never load it."""

    def __reduce__(self):
        return (os.system, ("touch /tmp/retinac_pwned",))


def bad_files(model, d):
    zipped, legacy = (open(os.path.join(OUT, n), "rb").read() for n in ("bncnn.pt", "bncnn_legacy.pt"))
    d = {k: v for k, v in d.items() if k != "optim_state_dict"}   # smaller files; the good ones keep it
    put("bad/evil_reduce.pt", dict(d, evil=Evil()))
    put("bad/evil_legacy.pt", dict(d, evil=Evil()), legacy=True)
    put("bad/whole_module.pt", model)                  # pickles __main__.BNCNN, __main__.GaussianNoise, ...
    put("bad/truncated.pt", data=zipped[:len(zipped) // 2])
    put("bad/truncated_legacy.pt", data=legacy[:len(legacy) * 6 // 10])
    # the second BatchNorm1d of the module list (index 8 in the reference layout)
    bn_idx = [i for i, m in enumerate(model.sequential) if isinstance(m, nn.BatchNorm1d)][1]
    sd = model.state_dict()
    del sd["sequential.%d.running_var" % bn_idx]
    put("bad/missing_key.pt", dict(d, model_state_dict=sd))
    wrong = dict(d["hyps"], img_shape=[6, 15, 15])
    put("bad/bad_shape.pt", dict(d, hyps=wrong, img_shape=wrong["img_shape"]))
    put("bad/no_norm_stats.pt", {k: v for k, v in d.items() if k != "norm_stats"})
    put("bad/not_torch.pt", data=np.random.default_rng(99).bytes(200))
    return bn_idx


def main():
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    os.makedirs(os.path.join(OUT, "bad"), exist_ok=True)
    os.makedirs(TMP, exist_ok=True)
    gen = "tests/make_import_fixtures.py (torch %s)" % torch.__version__
    results, keep = {}, {}
    for name, seed, over in CONFIGS:
        model, d, rng = build(seed, over)
        hyps = d["hyps"]
        put(name + ".pt", d)
        put(name + "_legacy.pt", d, legacy=True)
        results[name] = (hyps, expected(model, hyps, rng))
        if name == "vary_convgc":
            check_grabunits_quirk(model, hyps, results[name][1]["frames"])
        keep[name] = (model, d)
        print("%s (%s) state dict:" % (name, hyps["model_type"]))
        for k, v in model.state_dict().items():
            print("    %-36s %-8s %s" % (k, str(v.dtype).replace("torch.", ""), list(v.shape)))

    def write_h5(p):
        with h5py.File(p, "w", track_order=True) as f:
            f.attrs["generator"] = gen
            for name, (hyps, arrs) in results.items():
                g = f.create_group(name)
                g.attrs["model_type"] = hyps["model_type"]
                g.attrs["generator"] = gen
                g.attrs["history"] = hyps["img_shape"][0]
                g.attrs["mean"], g.attrs["std"] = NORM["mean"], NORM["std"]
                for k in ("frames", "y_eval", "y_eval_float64"):
                    g[k] = arrs[k]
    put("expected.h5", write=write_h5)
    bn_idx = bad_files(*keep["bncnn"])
    print("missing_key.pt: deleted sequential.%d.running_var" % bn_idx)
    shutil.rmtree(TMP)

    sizes = [(os.path.relpath(os.path.join(r, f), OUT), os.path.getsize(os.path.join(r, f)))
             for r, _, fs in sorted(os.walk(OUT)) for f in sorted(fs)]
    print("\n%-32s %8s" % ("file", "bytes"))
    for rel, n in sizes + [("total", sum(n for _, n in sizes))]:
        print("%-32s %8d" % (rel, n))
    return 0


if __name__ == "__main__":
    sys.exit(main())
