#!/usr/bin/env python3
"""fftconv_torch.py - the PyTorch yardstick for bench/fftconv_bench.c: the BN-CNN first conv
(40 history frames of 50x50, 8 kernels 15x15, valid, stride 1) at batch 512 on the CPU,
forward and forward + weight gradient (no input gradient, as for the first layer), samples/s,
best of N. Windows are consecutive views of one frame stream (materialized: conv2d needs a
(B, 40, 50, 50) tensor). Benchmark only; never used by the build or the tests.

usage: python3 bench/fftconv_torch.py [threads=2] [batch=512] [reps=5]
"""
import sys
import time

import torch


def main():
    threads = int(sys.argv[1]) if len(sys.argv) > 1 else 2
    batch = int(sys.argv[2]) if len(sys.argv) > 2 else 512
    reps = int(sys.argv[3]) if len(sys.argv) > 3 else 5
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    frames = torch.randn(batch + 39, 50, 50)
    x = frames.unfold(0, 40, 1).permute(0, 3, 1, 2).contiguous()   # (B, 40, 50, 50)
    w = (torch.randn(8, 40, 15, 15) * 0.04).requires_grad_(True)
    b = torch.zeros(8, requires_grad=True)
    dy = torch.randn(batch, 8, 36, 36)

    def fwd():
        with torch.no_grad():
            return torch.nn.functional.conv2d(x, w, b)

    def fwd_bwd():
        w.grad = None
        b.grad = None
        y = torch.nn.functional.conv2d(x, w, b)
        y.backward(dy)

    res = {}
    for name, fn in (("fwd", fwd), ("fwd+wgrad", fwd_bwd)):
        fn()
        best = float("inf")
        for _ in range(reps):
            t0 = time.perf_counter()
            fn()
            best = min(best, time.perf_counter() - t0)
        res[name] = batch / best
    print(f"torch {torch.__version__} conv2d CPU, threads={threads}, batch={batch} "
          f"(best of {reps}, wall clock): fwd {res['fwd']:.0f} samples/s, "
          f"fwd+wgrad {res['fwd+wgrad']:.0f} samples/s")


if __name__ == "__main__":
    main()
