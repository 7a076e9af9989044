#!/usr/bin/env python3
"""Barlow Twins: our Gram form against lightly's K x K BarlowTwinsLoss.

The cross-modal Barlow Twins baseline (``CrossModalBarlowTwinsLoss``) computes
the loss as DeCURLoss computes its terms: without the K x K cross-correlation
when the batch N is smaller than the embedding K. This compares it with
lightly's ``BarlowTwinsLoss`` (the same normalisation and formula, the K x K
matrix built) on the same float32 embeddings, forward plus backward, timed
runs interleaved. Prints PASS or FAIL for each criterion:

1. value: relative difference of the losses < --rtol (1e-4);
2. time: median speed-up of ours over lightly's >= --min-speedup (1.0, i.e.
   never slower; the ratio is what to read).

Usage::

    python benchmarks/barlow.py [--n 256] [--k 8192] [--repeats 5] [--threads 1]
"""

import argparse
import statistics
import sys
import time

import torch
from lightly.loss import BarlowTwinsLoss
from torch import nn

from torchgeo_decur.losses import CrossModalBarlowTwinsLoss


def step(loss_fn: nn.Module, z1: torch.Tensor, z2: torch.Tensor) -> float:
    """One forward and backward pass; returns the loss."""
    z1.grad = z2.grad = None
    loss = loss_fn(z1, z2)
    loss.backward()
    return float(loss.detach())


def main() -> int:
    """Run the benchmark; returns the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--n', type=int, default=256, help='batch size')
    parser.add_argument('--k', type=int, default=8192, help='embedding size')
    parser.add_argument('--repeats', type=int, default=5)
    parser.add_argument('--threads', type=int, default=1, help='0: torch default')
    parser.add_argument('--rtol', type=float, default=1e-4)
    parser.add_argument('--min-speedup', type=float, default=1.0)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    g = torch.Generator().manual_seed(0)
    base = torch.randn(args.n, args.k, generator=g)
    z1 = (base + torch.randn(args.n, args.k, generator=g)).requires_grad_()
    z2 = (2 * base + torch.randn(args.n, args.k, generator=g) + 1).requires_grad_()
    losses = {
        'ours (Gram)': CrossModalBarlowTwinsLoss(0.0051),
        "lightly's (K x K)": BarlowTwinsLoss(lambda_param=0.0051),
    }
    values = {name: step(fn, z1, z2) for name, fn in losses.items()}  # warm-up
    times: dict[str, list[float]] = {name: [] for name in losses}
    for _ in range(args.repeats):
        for name, fn in losses.items():
            start = time.perf_counter()
            step(fn, z1, z2)
            times[name].append(time.perf_counter() - start)
    print(
        f'Barlow Twins, forward + backward: N={args.n} K={args.k} float32 '
        f'threads={torch.get_num_threads()} torch={torch.__version__}; '
        f'{args.repeats} timed runs each, interleaved'
    )
    ours, theirs = values.values()
    rel = abs(ours - theirs) / abs(theirs)
    ok_value = rel < args.rtol
    print(
        f'value : ours={ours:.6f} lightly={theirs:.6f} rel. diff={rel:.2e}  '
        f'[{"PASS" if ok_value else "FAIL"}: < {args.rtol:g}]'
    )
    med = {name: statistics.median(t) for name, t in times.items()}
    fast, slow = med.values()
    speedup = slow / fast
    ok_time = speedup >= args.min_speedup
    print(
        f'time  : ours median={fast * 1e3:.1f} ms lightly median={slow * 1e3:.1f} '
        f'ms speed-up={speedup:.1f}x  [{"PASS" if ok_time else "FAIL"}: '
        f'>= {args.min_speedup:g}x]'
    )
    ok = ok_value and ok_time
    print(f'RESULT: {"PASS" if ok else "FAIL"}')
    return 0 if ok else 1


if __name__ == '__main__':
    sys.exit(main())
