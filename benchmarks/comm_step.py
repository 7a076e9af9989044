"""Cost of a CoMM training step against a DeCUR step, as in the Trifeature benchmark.

Both tasks get the benchmark's encoders (``convnet_small``, widths 8-64),
projectors and optimiser; each step encodes two views of each modality once,
computes the loss and updates the weights, on a batch of random 32 px images
(64 pairs), on one thread. CoMM also runs its fusion transformer three times
per view (all modalities, then each alone) on a few tokens each: its width
decides the cost. Times are medians of interleaved steps; the criterion is
CoMM at the benchmark's fusion width (``--fusion-dim``, 64) <= 2x DeCUR. The
paper width (512) is timed for comparison.

    .venv/bin/python benchmarks/comm_step.py
"""

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
import trifeature

from torchgeo_decur.tasks import CoMMTask, DeCURTask


def step(task: nn.Module, optimizer: torch.optim.Optimizer, batch: dict) -> None:
    """One training step: loss of the two views of each modality, update."""
    views = {m: batch[f'image{i + 1}'] for i, m in enumerate(task.modality_names)}
    loss, _ = task.compute_loss(views)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()


def main(argv: list[str] | None = None) -> int:
    """Time the steps; PASS if CoMM at the benchmark's width is <= 2x DeCUR."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--repeats', type=int, default=7)
    parser.add_argument('--max-ratio', type=float, default=2.0)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    torch.manual_seed(0)
    bench = trifeature.parse([])
    common = trifeature.shared_settings(bench)
    dims = [bench.projector_dim] * 2
    width = bench.fusion_dim
    tasks = {
        'DeCUR': DeCURTask(**common, projector_dims=dims, common_share=0.5),
        f'CoMM, fusion {width}': CoMMTask(
            **common, projector_dims=dims, embed_dim=width, num_heads=width // 16
        ),
        'CoMM, fusion 512': CoMMTask(**common, projector_dims=dims),
    }
    size, n = bench.size, bench.batch_size
    batch = {f'image{i}': torch.rand(n, 2, 3, size, size) for i in (1, 2)}
    optimizers = {k: torch.optim.AdamW(t.parameters(), 1e-3) for k, t in tasks.items()}
    for name, task in tasks.items():  # warm-up
        task.train()
        step(task, optimizers[name], batch)
    times: dict[str, list[float]] = {k: [] for k in tasks}
    for _ in range(args.repeats):
        for name, task in tasks.items():
            start = time.perf_counter()
            step(task, optimizers[name], batch)
            times[name].append(time.perf_counter() - start)
    base = statistics.median(times['DeCUR'])
    for name, values in times.items():
        median = statistics.median(values)
        print(f'{name:<18s} {1e3 * median:7.1f} ms/step  {median / base:5.2f}x DeCUR')
    ratio = statistics.median(times[f'CoMM, fusion {width}']) / base
    ok = ratio <= args.max_ratio
    print(f'[{"PASS" if ok else "FAIL"}: CoMM {ratio:.2f}x <= {args.max_ratio:g}x]')
    return 0 if ok else 1


if __name__ == '__main__':
    sys.exit(main())
