#!/usr/bin/env python3
"""Write a tiny BigEarthNet v1.0 (Sentinel-1 + Sentinel-2) copy in the real layout.

Four patch pairs, one folder per patch in ``BigEarthNet-v1.0`` (Sentinel-2
L2A: 12 bands, 10 m bands at 120 x 120, 20 m at 60 x 60, 60 m at 20 x 20,
uint16) and ``BigEarthNet-S1-v1.0`` (VV and VH at 120 x 120, float32 dB),
each with its ``<patch>_labels_metadata.json`` (43-class names), and the
split files of the BigEarthNet-MM 19-class models, ``bigearthnet-train.csv``
(2 pairs), ``bigearthnet-val.csv`` and ``bigearthnet-test.csv`` (1 each),
as TorchGeo's ``BigEarthNet(bands='all')`` reads them. Uncompressed GeoTIFFs
in EPSG:4326. Run from anywhere; it rewrites the files next to this script.
"""

import json
import shutil
from pathlib import Path

import numpy as np
import rasterio
from rasterio.crs import CRS
from rasterio.transform import from_origin

SEED = 0
S2_BANDS = {
    'B01': 20, 'B02': 120, 'B03': 120, 'B04': 120, 'B05': 60, 'B06': 60,
    'B07': 60, 'B08': 120, 'B8A': 60, 'B09': 20, 'B11': 60, 'B12': 60,
}  # fmt: skip
LABELS = [
    ['Non-irrigated arable land', 'Broad-leaved forest', 'Water courses'],
    ['Coniferous forest', 'Mixed forest'],
    ['Continuous urban fabric', 'Sea and ocean'],
    ['Pastures', 'Transitional woodland/shrub', 'Inland marshes'],
]
SPLITS = ('train', 'train', 'val', 'test')


def write(path: Path, array: np.ndarray) -> None:
    """Write one band as BigEarthNet stores it."""
    height, width = array.shape
    profile = {
        'driver': 'GTiff',
        'dtype': array.dtype.name,
        'width': width,
        'height': height,
        'count': 1,
        'crs': CRS.from_epsg(4326),
        'transform': from_origin(11.0, 48.0, 1.1e-2 / width, 1.1e-2 / height),
    }
    with rasterio.open(path, 'w', **profile) as f:
        f.write(array, 1)


def metadata(labels: list[str]) -> str:
    """The labels file of one patch."""
    return json.dumps(
        {
            'labels': labels,
            'coordinates': {'ulx': 0, 'uly': 0, 'lrx': 0, 'lry': 0},
            'projection': '',
            'tile_source': '',
            'acquisition_date': '2017-06-13 10:10:31',
        },
        indent=4,
    )


def main() -> None:
    root = Path(__file__).resolve().parent
    rng = np.random.default_rng(SEED)
    s2_root, s1_root = root / 'BigEarthNet-v1.0', root / 'BigEarthNet-S1-v1.0'
    for folder in (s2_root, s1_root):
        shutil.rmtree(folder, ignore_errors=True)
    rows: dict[str, list[str]] = {'train': [], 'val': [], 'test': []}
    for i, (labels, split) in enumerate(zip(LABELS, SPLITS, strict=True)):
        s2 = f'S2A_MSIL2A_20170613T101031_{61 + i}_39'
        s1 = f'S1A_IW_GRDH_1SDV_20170613T165043_33UUP_{61 + i}_39'
        for folder in (s2_root / s2, s1_root / s1):
            folder.mkdir(parents=True)
        level = rng.uniform(200, 3000, len(S2_BANDS))
        for (band, n), mean in zip(S2_BANDS.items(), level, strict=True):
            dn = mean * (1 + 0.15 * rng.standard_normal((n, n)))
            write(
                s2_root / s2 / f'{s2}_{band}.tif',
                np.clip(dn, 0, 20000).astype(np.uint16),
            )
        base = rng.uniform(-16, -9)
        for band, offset in (('VV', 0.0), ('VH', -7.0)):
            db = base + offset + rng.normal(0, 3, (120, 120))
            write(s1_root / s1 / f'{s1}_{band}.tif', db.astype(np.float32))
        (s2_root / s2 / f'{s2}_labels_metadata.json').write_text(metadata(labels))
        (s1_root / s1 / f'{s1}_labels_metadata.json').write_text(metadata(labels))
        rows[split].append(f'{s2},{s1}')
    for split, lines in rows.items():
        (root / f'bigearthnet-{split}.csv').write_text('\n'.join(lines) + '\n')


if __name__ == '__main__':
    main()
