#!/usr/bin/env python3
"""Write a tiny SSL4EO-S12 copy in the real layout (s1, s2c, s2a).

Two locations, four seasons each, tiles of 36 px: the 10 m bands and both
Sentinel-1 polarisations at 36 x 36, the 20 m bands at 18 x 18 and the 60 m
bands at 6 x 6, as uncompressed single-band GeoTIFFs in EPSG:4326, with the
folder and file names of SSL4EO-S12::

    s1/0000000/S1A_IW_GRDH_1SDV_<start>_<stop>_<orbit>_<take>_<id>/{VV,VH}.tif
    s2c/0000000/<sensing>_<granule>_<tile>/B1.tif ... B12.tif   (13 bands)
    s2a/0000000/<sensing>_<granule>_<tile>/B1.tif ... B12.tif   (12 bands)

Values are plausible: Sentinel-1 in dB (float32, mostly -25 to -5), Sentinel-2
digital numbers (uint16, mostly 200 to 3500). Run from anywhere; it rewrites
the folders next to this script.
"""

import shutil
from pathlib import Path

import numpy as np
import rasterio
from rasterio.crs import CRS
from rasterio.transform import from_origin

SIZE = 36
SEED = 0
S2C = ('B1', 'B2', 'B3', 'B4', 'B5', 'B6', 'B7', 'B8', 'B8A', 'B9', 'B10', 'B11', 'B12')
S2A = tuple(b for b in S2C if b != 'B10')
RESOLUTION = {b: 10 for b in ('B2', 'B3', 'B4', 'B8')}
RESOLUTION |= {b: 20 for b in ('B5', 'B6', 'B7', 'B8A', 'B11', 'B12')}
RESOLUTION |= {b: 60 for b in ('B1', 'B9', 'B10')}

S1_SEASONS = [
    [
        'S1A_IW_GRDH_1SDV_20200329T001515_20200329T001540_031883_03AE27_9BAF',
        'S1B_IW_GRDH_1SDV_20200627T001449_20200627T001514_022212_02A27E_2A09',
        'S1B_IW_GRDH_1SDV_20200928T120105_20200928T120130_023575_02CCB0_F035',
        'S1A_IW_GRDH_1SDV_20201230T001523_20201230T001548_035908_04349D_C91E',
    ],
    [
        'S1B_IW_GRDH_1SDV_20201101T091054_20201101T091119_024069_02DC0F_F189',
        'S1B_IW_GRDH_1SDV_20210205T091050_20210205T091115_025469_0308CB_AA25',
        'S1B_IW_GRDH_1SDV_20210430T091051_20210430T091116_026694_03303D_69B6',
        'S1B_IW_GRDH_1SDV_20210804T091057_20210804T091122_028094_0359FE_6D9D',
    ],
]
S2_SEASONS = [
    [
        '20200323T162931_20200323T163750_T15QXA',
        '20200621T162901_20200621T163546_T15QXA',
        '20200924T162929_20200924T163423_T15QXA',
        '20201228T163711_20201228T164124_T15QXA',
    ],
    [
        '20201029T091049_20201029T091345_T34SGH',
        '20210202T091049_20210202T091500_T34SGH',
        '20210428T090601_20210428T091151_T34SGH',
        '20210801T090559_20210801T091114_T34SGH',
    ],
]


def write(path: Path, array: np.ndarray, lon: float, lat: float) -> None:
    """Write one band as SSL4EO-S12 stores it."""
    height, width = array.shape
    deg = SIZE * 9e-5  # about 10 m pixels
    profile = {
        'driver': 'GTiff',
        'dtype': array.dtype.name,
        'width': width,
        'height': height,
        'count': 1,
        'crs': CRS.from_epsg(4326),
        'transform': from_origin(lon, lat, deg / width, deg / height),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    with rasterio.open(path, 'w', **profile) as f:
        f.write(array, 1)


def main() -> None:
    root = Path(__file__).resolve().parent
    rng = np.random.default_rng(SEED)
    for folder in ('s1', 's2c', 's2a'):
        shutil.rmtree(root / folder, ignore_errors=True)
    for loc in range(2):
        location = f'{loc:07d}'
        lon, lat = rng.uniform(-100, 30), rng.uniform(-30, 60)
        for season in range(4):
            base_db = rng.uniform(-18, -10)
            for band, offset in (('VV', 0.0), ('VH', -7.0)):
                db = base_db + offset + rng.normal(0, 3, (SIZE, SIZE))
                write(
                    root / 's1' / location / S1_SEASONS[loc][season] / f'{band}.tif',
                    db.astype(np.float32),
                    lon,
                    lat,
                )
            level = rng.uniform(300, 2500, len(S2C))
            for product, bands in (('s2c', S2C), ('s2a', S2A)):
                for b, band in enumerate(S2C):
                    if band not in bands:
                        continue
                    n = SIZE * 10 // RESOLUTION[band]
                    dn = level[b] * (1 + 0.1 * rng.standard_normal((n, n)))
                    if band == 'B10':
                        dn = dn / 50  # cirrus: near zero
                    write(
                        root
                        / product
                        / location
                        / S2_SEASONS[loc][season]
                        / f'{band}.tif',
                        np.clip(dn, 0, 10000).astype(np.uint16),
                        lon,
                        lat,
                    )


if __name__ == '__main__':
    main()
