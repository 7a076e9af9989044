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
  resumable runs);
* ``v11-zarr``: ``SSL4EOS12V11(root, modalities=('S1GRD', 'S2L1C'),
  finish='batch')[i]``, what the datamodule's workers do, on the same
  locations written as SSL4EO-S12 v1.1 Zarr chunk files (every band at
  264 px, Sentinel-2 int16 with the +1000 offset, Sentinel-1 float16, 64
  locations x 4 timestamps per file, Blosc-LZ4 as xarray's zarr writer
  compresses, one chunk per location and timestamp): two timestamps per
  modality, all 13 bands at 264 px, as stored (the offset is removed on the
  batch, on the device). Goal: at least 10x ``torchgeo`` and 60 pairs/s per
  worker (issue 21);
* ``v11-full``: the same in v1's units (float32, offset removed) in the
  worker, as a standalone user of the dataset gets it (``pair-full``'s
  counterpart).

Both draw two distinct seasons per modality, so they read the same number of
files, and both run from the page cache (one untimed warm-up pass each). The
ratio of the medians is the speed-up; the goal is at least 2x.

    .venv/bin/python benchmarks/loader.py                  # 64 locations, 5 passes
    .venv/bin/python benchmarks/loader.py --locations 128 --repeats 7
    .venv/bin/python benchmarks/loader.py --no-v11       # the v1 readers only
"""

import argparse
import io
import itertools
import statistics
import sys
import tarfile
import tempfile
import time
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import torch
import zarr
from numcodecs import Blosc
from torchgeo.datasets import SSL4EOS12
from zarr.storage import ZipStore

from torchgeo_decur.datamodules.sampling import SeededDataset
from torchgeo_decur.datasets import SSL4EOS12V11, SSL4EOS12Pair, SSL4EOS12V11Shards
from torchgeo_decur.datasets import ssl4eo_s12 as pair_module
from torchgeo_decur.datasets import ssl4eo_s12_v11 as v11_module
from torchgeo_decur.datasets.ssl4eo_s12_v11 import S2_OFFSET
from torchgeo_decur.datasets.zarr_zip import ZarrZipFile
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


def _all_seasons(pair: SSL4EOS12Pair, key: str, index: int) -> np.ndarray:
    """The four seasons of one modality of a v1 location, every band at 264 px."""
    folder = Path(pair.root, pair.modalities[int(key[-1]) - 1], pair.ids[index])
    views = []
    for season in sorted(p for p in folder.iterdir() if p.is_dir())[:4]:
        view = pair.read_season(key, season)
        batch = pair.on_device({k: v[None] for k, v in view.items()})
        views.append(batch[key][0].numpy())
    return np.stack(views)


def _write_v11_file(
    path: Path, values: np.ndarray, bands: list[str], ids: list[str]
) -> None:
    """One v1.1 chunk file: ``bands``, ``band``, ``sample`` (and a cloud mask)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    store = ZipStore(path, mode='w')
    group = zarr.open_group(store=store, mode='w', zarr_format=2)
    n, t, c, h, w = values.shape
    compressor = Blosc(cname='lz4', clevel=5, shuffle=Blosc.SHUFFLE)
    array = group.create_array(
        'bands',
        shape=values.shape,
        dtype=values.dtype,
        chunks=(1, 1, c, h, w),
        compressors=compressor,
        attributes={'_ARRAY_DIMENSIONS': ['sample', 'time', 'band', 'y', 'x']},
    )
    array[...] = values
    for name, value in (('band', np.array(bands)), ('sample', np.array(ids))):
        coord = group.create_array(name, shape=value.shape, dtype=value.dtype)
        coord[...] = value
    if values.dtype == np.int16:  # Sentinel-2: all clear
        mask = group.create_array(
            'cloud_mask',
            shape=(n, t, h, w),
            dtype=np.uint8,
            chunks=(1, 1, h, w),
            compressors=compressor,
        )
        mask[...] = 0
    store.close()


def write_v11(v1_root: Path, out: Path, per_file: int = 64) -> Path:
    """The locations of a v1 tree as v1.1 Zarr chunk files (train split)."""
    pair = SSL4EOS12Pair(v1_root, resample='batch')
    s1_bands = ['vv', 'vh']
    s2_bands = [f'B{b[1:].zfill(2)}' if b != 'B8A' else b for b in pair.bands2]
    for f, start in enumerate(range(0, len(pair), per_file), 1):
        indices = range(start, min(start + per_file, len(pair)))
        ids = [f'{i:07d}' for i in indices]
        name = f'ssl4eos12_train_seasonal_data_{f:06d}.zarr.zip'
        s1 = np.stack([_all_seasons(pair, 'image1', i) for i in indices])
        s2 = np.stack([_all_seasons(pair, 'image2', i) for i in indices])
        s2 = (np.clip(s2, 0, 32767 - S2_OFFSET) + S2_OFFSET).astype(np.int16)
        _write_v11_file(
            out / 'train' / 'S1GRD' / name, s1.astype(np.float16), s1_bands, ids
        )
        _write_v11_file(out / 'train' / 'S2L1C' / name, s2, s2_bands, ids)
    return out


def _member(values: np.ndarray, bands: list[str], mask: np.ndarray | None) -> bytes:
    """One location's zip store as a shard member: ``bands`` (time, band, y, x)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, 'w') as archive:
        store = zarr.storage.MemoryStore()
        group = zarr.open_group(store=store, mode='w', zarr_format=2)
        compressor = Blosc(cname='lz4', clevel=5, shuffle=Blosc.SHUFFLE)
        array = group.create_array(
            'bands', shape=values.shape, dtype=values.dtype,
            chunks=(1, *values.shape[1:]), compressors=compressor,
        )  # fmt: skip
        array[...] = values
        band = group.create_array('band', shape=(len(bands),), dtype='<U3')
        band[...] = np.array(bands)
        if mask is not None:
            cloud = group.create_array(
                'cloud_mask', shape=mask.shape, dtype=np.uint8,
                chunks=(1, *mask.shape[1:]), compressors=compressor,
            )  # fmt: skip
            cloud[...] = mask
        for key, value in store._store_dict.items():
            archive.writestr(key, value.to_bytes())
    return buffer.getvalue()


def write_v11_shards(v11_root: Path, out: Path) -> Path:
    """The v1.1 chunk files as WebDataset shards (one per file, no offset)."""
    for modality in ('S1GRD', 'S2L1C'):
        folder = v11_root / 'train' / modality
        for f, path in enumerate(sorted(folder.glob('*.zarr.zip')), 1):
            file = ZarrZipFile(path)
            ids = file.column('sample').astype(str)
            bands = [str(b) for b in file.column('band')]
            shard = out / 'train' / modality / f'ssl4eos12_shard_{f:06d}.tar'
            shard.parent.mkdir(parents=True, exist_ok=True)
            with tarfile.open(shard, 'w') as tar:
                for i, key in enumerate(ids):
                    values = file.location('bands', i, [0, 1, 2, 3])
                    mask = None
                    if modality == 'S2L1C':
                        values = (values - S2_OFFSET).astype(np.int16)
                        mask = file.location('cloud_mask', i, [0, 1, 2, 3])
                    content = _member(values, bands, mask)
                    info = tarfile.TarInfo(f'{key}.zarr.zip')
                    info.size = len(content)
                    tar.addfile(info, io.BytesIO(content))
    return out


def _bytes_per_location(root: Path, pattern: str, locations: int) -> float:
    """Bytes on disk per location of the files under *root* matching *pattern*."""
    return sum(p.stat().st_size for p in root.rglob(pattern)) / locations


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
    parser.add_argument('--min-v11-speedup', type=float, default=10.0)
    parser.add_argument('--min-v11-rate', type=float, default=60.0, help='pairs/s')
    parser.add_argument('--no-v11', dest='v11', action='store_false')
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
    v11_module.random = distinct  # type: ignore[assignment]

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
    if args.v11:
        root11 = root.parent / 'ssl4eo-s12-v1.1'
        print(f'writing them as v1.1 Zarr chunk files in {root11} ...')
        write_v11(root, root11)
        v11 = SSL4EOS12V11(root11, modalities=('S1GRD', 'S2L1C'), finish='batch')
        v11_full = SSL4EOS12V11(root11, modalities=('S1GRD', 'S2L1C'))
        for name, ds in (('v11-zarr', v11), ('v11-full', v11_full)):
            sample = ds[0]
            print(
                f'{name} sample: image1 {tuple(sample["image1"].shape)} '
                f'{sample["image1"].dtype}, image2 {tuple(sample["image2"].shape)} '
                f'{sample["image2"].dtype}'
            )
        readers['v11-zarr'] = v11.__getitem__
        readers['v11-full'] = v11_full.__getitem__
        shards_root = write_v11_shards(root11, root.parent / 'ssl4eo-s12-v1.1-shards')
        shards = SSL4EOS12V11Shards(str(shards_root), finish='batch')
        stream: dict[str, Iterator[object]] = {}

        def shard_sample(i: int) -> object:  # one pass over the stream = n calls
            if i == 0 or 'it' not in stream:
                stream['it'] = iter(shards)
            return next(stream['it'])

        readers['v11-shards'] = shard_sample
        n_loc = args.locations
        print(
            f'bytes per location: v1 GeoTIFF s1+s2c '
            f'{_bytes_per_location(root, "*.tif", n_loc) / 2**20:.2f} MiB (4 seasons), '
            f'v1.1 Zarr S1GRD+S2L1C '
            f'{_bytes_per_location(root11, "*.zarr.zip", n_loc) / 2**20:.2f} MiB, '
            'shards '
            f'{_bytes_per_location(shards_root, "*.tar", n_loc) / 2**20:.2f} MiB '
            '(4 timestamps)'
        )
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
    if args.v11:
        ratio = medians['torchgeo'] / medians['v11-zarr']
        rate = 1 / medians['v11-zarr']
        fast = ratio >= args.min_v11_speedup
        quick = rate >= args.min_v11_rate
        print(
            f'speed-up v11-zarr vs torchgeo (v1 GeoTIFF): {ratio:.2f}x  '
            f'[{"PASS" if fast else "FAIL"}: >= {args.min_v11_speedup}x]'
        )
        print(
            f'v11-zarr per worker: {rate:.1f} pairs/s  '
            f'[{"PASS" if quick else "FAIL"}: >= {args.min_v11_rate}]'
        )
        streamed = medians['torchgeo'] / medians['v11-shards']
        print(
            f'v11-shards: {streamed:.2f}x torchgeo, {1 / medians["v11-shards"]:.1f} '
            'pairs/s per worker (for information)'
        )
        ok = ok and fast and quick
    tmp.cleanup()
    return 0 if ok else 1


if __name__ == '__main__':
    sys.exit(main())
