#!/usr/bin/env python3
"""Benchmark DeCURLoss against the plain K x K implementation of the paper.

Forward plus backward at the paper's size (N=256, K=8192, Kc=7168) in one run.
Three criteria, each printed as PASS or FAIL (exit status 1 on any FAIL):

1. value: relative difference of the two losses < --rtol (1e-4);
2. time: median speed-up of DeCURLoss over the plain version >= --min-speedup
   (15x);
3. memory: peak memory of DeCURLoss below the size of one K x K float32 matrix
   (which the plain version allocates several of).

Peak memory is measured with ``torch.cuda.max_memory_allocated`` on CUDA and,
on CPU, as the peak resident set size of a fresh subprocess per variant minus
that of a baseline subprocess that only allocates the inputs.

Usage::

    python benchmarks/loss.py [--n 256] [--k 8192] [--common-dim 7168]
                              [--repeats 3] [--device cpu|cuda]
                              [--threads 1]

On CPU both variants run on one thread by default: on a shared machine the
OpenMP barriers of several threads make the many small operations of
DeCURLoss wait on descheduled workers, and the timings measure the load of
the machine instead of the algorithms. ``--threads 0`` keeps torch's default.
"""

import argparse
import itertools
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from functools import partial

import torch
from torch import Tensor, nn

from torchgeo_decur.losses import DeCURLoss

LAMBD = 0.0051


def off_diagonal(x: Tensor) -> Tensor:
    """Flattened off-diagonal entries of a square matrix (DeCUR reference code)."""
    n, m = x.shape
    assert n == m
    return x.flatten()[:-1].view(n - 1, n + 1)[:, 1:].flatten()


class PlainDeCURLoss(nn.Module):
    """The paper's pseudocode / reference code: full K x K matrices."""

    def __init__(self, k: int, common_dim: int, lambd: float = LAMBD) -> None:
        super().__init__()
        self.bn = nn.BatchNorm1d(k, affine=False)
        self.common_dim = common_dim
        self.lambd = lambd

    def forward(self, z1_1: Tensor, z1_2: Tensor, z2_1: Tensor, z2_2: Tensor) -> Tensor:
        n = z1_1.shape[0]
        c1 = self.bn(z1_1).T @ self.bn(z1_2)
        c1.div_(n)
        c2 = self.bn(z2_1).T @ self.bn(z2_2)
        c2.div_(n)
        c = self.bn(z1_1).T @ self.bn(z2_1)
        c.div_(n)

        dim_c = self.common_dim
        c_c = c[:dim_c, :dim_c]
        c_u = c[dim_c:, dim_c:]
        on_diag_c = torch.diagonal(c_c).add_(-1).pow_(2).sum()
        off_diag_c = off_diagonal(c_c).pow_(2).sum()
        on_diag_u = torch.diagonal(c_u).pow_(2).sum()
        off_diag_u = off_diagonal(c_u).pow_(2).sum()
        loss_c = on_diag_c + self.lambd * off_diag_c
        loss_u = on_diag_u + self.lambd * off_diag_u

        on_diag1 = torch.diagonal(c1).add_(-1).pow_(2).sum()
        off_diag1 = off_diagonal(c1).pow_(2).sum()
        loss1 = on_diag1 + self.lambd * off_diag1
        on_diag2 = torch.diagonal(c2).add_(-1).pow_(2).sum()
        off_diag2 = off_diagonal(c2).pow_(2).sum()
        loss2 = on_diag2 + self.lambd * off_diag2
        return loss1 + loss2 + loss_c + loss_u


class PlainManyDeCURLoss(nn.Module):
    """The plain K x K computation for M modalities: every matrix built."""

    def __init__(self, k: int, common_dim: int, lambd: float = LAMBD) -> None:
        super().__init__()
        self.bn = nn.BatchNorm1d(k, affine=False)
        self.common_dim = common_dim
        self.lambd = lambd

    def _bt(self, c: Tensor, target: float) -> Tensor:
        on = torch.diagonal(c).add(-target).pow(2).sum()
        return on + self.lambd * off_diagonal(c).pow(2).sum()

    def forward(self, *zs: Tensor) -> Tensor:
        n, kc, m = zs[0].shape[0], self.common_dim, len(zs) // 2
        a = [self.bn(z) for z in zs]
        loss = zs[0].new_zeros(())
        for i in range(m):
            loss = loss + self._bt(a[2 * i].T @ a[2 * i + 1] / n, 1.0)
        for i, j in itertools.combinations(range(m), 2):
            c = a[2 * i].T @ a[2 * j] / n
            loss = loss + self._bt(c[:kc, :kc], 1.0) + self._bt(c[kc:, kc:], 0.0)
        return loss


def modality_sweep(args: argparse.Namespace) -> bool:
    """DeCURLoss for M = 2, 3, ... modalities against the plain computation.

    Returns:
        Whether every value agrees within *rtol*.
    """
    ok, base = True, None
    print(f'\nM modalities (2M embeddings), forward + backward, N={args.n} K={args.k}')
    for m in args.modalities:
        g = torch.Generator().manual_seed(args.seed)
        shared = torch.randn(args.n, args.k, generator=g)
        zs = [
            (shared + torch.randn(args.n, args.k, generator=g))
            .to(args.device)
            .requires_grad_()
            for _ in range(2 * m)
        ]
        fast = DeCURLoss(common_dim=args.common_dim).to(args.device)
        plain = PlainManyDeCURLoss(args.k, args.common_dim).to(args.device)
        values = {'fast': step(fast, zs).item(), 'plain': step(plain, zs).item()}
        times = timeit(
            {'fast': partial(step, fast, zs), 'plain': partial(step, plain, zs)},
            args.repeats,
            1,
            args.device,
        )
        med = {v: statistics.median(t) for v, t in times.items()}
        base = base or med['fast']
        rel = abs(values['fast'] - values['plain']) / abs(values['plain'])
        ok = ok and rel < args.rtol
        terms = m + m * (m - 1) // 2
        print(
            f'M={m}: terms {terms}; fast {med["fast"] * 1e3:.1f} ms '
            f'({med["fast"] / base:.2f}x M=2), plain {med["plain"] * 1e3:.1f} ms, '
            f'speed-up {med["plain"] / med["fast"]:.1f}x, rel. diff {rel:.1e}  '
            f'[{verdict(rel < args.rtol)}]'
        )
    return ok


def make_inputs(args: argparse.Namespace) -> list[Tensor]:
    """Four embeddings sharing a component, as from two modalities and views."""
    g = torch.Generator().manual_seed(args.seed)
    base = torch.randn(args.n, args.k, generator=g)
    zs = [base + torch.randn(args.n, args.k, generator=g) for _ in range(4)]
    return [z.to(args.device).requires_grad_() for z in zs]


def make_loss(variant: str, args: argparse.Namespace) -> nn.Module:
    """The loss module of a variant."""
    if variant == 'fast':
        return DeCURLoss(args.common_dim, lambd=LAMBD)
    return PlainDeCURLoss(args.k, args.common_dim).to(args.device)


def step(loss_fn: nn.Module, zs: list[Tensor]) -> Tensor:
    """One forward plus backward pass; returns the loss."""
    for z in zs:
        z.grad = None
    loss: Tensor = loss_fn(*zs)
    loss.backward()
    return loss.detach()


def sync(device: str) -> None:
    """Wait for queued device work."""
    if device == 'cuda':
        torch.cuda.synchronize()


def walltime(fn: Callable[[], object], device: str) -> float:
    """Wall time of one call, in seconds."""
    sync(device)
    start = time.perf_counter()
    fn()
    sync(device)
    return time.perf_counter() - start


def timeit(
    fns: Mapping[str, Callable[[], object]], repeats: int, fast_runs: int, device: str
) -> dict[str, list[float]]:
    """Wall times of the variants, interleaved so that both see the same load.

    After one warm-up call each, every repeat times ``fast_runs`` calls of the
    fast variant, one call of the plain variant, and ``fast_runs`` more calls of
    the fast variant.
    """
    for fn in fns.values():
        fn()
    times: dict[str, list[float]] = {variant: [] for variant in fns}
    for _ in range(repeats):
        for variant, runs in (('fast', fast_runs), ('plain', 1), ('fast', fast_runs)):
            times[variant] += [walltime(fns[variant], device) for _ in range(runs)]
    return times


def peak_rss_kib() -> int:
    """Peak resident set size of this process, in KiB.

    ``VmHWM`` where available: unlike ``ru_maxrss`` it is not inherited from the
    forked parent across ``exec``.
    """
    try:
        with open('/proc/self/status') as f:
            for line in f:
                if line.startswith('VmHWM:'):
                    return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def memory_child(variant: str, args: argparse.Namespace) -> None:
    """Run in a fresh process: print the peak RSS (KiB) after one step."""
    # load the BLAS / autograd machinery in every child, baseline included
    w = torch.randn(2, 2, requires_grad=True)
    (w @ w).sum().backward()
    zs = make_inputs(args)
    if variant != 'baseline':
        step(make_loss(variant, args), zs)
    print('PEAK_KIB', peak_rss_kib())


def peak_memory_cpu(args: argparse.Namespace) -> dict[str, float]:
    """Peak RSS above the baseline of each variant, in MiB, one process each."""
    peaks = {}
    for variant in ('baseline', 'fast', 'plain'):
        cmd = [sys.executable, __file__, '--memory-child', variant]
        cmd += ['--n', str(args.n), '--k', str(args.k)]
        cmd += ['--common-dim', str(args.common_dim), '--seed', str(args.seed)]
        cmd += ['--threads', str(torch.get_num_threads())]
        out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
        kib = next(
            int(line.split()[1])
            for line in out.splitlines()
            if line.startswith('PEAK_KIB')
        )
        peaks[variant] = kib / 1024
    return {v: peaks[v] - peaks['baseline'] for v in ('fast', 'plain')}


def peak_memory_cuda(args: argparse.Namespace) -> dict[str, float]:
    """Peak CUDA memory allocated above the inputs of each variant, in MiB."""
    peaks = {}
    for variant in ('fast', 'plain'):
        torch.cuda.empty_cache()
        zs = make_inputs(args)
        loss_fn = make_loss(variant, args)
        sync(args.device)
        baseline = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        step(loss_fn, zs)
        sync(args.device)
        peaks[variant] = (torch.cuda.max_memory_allocated() - baseline) / 2**20
        del zs, loss_fn
    return peaks


def verdict(ok: bool) -> str:
    """PASS or FAIL."""
    return 'PASS' if ok else 'FAIL'


def main() -> int:
    """Run the benchmark; returns the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--n', type=int, default=256, help='batch size')
    parser.add_argument('--k', type=int, default=8192, help='embedding size')
    parser.add_argument('--common-dim', type=int, default=7168)
    parser.add_argument(
        '--repeats',
        type=int,
        default=3,
        help='timed runs of the plain variant (6x as many fast ones)',
    )
    parser.add_argument('--device', choices=['cpu', 'cuda'], default='cpu')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument(
        '--threads',
        type=int,
        help=(
            'CPU threads for both variants (default: 1 on CPU, where the '
            'OpenMP barriers of several threads on a shared machine swamp the '
            "timings; 0: torch's default)"
        ),
    )
    parser.add_argument(
        '--modalities',
        type=int,
        nargs='*',
        default=[],
        help='also time M = these numbers of modalities (e.g. 2 3 4)',
    )
    parser.add_argument('--rtol', type=float, default=1e-4)
    parser.add_argument('--min-speedup', type=float, default=15.0)
    parser.add_argument(
        '--memory-child', choices=['baseline', 'fast', 'plain'], help=argparse.SUPPRESS
    )
    args = parser.parse_args()
    if args.threads is None and args.device == 'cpu':
        args.threads = 1
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.memory_child:
        args.device = 'cpu'
        memory_child(args.memory_child, args)
        return 0
    if args.device == 'cuda' and not torch.cuda.is_available():
        parser.error('--device cuda but CUDA is not available')

    print(
        f'DeCURLoss vs plain K x K implementation, forward + backward: '
        f'N={args.n} K={args.k} Kc={args.common_dim} float32 '
        f'device={args.device} threads={torch.get_num_threads()} '
        f'torch={torch.__version__}; timed runs interleaved: '
        f'{args.repeats} plain, {6 * args.repeats} fast'
    )
    zs = make_inputs(args)
    losses, grads, steps = {}, {}, {}
    for variant in ('fast', 'plain'):
        loss_fn = make_loss(variant, args)
        losses[variant] = step(loss_fn, zs).item()
        grads[variant] = torch.cat([z.grad.flatten() for z in zs])  # type: ignore[union-attr]
        steps[variant] = partial(step, loss_fn, zs)
    times = timeit(steps, args.repeats, 3, args.device)

    rel = abs(losses['fast'] - losses['plain']) / abs(losses['plain'])
    grad_rel = (grads['fast'] - grads['plain']).norm() / grads['plain'].norm()
    ok_value = rel < args.rtol
    print(
        f'value : fast={losses["fast"]:.6f} plain={losses["plain"]:.6f} '
        f'rel. diff={rel:.2e} (gradients: rel. diff {grad_rel.item():.2e})  '
        f'[{verdict(ok_value)}: < {args.rtol:g}]'
    )

    med = {v: statistics.median(t) for v, t in times.items()}
    speedup = med['plain'] / med['fast']
    ok_time = speedup >= args.min_speedup
    print(
        f'time  : fast median={med["fast"] * 1e3:.1f} ms '
        f'plain median={med["plain"] * 1e3:.1f} ms speed-up={speedup:.1f}x  '
        f'[{verdict(ok_time)}: >= {args.min_speedup:g}x]'
    )

    del zs, grads
    if args.device == 'cuda':
        peaks, how = peak_memory_cuda(args), 'CUDA max_memory_allocated above inputs'
    else:
        peaks, how = peak_memory_cpu(args), 'peak RSS of a fresh process above inputs'
    kxk = args.k * args.k * 4 / 2**20
    ok_mem = peaks['fast'] < kxk
    print(
        f'memory: fast peak={peaks["fast"]:.1f} MiB plain peak={peaks["plain"]:.1f} '
        f'MiB ratio={peaks["plain"] / max(peaks["fast"], 1e-9):.1f}x ({how})  '
        f'[{verdict(ok_mem)}: fast < one K x K float32 matrix = {kxk:.0f} MiB]'
    )

    ok = ok_value and ok_time and ok_mem
    if args.modalities:
        ok = modality_sweep(args) and ok
    print(f'RESULT: {verdict(ok)}')
    return 0 if ok else 1


if __name__ == '__main__':
    sys.exit(main())
