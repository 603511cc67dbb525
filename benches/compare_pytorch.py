#!/usr/bin/env python3
"""PyTorch versions of chromax's two models, timed on the CPU, for the side-by-side benchmark.

Written from ../shared/ARCHITECTURE.md ("Models"), not from any other project's code:

* DenoiseNet (AtacWorks' published shape): regression part of 5 residual blocks (15 filters,
  kernel 51, dilation 8, no bias anywhere), regression head 1×1 conv + ReLU; classification
  part of 2 blocks of the same shape with biases, fed with the 1-channel regression output,
  head 1×1 conv + bias. Residual block: conv→ReLU→conv→ReLU→conv, plus the skip (1×1 conv,
  no bias, + ReLU in a part's first block, identity after), then ReLU. "Same" zero padding.
  219,706 parameters. Training loss on the interval's centre: 0.0005·MSE + (1 − r) + BCE,
  Adam lr 2e-4.
* SeqNet (scBasset): one-hot 1,344 bp; blocks GELU → conv (no bias) → batch norm → max pool:
  stem k17 288 filters pool 3, six tower blocks k5 (288, 323, 363, 407, 456, 512) pool 2,
  final k1 256; bottleneck GELU → flatten (length-major) → dense 32 (no bias) → BN → dropout
  0.2 → GELU; head dense to n_cells with bias, sigmoid, BCE. 4,513,960 + 33·n parameters.
  Adam lr 0.01, betas (0.95, 0.9995). GELU is scBasset's x·σ(1.702·x).

Prints one JSON object: each figure, the shapes, the thread count and torch's version.
`benches/compare_pytorch.sh` runs this and chromax one after the other and prints the ratios.
"""

import argparse
import json
import sys
import time

try:
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
except ImportError:
    sys.exit("PyTorch is not installed: `python3 -m pip install torch` (the CPU build is enough)")


def gelu(x):
    return x * torch.sigmoid(1.702 * x)


class ResBlock(nn.Module):
    def __init__(self, c_in, f, k, d, bias):
        super().__init__()
        pad = ((k - 1) * d) // 2
        assert (k - 1) * d == 2 * pad, "odd total padding is not used by these models"
        self.c1 = nn.Conv1d(c_in, f, k, dilation=d, padding=pad, bias=bias)
        self.c2 = nn.Conv1d(f, f, k, dilation=d, padding=pad, bias=bias)
        self.c3 = nn.Conv1d(f, f, k, dilation=d, padding=pad, bias=bias)
        self.skip = nn.Conv1d(c_in, f, 1, bias=False) if c_in != f else None

    def forward(self, x):
        h = self.c3(F.relu(self.c2(F.relu(self.c1(x)))))
        s = F.relu(self.skip(x)) if self.skip is not None else x
        return F.relu(h + s)


class DenoiseNet(nn.Module):
    def __init__(self, filters=15, kernel=51, dilation=8, reg_blocks=5, cls_blocks=2):
        super().__init__()
        self.reg = nn.Sequential(
            *[ResBlock(1 if i == 0 else filters, filters, kernel, dilation, False) for i in range(reg_blocks)]
        )
        self.reg_head = nn.Conv1d(filters, 1, 1, bias=False)
        self.cls = nn.Sequential(
            *[ResBlock(1 if i == 0 else filters, filters, kernel, dilation, True) for i in range(cls_blocks)]
        )
        self.cls_head = nn.Conv1d(filters, 1, 1, bias=True)

    def forward(self, x):
        reg = F.relu(self.reg_head(self.reg(x)))
        logits = self.cls_head(self.cls(reg))
        return reg, logits


def denoise_loss(reg, logits, clean, peaks, pad):
    c = slice(pad, reg.shape[-1] - pad)
    r, y, lg, p = reg[..., c], clean[..., c], logits[..., c], peaks[..., c]
    mse = F.mse_loss(r, y)
    rc, yc = r - r.mean(), y - y.mean()
    pearson = (rc * yc).sum() / (rc.norm() * yc.norm() + 1e-12)
    bce = F.binary_cross_entropy_with_logits(lg, p)
    return 0.0005 * mse + (1.0 - pearson) + bce


class ConvBlock(nn.Module):
    def __init__(self, c_in, c_out, k, pool):
        super().__init__()
        self.conv = nn.Conv1d(c_in, c_out, k, padding=(k - 1) // 2, bias=False)
        self.bn = nn.BatchNorm1d(c_out, eps=1e-3, momentum=0.1)  # Keras momentum 0.9
        self.pool = nn.MaxPool1d(pool) if pool > 1 else nn.Identity()

    def forward(self, x):
        return self.pool(self.bn(self.conv(gelu(x))))


class SeqNet(nn.Module):
    def __init__(self, cells, seq_len=1344):
        super().__init__()
        blocks, c, length = [ConvBlock(4, 288, 17, 3)], 288, seq_len // 3
        for f in (288, 323, 363, 407, 456, 512):
            blocks.append(ConvBlock(c, f, 5, 2))
            c, length = f, length // 2
        blocks.append(ConvBlock(c, 256, 1, 1))
        self.trunk = nn.Sequential(*blocks)
        self.dense = nn.Linear(256 * length, 32, bias=False)
        self.bn = nn.BatchNorm1d(32, eps=1e-3, momentum=0.1)
        self.drop = nn.Dropout(0.2)
        self.head = nn.Linear(32, cells)

    def forward(self, x):
        h = gelu(self.trunk(x))
        h = h.transpose(1, 2).flatten(1)  # length-major, as chromax flattens
        z = gelu(self.drop(self.bn(self.dense(h))))
        return self.head(z)


def timed(fn, steps):
    fn()  # warm-up
    t = time.perf_counter()
    for _ in range(steps):
        fn()
    return (time.perf_counter() - t) / steps


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=4, help="DenoiseNet intervals per batch")
    ap.add_argument("--interval", type=int, default=50_000)
    ap.add_argument("--pad", type=int, default=5_000)
    ap.add_argument("--steps", type=int, default=3, help="timed DenoiseNet steps of each kind")
    ap.add_argument("--sc-batch", type=int, default=128)
    ap.add_argument("--cells", type=int, default=10_000)
    ap.add_argument("--sc-steps", type=int, default=10, help="timed SeqNet steps of each kind")
    ap.add_argument("--only", choices=["denoise", "sc"], default=None)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(1)
    out = {"torch": torch.__version__, "threads": torch.get_num_threads()}

    if a.only in (None, "denoise"):
        net = DenoiseNet()
        n_params = sum(p.numel() for p in net.parameters())
        assert n_params == 219_706, n_params
        width = a.interval + 2 * a.pad
        i = torch.arange(a.batch * width, dtype=torch.float32)
        x = (10 + 8 * torch.sin(i * 0.001) + 40 * ((i % 997) < 200).float()).reshape(a.batch, 1, width)
        clean, peaks = 1.5 * x, (x > 30).float()
        opt = torch.optim.Adam(net.parameters(), lr=2e-4)

        def train_step():
            opt.zero_grad(set_to_none=True)
            reg, logits = net(x)
            denoise_loss(reg, logits, clean, peaks, a.pad).backward()
            opt.step()

        def infer_step():
            with torch.inference_mode():
                reg, logits = net(x)
                torch.sigmoid(logits)

        net.train()
        train_s = timed(train_step, a.steps)
        net.eval()
        infer_s = timed(infer_step, a.steps)
        bases = a.batch * a.interval
        out["denoise"] = {
            "params": n_params,
            "batch": a.batch,
            "interval": a.interval,
            "pad": a.pad,
            "train_bases_per_s": bases / train_s,
            "infer_bases_per_s": bases / infer_s,
        }

    if a.only in (None, "sc"):
        net = SeqNet(a.cells)
        n_params = sum(p.numel() for p in net.parameters())
        assert n_params == 4_513_960 + 33 * a.cells, n_params
        g = torch.Generator().manual_seed(2)
        codes = torch.randint(0, 4, (a.sc_batch, 1344), generator=g)
        x = F.one_hot(codes, 4).float().transpose(1, 2).contiguous()
        y = (torch.rand(a.sc_batch, a.cells, generator=g) < 0.03).float()
        opt = torch.optim.Adam(net.parameters(), lr=0.01, betas=(0.95, 0.9995))

        def train_step():
            opt.zero_grad(set_to_none=True)
            F.binary_cross_entropy_with_logits(net(x), y).backward()
            opt.step()

        def infer_step():
            with torch.inference_mode():
                torch.sigmoid(net(x))

        net.train()
        train_s = timed(train_step, a.sc_steps)
        net.eval()
        infer_s = timed(infer_step, a.sc_steps)
        out["sc"] = {
            "params": n_params,
            "batch": a.sc_batch,
            "cells": a.cells,
            "train_seqs_per_s": a.sc_batch / train_s,
            "infer_seqs_per_s": a.sc_batch / infer_s,
        }
    print(json.dumps(out))


if __name__ == "__main__":
    main()
