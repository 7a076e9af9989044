"""The cost of deformable attention: DeformableResNet-50 against ResNet-50.

Times one training step (forward, then backward of a scalar of the pooled
features) of a timm ResNet-50 and of the same ResNet-50 with DeCUR's
deformable attention after stages 3 and 4
(:func:`torchgeo_decur.models.deformable.add_deformable_attention`), on the
same batch. The deformable model adopts the ResNet's modules, so both run the
very same ResNet weights. After one warm-up step each, timed steps alternate
(A, B, A, B, ...) so that load changes of the machine hit both alike; the
report gives the median (and minimum) milliseconds per batch of each and the
ratio DeformableResNet-50 / ResNet-50 of the medians, plus the parameter
counts (and, on CUDA, the peak memory of a step).

    .venv/bin/python benchmarks/deformable.py                       # CPU
    .venv/bin/python benchmarks/deformable.py --device cuda
    .venv/bin/python benchmarks/deformable.py --batch-size 4 --repeats 5

The one criterion is that both models give finite outputs of the same shape
(and, with ``--max-ratio``, that the ratio stays below it); the timings are
reported, not judged.
"""

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from functools import partial

import timm
import torch
from torch import Tensor, nn

from torchgeo_decur.models.deformable import add_deformable_attention


def step(model: nn.Module, x: Tensor) -> Tensor:
    """One forward and backward pass; returns the detached output."""
    model.zero_grad(set_to_none=True)
    out = model(x)
    out.square().mean().backward()
    return out.detach()


def timed(fn: Callable[[], Tensor], device: torch.device) -> float:
    """Wall time of *fn* in milliseconds (synchronised on CUDA)."""
    if device.type == 'cuda':
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    fn()
    if device.type == 'cuda':
        torch.cuda.synchronize(device)
    return (time.perf_counter() - start) * 1000


def peak_memory(fn: Callable[[], Tensor], device: torch.device) -> float:
    """Peak CUDA memory of *fn* in MiB."""
    torch.cuda.reset_peak_memory_stats(device)
    fn()
    torch.cuda.synchronize(device)
    return torch.cuda.max_memory_allocated(device) / 2**20


def count(model: nn.Module) -> int:
    """Number of parameters."""
    return sum(p.numel() for p in model.parameters())


def main() -> int:
    """Run the benchmark; return the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--batch-size', type=int, default=8)
    parser.add_argument('--size', type=int, default=224, help='input height/width')
    parser.add_argument('--in-chans', type=int, default=13)
    parser.add_argument('--repeats', type=int, default=10, help='timed steps each')
    parser.add_argument(
        '--device', default='cpu', help="'cpu' or 'cuda' (when available)"
    )
    parser.add_argument(
        '--threads', type=int, default=0, help='CPU threads (0: torch default)'
    )
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument(
        '--max-ratio', type=float, default=0.0, help='FAIL above it (0: report only)'
    )
    args = parser.parse_args()
    if args.device == 'cuda' and not torch.cuda.is_available():
        parser.error('--device cuda but CUDA is not available')
    device = torch.device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)

    resnet = timm.create_model('resnet50', in_chans=args.in_chans, num_classes=0)
    deformable = add_deformable_attention(resnet)  # adopts resnet's modules
    resnet.to(device).train()
    deformable.to(device).train()
    x = torch.randn(args.batch_size, args.in_chans, args.size, args.size, device=device)
    models = {'ResNet-50': resnet, 'DeformableResNet-50': deformable}

    print(
        f'device={device} threads={torch.get_num_threads()} torch={torch.__version__}'
        f' batch={args.batch_size} size={args.size} in_chans={args.in_chans}'
        f' repeats={args.repeats} (forward + backward, float32)'
    )
    outputs = {name: step(m, x) for name, m in models.items()}  # warm-up
    times: dict[str, list[float]] = {name: [] for name in models}
    for _ in range(args.repeats):
        for name, m in models.items():
            times[name].append(timed(partial(step, m, x), device))

    for name, m in models.items():
        line = (
            f'{name:>20}: {statistics.median(times[name]):9.1f} ms/batch median, '
            f'{min(times[name]):9.1f} min, {count(m) / 1e6:6.2f} M parameters'
        )
        if device.type == 'cuda':
            line += f', peak {peak_memory(partial(step, m, x), device):.0f} MiB'
        print(line)
    ratio = statistics.median(times['DeformableResNet-50']) / statistics.median(
        times['ResNet-50']
    )
    print(f'ratio DeformableResNet-50 / ResNet-50: {ratio:.2f}x')

    failed = False
    shapes = {tuple(o.shape) for o in outputs.values()}
    finite = all(bool(torch.isfinite(o).all()) for o in outputs.values())
    ok = finite and len(shapes) == 1
    print(f'outputs finite, same shape {shapes}: {"PASS" if ok else "FAIL"}')
    failed |= not ok
    if args.max_ratio:
        ok = ratio <= args.max_ratio
        print(f'ratio <= {args.max_ratio}: {"PASS" if ok else "FAIL"}')
        failed |= not ok
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())
