"""Cost of the collapse monitors against the DeCUR loss they sit beside.

Times, on paper-size embeddings of two modalities (N=256, K=8192 by
default), one call of :class:`torchgeo_decur.monitors.CollapseMonitor` on a
step without the effective rank (the embeddings' std only) and on a step with
it (an SVD per modality), against one forward + backward of
:class:`~torchgeo_decur.losses.DeCURLoss` on the same embeddings: a lower
bound of a training step, whose encoders cost far more. Reports the
amortised overhead at ``--every`` (50, the tasks' default).

    .venv/bin/python benchmarks/monitors.py
    .venv/bin/python benchmarks/monitors.py --n 512 --k 2048 --every 10
"""

import argparse
import statistics
import sys
import time
from collections.abc import Callable

import torch

from torchgeo_decur.losses import DeCURLoss
from torchgeo_decur.monitors import CollapseMonitor


def median_time(fn: Callable[[], object], repeats: int) -> float:
    """Median wall time of *fn* after one warm-up call, in seconds."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; returns the exit status (1 over --max-overhead)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--n', type=int, default=256)
    parser.add_argument('--k', type=int, default=8192)
    parser.add_argument('--every', type=int, default=50)
    parser.add_argument('--repeats', type=int, default=5)
    parser.add_argument('--threads', type=int, default=1)
    parser.add_argument('--max-overhead', type=float, default=0.05)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    g = torch.Generator().manual_seed(0)
    zs = [torch.randn(args.n, args.k, generator=g).requires_grad_() for _ in range(4)]
    loss_fn = DeCURLoss(common_dim=args.k * 7 // 8)

    def loss_step() -> None:
        for z in zs:
            z.grad = None
        loss_fn(*zs).backward()

    monitor = CollapseMonitor(every=args.every)
    embeddings = {'s1': zs[0].detach(), 's2c': zs[2].detach()}
    loss_s = median_time(loss_step, args.repeats)
    std_s = median_time(lambda: monitor(embeddings, 1), args.repeats)
    rank_s = median_time(lambda: monitor(embeddings, 0), args.repeats)
    amortised = std_s + (rank_s - std_s) / max(args.every, 1)
    overhead = amortised / loss_s
    print(f'N={args.n} K={args.k} threads={torch.get_num_threads()}, medians:')
    print(f'DeCUR loss forward + backward: {loss_s * 1e3:.1f} ms')
    print(f'monitors, std only:            {std_s * 1e3:.2f} ms')
    print(f'monitors, with effective rank: {rank_s * 1e3:.1f} ms')
    ok = overhead <= args.max_overhead
    print(
        f'amortised at every={args.every}: {amortised * 1e3:.2f} ms a step, '
        f'{100 * overhead:.2f}% of the loss alone  '
        f'[{"PASS" if ok else "FAIL"}: <= {100 * args.max_overhead:g}%]'
    )
    return 0 if ok else 1


if __name__ == '__main__':
    sys.exit(main())
