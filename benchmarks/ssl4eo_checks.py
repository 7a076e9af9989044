"""Cost of the SSL4EO-S12 reader's checks on the files, against reading them.

``SSL4EOS12Pair`` checks every band it reads: a constant band is bad
(``_check_constant``), and a file that does not fit its modality (band count,
dtype, for float files the modality's ``raw_check``) is warned about
(``_check_fit``). This script generates SSL4EO-S12-format data at the real
tile size (264 px; 20 m and 60 m bands at 132 and 44 px), then, in one process
on one thread (one DataLoader worker's work):

* per band (264 x 264, Sentinel-1 float32 VV and Sentinel-2 uint16 B4): the
  median time to read the band as the reader does, and that of each check:
  ``np.ptp``, ``min == max``, the reader's constant check (a few pixels first,
  all of them only for a band flat there) and its fit check;
* per sample (``SSL4EOS12Pair(root, resample='batch')[i]``, what the
  datamodule's workers do: 30 band files): the time spent inside the checks,
  accumulated over passes over the locations, as a share of the passes' time
  (the criterion is the later passes: a file is checked on its first read in
  a process; timer overhead included, so an upper bound); and, for
  information, the ratio of the median pass times with and without the checks
  (timed passes interleaved; on a shared machine its noise is larger than the
  cost);
* the time to open the dataset, whose band layout is now the majority of the
  first ten locations' (for information).

    .venv/bin/python benchmarks/ssl4eo_checks.py      # 32 locations, 7 passes
    .venv/bin/python benchmarks/ssl4eo_checks.py --locations 64 --repeats 11
"""

import argparse
import functools
import itertools
import os
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from rasterio.errors import NotGeoreferencedWarning

from torchgeo_decur.datasets import SSL4EOS12Pair
from torchgeo_decur.datasets import ssl4eo_s12 as pair_module
from torchgeo_decur.lab import make_ssl4eo_s12_demo

CHECKS = ('_check_constant', '_check_fit')


class _DistinctSeasons:
    """A stand-in for :mod:`random` whose draws cycle through the seasons."""

    def __init__(self) -> None:
        self.counter = itertools.count()

    def choice(self, seq: list[str]) -> str:
        return seq[next(self.counter) % len(seq)]


def median_us(fn: Callable[[], object], n: int = 2000, repeats: int = 5) -> float:
    """Median over *repeats* of the mean time of *n* calls, in microseconds."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(n):
            fn()
        times.append((time.perf_counter() - start) / n * 1e6)
    return statistics.median(times)


def band_costs(ds: SSL4EOS12Pair, plain: SSL4EOS12Pair, path: str) -> None:
    """Print the cost of each check on one band file, against reading it.

    Args:
        ds: The dataset, with its checks.
        plain: The same without checks.
        path: The band file.
    """
    directory, name = os.path.split(path)
    band = name.removesuffix('.tif')
    out = np.empty((ds.size, ds.size), np.float32)
    with pair_module.DatasetReader(path, **pair_module._OPEN_OPTIONS) as f:
        dtype = f.dtypes[0]
    with pair_module.rasterio.Env(**pair_module._GDAL_ENV):
        read = median_us(lambda: plain._read_band(directory, band, out), n=500)
    costs = {
        'np.ptp': median_us(lambda: np.ptp(out)),
        'min == max': median_us(lambda: out.min() == out.max()),
        'constant check': median_us(lambda: ds._check_constant(out, path, band)),
        'fit check': median_us(lambda: ds._check_fit(out, path, band, 1, dtype)),
    }
    print(f'{band} ({dtype}, {ds.size} x {ds.size}): read {read:.1f} us')
    for check, us in costs.items():
        print(f'  {check:15s} {us:7.2f} us  {100 * us / read:6.2f} % of the read')


def per_band(ds: SSL4EOS12Pair, root: Path) -> None:
    """Print the cost of each check on a 264 x 264 S1 and S2 band.

    Args:
        ds: The dataset.
        root: Its root.
    """
    plain = SSL4EOS12Pair(root, resample='batch')
    for name in CHECKS:
        setattr(plain, name, lambda *args: None)
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', NotGeoreferencedWarning)
        for modality, band in (('s1', 'VV'), ('s2c', 'B4')):
            folder = root / modality / ds.ids[0]
            season = ds._seasons(str(folder))[0]
            band_costs(ds, plain, str(folder / season / f'{band}.tif'))


def instrumented(ds: SSL4EOS12Pair, spent: list[float]) -> SSL4EOS12Pair:
    """Wrap the checks of *ds* to add their time to ``spent[0]``.

    Returns:
        *ds*.
    """
    for name in CHECKS:
        method = getattr(ds, name)

        @functools.wraps(method)
        def timed(*args: Any, _method: Callable[..., None] = method) -> None:
            start = time.perf_counter()
            try:
                _method(*args)
            finally:
                spent[0] += time.perf_counter() - start

        setattr(ds, name, timed)
    return ds


def time_pass(fn: Callable[[int], object], n: int) -> float:
    """Seconds per sample of one pass over locations 0..n-1."""
    start = time.perf_counter()
    for i in range(n):
        fn(i)
    return (time.perf_counter() - start) / n


def per_sample(root: Path, n: int, repeats: int) -> dict[str, float]:
    """Share of the time of passes over *n* samples spent inside the checks.

    Returns:
        ``{'first': %, 'later': %, 'ratio': checked / plain}``: passes of a
        new dataset (every season read for the first time, as in a worker's
        first epoch), later passes of one dataset (seasons checked for fit
        already are not checked again), and the ratio of the median pass times
        of that dataset and of one without checks.
    """
    plain = SSL4EOS12Pair(root, resample='batch')
    for name in CHECKS:
        setattr(plain, name, lambda *args: None)
    spent = {'first': [0.0], 'later': [0.0]}
    later = instrumented(SSL4EOS12Pair(root, resample='batch'), spent['later'])
    for _ in range(3):  # warm the page cache; most seasons get checked
        time_pass(later.__getitem__, n)
        time_pass(plain.__getitem__, n)
    spent['later'][0] = 0.0
    times: dict[str, list[float]] = {'first': [], 'later': [], 'plain': []}
    for _ in range(repeats):
        first = instrumented(SSL4EOS12Pair(root, resample='batch'), spent['first'])
        times['first'].append(time_pass(first.__getitem__, n))
        times['later'].append(time_pass(later.__getitem__, n))
        times['plain'].append(time_pass(plain.__getitem__, n))
    print(f'\n{n} locations, 30 band files per sample, {repeats} passes each')
    for name, t in times.items():
        print(f'{name:6s} {1e3 * statistics.median(t):7.2f} ms/sample (median pass)')
    out = {k: 100 * spent[k][0] / (sum(times[k]) * n) for k in spent}
    for k in spent:
        us = 1e6 * spent[k][0] / (repeats * n)
        print(f'time inside the checks, {k} passes: {us:.0f} us/sample, {out[k]:.2f} %')
    out['ratio'] = statistics.median(times['later']) / statistics.median(times['plain'])
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--locations', type=int, default=32)
    parser.add_argument('--repeats', type=int, default=7)
    parser.add_argument('--root', type=Path, default=None, help='data folder')
    parser.add_argument('--max-share', type=float, default=3.0, help='percent')
    args = parser.parse_args(argv)

    torch.set_num_threads(1)  # one DataLoader worker's share
    tmp = tempfile.TemporaryDirectory(prefix='checks-bench-')
    root = args.root or Path(tmp.name) / 'ssl4eo-s12'
    print(f'generating {args.locations} locations at 264 px in {root} ...')
    make_ssl4eo_s12_demo(root, num_locations=args.locations, size=264)
    pair_module.random = _DistinctSeasons()  # type: ignore[assignment]

    start = time.perf_counter()
    ds = SSL4EOS12Pair(root, resample='batch')
    opened = time.perf_counter() - start
    layout = median_us(ds._majority_shapes, n=3) / 1e3
    print(
        f'opening the dataset: {1e3 * opened:.0f} ms (layout vote: {layout:.1f} ms)\n'
    )
    per_band(ds, root)
    share = per_sample(root, args.locations, args.repeats)
    print(f'checked / plain (median passes): {share["ratio"]:.3f} (for information)')
    # the fit check runs on a file's first read in a process only: its cost
    # over a run is that of the later passes
    ok = share['later'] < args.max_share
    print(
        f'checks: {share["first"]:.2f} % (first passes), {share["later"]:.2f} % '
        f'(later passes) of reading a sample  '
        f'[{"PASS" if ok else "FAIL"}: later < {args.max_share:g} %]'
    )
    tmp.cleanup()
    return 0 if ok else 1


if __name__ == '__main__':
    sys.exit(main())
