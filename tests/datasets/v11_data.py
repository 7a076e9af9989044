"""Tiny SSL4EO-S12 v1.1 Zarr chunk files, written as the maintainers' are.

Names, dimensions, dtypes, the Sentinel-2 offset and the coordinates follow
https://github.com/DLR-MF-DAS/SSL4EO-S12-v1.1 (README, the xarray listing of
an S2L2A and an S1GRD file): zip files of Zarr format 2 stores with
``bands`` (sample, time, band, y, x), ``cloud_mask`` (Sentinel-2 only),
``sample``, ``center_lat/lon``, ``crs``, ``file_id``, ``sample_id``,
``time_``, ``x_``, ``y_`` and xarray's ``_ARRAY_DIMENSIONS`` attributes;
timestamps chunked separately.
"""

import shutil
import tarfile
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import zarr
from zarr.storage import LocalStore, ZipStore

from torchgeo_decur.datasets.ssl4eo_s12_v11 import S2_OFFSET

BANDS = {
    'S1GRD': ['vv', 'vh'],
    'S2L1C': [
        'B01',
        'B02',
        'B03',
        'B04',
        'B05',
        'B06',
        'B07',
        'B08',
        'B8A',
        'B09',
        'B10',
        'B11',
        'B12',
    ],
    'S2RGB': ['R', 'G', 'B'],
    'DEM': ['DEM'],
}
BANDS['S2L2A'] = [b for b in BANDS['S2L1C'] if b != 'B10']  # L2A has no cirrus
TIMES = 4


def _array(
    group: Any, name: str, values: np.ndarray, dims: list[str], **kw: Any
) -> None:
    array = group.create_array(
        name,
        shape=values.shape,
        dtype=values.dtype,
        chunks=kw.pop('chunks', values.shape),
        attributes={'_ARRAY_DIMENSIONS': dims, **kw},
        fill_value=kw.pop('fill_value', None),
    )
    array[...] = values


def raw_values(
    modality: str, file: int, sample: int, time: int, size: int
) -> np.ndarray:
    """The values a fixture stores for one timestamp, before any offset.

    Sentinel-2 digital numbers of 0-0.3 reflectance (0-3000), Sentinel-1 dB
    around -12 / -20, RGB bytes; a different image for every location and
    timestamp.
    """
    g = np.random.default_rng([file, sample, time, len(modality)])
    bands = len(BANDS[modality])
    if modality == 'S1GRD':
        base = np.array([-12.0, -20.0])[:, None, None]
        return (base + g.normal(0, 3, (bands, size, size))).astype(np.float16)
    if modality == 'S2RGB':
        return g.integers(0, 255, (bands, size, size), dtype=np.uint8)
    if modality == 'DEM':
        return g.normal(400, 50, (bands, size, size)).astype(np.float32)
    return g.integers(0, 3000, (bands, size, size)).astype(np.int16)


def write_file(
    path: Path,
    modality: str,
    file: int,
    sample_ids: list[str],
    size: int,
    cloud: np.ndarray | None = None,
    no_data: tuple[int, ...] = (),
) -> None:
    """One modality's ``*.zarr.zip`` of *sample_ids*.

    Args:
        path: The file.
        modality: ``S1GRD``, ``S2L1C``, ``S2L2A`` or ``S2RGB``.
        file: The file's number (seeds its values).
        sample_ids: Location ids, 7 digits.
        size: Tile size.
        cloud: ``cloud_mask`` (sample, time, y, x) for Sentinel-2; zeros if None.
        no_data: Locations stored as no data in every timestamp (Sentinel-2:
            0 before the offset, Sentinel-1: NaN).
    """
    n, bands = len(sample_ids), BANDS[modality]
    values = np.stack(
        [
            np.stack([raw_values(modality, file, s, t, size) for t in range(TIMES)])
            for s in range(n)
        ]
    )
    for k in no_data:
        values[k] = np.nan if modality == 'S1GRD' else 0
    if modality in ('S2L1C', 'S2L2A'):
        values = values + np.int16(S2_OFFSET)
    path.parent.mkdir(parents=True, exist_ok=True)
    store = ZipStore(path, mode='w')
    group = zarr.open_group(store=store, mode='w', zarr_format=2)
    dims = ['sample', 'time', 'band', 'y', 'x']
    _array(group, 'bands', values, dims, chunks=(1, 1, len(bands), size, size))
    _array(group, 'band', np.array(bands), ['band'])
    _array(group, 'sample', np.array(sample_ids), ['sample'])
    _array(group, 'time', np.arange(TIMES), ['time'])
    _array(group, 'x', np.arange(size), ['x'])
    _array(group, 'y', np.arange(size), ['y'])
    lat = np.linspace(-40, 50, n)
    _array(group, 'center_lat', lat, ['sample'])
    _array(group, 'center_lon', np.linspace(-100, 120, n), ['sample'])
    _array(group, 'crs', np.full(n, 32633, dtype=np.int64), ['sample'])
    ids = np.array([[f'{s}_{t}' for t in range(TIMES)] for s in sample_ids])
    _array(group, 'sample_id', ids, ['sample', 'time'])
    files = np.array(
        [[f'2020{t + 1:02d}01T000000_T33SWC' for t in range(TIMES)] for _ in sample_ids]
    )
    _array(group, 'file_id', files, ['sample', 'time'])
    times = np.array(
        [
            [
                np.datetime64(f'2020-{3 * t + 1:02d}-15', 'ns').astype(np.int64)
                for t in range(TIMES)
            ]
        ]
        * n
    )
    _array(
        group, 'time_', times, ['sample', 'time'],
        units='nanoseconds since 1970-01-01', calendar='proleptic_gregorian',
    )  # fmt: skip
    _array(group, 'x_', np.tile(np.arange(size) * 10.0, (n, 1)), ['sample', 'x'])
    _array(group, 'y_', np.tile(np.arange(size) * -10.0, (n, 1)), ['sample', 'y'])
    if modality in ('S2L1C', 'S2L2A', 'S2RGB'):
        mask = (
            cloud if cloud is not None else np.zeros((n, TIMES, size, size), np.uint8)
        )
        _array(group, 'cloud_mask', mask.astype(np.uint8), ['sample', 'time', 'y', 'x'],
               chunks=(1, 1, size, size))  # fmt: skip
    store.close()


def make_v11(
    root: Path,
    split: str = 'train',
    files: int = 2,
    locations: int = 3,
    size: int = 16,
    modalities: tuple[str, ...] = ('S1GRD', 'S2L1C', 'S2L2A', 'S2RGB'),
) -> Path:
    """A v1.1 tree of *files* chunk files of *locations* each per modality.

    Returns:
        *root*.
    """
    for f in range(1, files + 1):
        ids = [f'{f * 1000 + s:07d}' for s in range(locations)]
        name = f'ssl4eos12_{split}_seasonal_data_{f:06d}.zarr.zip'
        for modality in modalities:
            write_file(root / split / modality / name, modality, f, ids, size)
    return root


def _location_store(
    path: Path, modality: str, file: int, sample: int, size: int, cloud: np.ndarray
) -> None:
    """One location's consolidated store, as a WebDataset shard member holds it."""
    times = 1 if modality == 'DEM' else TIMES
    values = np.stack(
        [raw_values(modality, file, sample, t, size) for t in range(times)]
    )
    folder = path.with_suffix('.dir')
    store = LocalStore(folder)
    group = zarr.open_group(store=store, mode='w', zarr_format=2)
    _array(group, 'bands', values, ['time', 'band', 'y', 'x'],
           chunks=(1, *values.shape[1:]))  # fmt: skip
    _array(group, 'band', np.array(BANDS[modality]), ['band'])
    _array(group, 'center_lat', np.array(10.0 * file + sample), [])
    _array(group, 'center_lon', np.array(-5.0 * sample), [])
    _array(group, 'time', np.arange(times, dtype=np.int64) * 10**15, ['time'])
    if modality in ('S2L1C', 'S2L2A', 'S2RGB'):
        _array(group, 'cloud_mask', cloud.astype(np.uint8), ['time', 'y', 'x'],
               chunks=(1, size, size))  # fmt: skip
    zarr.consolidate_metadata(store, zarr_format=2)
    with zipfile.ZipFile(path, 'w') as archive:  # as the maintainers' zips
        for file in sorted(folder.rglob('*')):
            if file.is_file():
                archive.write(file, file.relative_to(folder).as_posix())
    shutil.rmtree(folder)


def make_v11_shards(
    root: Path,
    split: str = 'train',
    shards: int = 2,
    locations: int = 3,
    size: int = 16,
    modalities: tuple[str, ...] = ('S1GRD', 'S2L1C', 'S2L2A', 'DEM'),
    clouds: dict[tuple[int, int], np.ndarray] | None = None,
) -> Path:
    """WebDataset shards of the locations :func:`make_v11` writes.

    Shard *f*, member *s* holds the location of chunk file *f*, sample *s*
    (the same values; Sentinel-2 without the offset), named
    ``<sample id>.zarr.zip``.

    Returns:
        *root*.
    """
    tmp = root / '.members'
    tmp.mkdir(parents=True, exist_ok=True)
    for f in range(1, shards + 1):
        name = f'ssl4eos12_shard_{f:06d}.tar'
        for modality in modalities:
            folder = root / split / modality
            folder.mkdir(parents=True, exist_ok=True)
            with tarfile.open(folder / name, 'w') as tar:
                for s in range(locations):
                    key = f'{f * 1000 + s:07d}'
                    cloud = (clouds or {}).get((f, s), np.zeros((TIMES, size, size)))
                    member = tmp / f'{key}.zarr.zip'
                    _location_store(member, modality, f, s, size, cloud)
                    tar.add(member, arcname=member.name)
                    member.unlink()
    tmp.rmdir()
    return root
