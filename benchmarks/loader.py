"""Samples per second of the SSL4EO-S12 pair reader against TorchGeo's readers.

One DeCUR sample reads, at one location, two seasons of Sentinel-1 (VV, VH)
and two seasons of Sentinel-2 L1C (13 bands): 30 band files. TorchGeo's
``SSL4EOS12(split='s1', seasons=2)`` and ``SSL4EOS12(split='s2c', seasons=2)``
read the same 30 files for one location (each resampled by GDAL to 264 px).
This script generates SSL4EO-S12-format data at the real tile size (264 px,
20 m and 60 m bands at their native 132 and 44 px), then times, in one
process (one DataLoader worker's work), interleaved passes over the same
locations:

* ``torchgeo``: ``s1[i]`` then ``s2c[i]`` (two of TorchGeo's readers);
* ``pair``: ``SSL4EOS12Pair(root, resample='batch')[i]``, what the
  datamodule's workers do: raw values, coarser bands at their native size
  (resampled later on the batch, on the device);
* ``pair-full``: ``SSL4EOS12Pair(root)[i]``, the same with the coarser bands
  resampled to 264 px in the worker (bilinear), as a standalone user gets it;
* ``seeded``: ``pair`` through :class:`SeededDataset`, which seeds the
  generators for each sample as the datamodule's workers do (reproducible,
  resumable runs).

Both draw two distinct seasons per modality, so they read the same number of
files, and both run from the page cache (one untimed warm-up pass each). The
ratio of the medians is the speed-up; the goal is at least 2x.

    .venv/bin/python benchmarks/loader.py                  # 64 locations, 5 passes
    .venv/bin/python benchmarks/loader.py --locations 128 --repeats 7
"""

import argparse
import itertools
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torchgeo.datasets import SSL4EOS12

from torchgeo_decur.datamodules.sampling import SeededDataset
from torchgeo_decur.datasets import SSL4EOS12Pair
from torchgeo_decur.datasets import ssl4eo_s12 as pair_module
from torchgeo_decur.lab import make_ssl4eo_s12_demo


class _DistinctSeasons:
    """A stand-in for :mod:`random` whose draws cycle through the seasons.

    Two successive ``choice`` calls on the same list return different items,
    so a sample reads two distinct seasons per modality, as TorchGeo's
    ``seasons=2`` does.
    """

    def __init__(self) -> None:
        self.counter = itertools.count()

    def choice(self, seq: list[str]) -> str:
        return seq[next(self.counter) % len(seq)]

    def sample(self, seq: list[str], k: int) -> list[str]:
        start = next(self.counter)
        return [seq[(start + i) % len(seq)] for i in range(k)]


def time_pass(fn: Callable[[int], object], n: int) -> float:
    """Seconds per sample of one pass over locations 0..n-1."""
    start = time.perf_counter()
    for i in range(n):
        fn(i)
    return (time.perf_counter() - start) / n


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--locations', type=int, default=64)
    parser.add_argument('--repeats', type=int, default=5)
    parser.add_argument('--root', type=Path, default=None, help='data folder')
    parser.add_argument('--min-speedup', type=float, default=2.0)
    args = parser.parse_args(argv)

    torch.set_num_threads(1)  # one DataLoader worker's share
    tmp = tempfile.TemporaryDirectory(prefix='loader-bench-')
    root = args.root or Path(tmp.name) / 'ssl4eo-s12'
    print(f'generating {args.locations} locations at 264 px in {root} ...')
    make_ssl4eo_s12_demo(root, num_locations=args.locations, size=264)

    # both readers draw two distinct seasons per modality
    distinct = _DistinctSeasons()
    pair_module.random = distinct  # type: ignore[assignment]
    import torchgeo.datasets.ssl4eo as tg_module

    tg_module.random = distinct  # type: ignore[assignment]

    s1 = SSL4EOS12(root, split='s1', seasons=2, checksum=False)
    s2 = SSL4EOS12(root, split='s2c', seasons=2, checksum=False)
    pair = SSL4EOS12Pair(root, resample='batch')
    pair_full = SSL4EOS12Pair(root)

    def torchgeo_sample(i: int) -> object:
        return s1[i], s2[i]

    for name, ds in (('pair', pair), ('pair-full', pair_full)):
        sample = ds[0]
        images = {k: v for k, v in sample.items() if k.startswith('image')}
        mib = sum(v.numel() * v.element_size() for v in images.values()) / 2**20
        shapes = ', '.join(f'{k} {tuple(v.shape)}' for k, v in images.items())
        print(f'{name} sample: {shapes}; {mib:.1f} MiB')
    t = torchgeo_sample(0)
    print(
        f'torchgeo sample: s1 {tuple(t[0]["image"].shape)}, s2c '
        f'{tuple(t[1]["image"].shape)}'
    )
    seeded = SeededDataset(pair)

    def seeded_sample(i: int) -> object:
        return seeded[(i, i)]

    readers = {
        'torchgeo': torchgeo_sample,
        'pair': pair.__getitem__,
        'pair-full': pair_full.__getitem__,
        'seeded': seeded_sample,
    }
    n = args.locations
    for fn in readers.values():  # warm the page cache
        time_pass(fn, n)
    times: dict[str, list[float]] = {name: [] for name in readers}
    for _ in range(args.repeats):
        for name, fn in readers.items():
            times[name].append(time_pass(fn, n))

    medians = {name: statistics.median(t) for name, t in times.items()}
    print(f'\n{n} locations, 30 band files per sample, {args.repeats} passes each')
    for name, median in medians.items():
        spread = ', '.join(f'{1e3 * t:.1f}' for t in times[name])
        print(
            f'{name:9s} {1e3 * median:7.2f} ms/sample  {1 / median:7.1f} samples/s'
            f'   (passes: {spread} ms)'
        )
    speedup = medians['torchgeo'] / medians['pair']
    ok = speedup >= args.min_speedup
    print(
        f'speed-up pair vs torchgeo: {speedup:.2f}x  '
        f'[{"PASS" if ok else "FAIL"}: >= {args.min_speedup}x]'
    )
    full = medians['torchgeo'] / medians['pair-full']
    print(f'speed-up pair-full vs torchgeo: {full:.2f}x (for information)')
    overhead = medians['seeded'] / medians['pair']
    print(f'seeded (datamodule workers) / pair: {overhead:.3f} (for information)')
    tmp.cleanup()
    return 0 if ok else 1


if __name__ == '__main__':
    sys.exit(main())
