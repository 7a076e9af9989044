#!/usr/bin/env python3
"""Write a tiny GeoNRW copy in the real layout.

Three training cities (aachen, bergisch, bielefeld) and one test city
(duesseldorf), two tiles each, named ``<utm x>_<utm y>_{rgb.jp2,dem.tif,seg.tif}``
as in GeoNRW: the orthophoto as 3-band uint8 JPEG 2000, the elevation as
float32 GeoTIFF (metres), the land cover as uint8 GeoTIFF (classes 0-10). The
tiles are 100 x 100 px (1000 x 1000 in GeoNRW). TorchGeo reads them with
Pillow, so the JPEG 2000 files are written with Pillow too. Run from
anywhere; it rewrites the city folders next to this script.
"""

import shutil
from pathlib import Path

import numpy as np
import rasterio
from PIL import Image

SEED = 0
SIZE = 100
CITIES = ('aachen', 'bergisch', 'bielefeld', 'duesseldorf')
TILES = ('294_5628', '295_5629')


def write(path: Path, array: np.ndarray, driver: str) -> None:
    """Write a tile (bands first) with GDAL."""
    array = array if array.ndim == 3 else array[None]
    profile = {
        'driver': driver,
        'dtype': array.dtype.name,
        'width': array.shape[2],
        'height': array.shape[1],
        'count': array.shape[0],
    }
    with rasterio.open(path, 'w', **profile) as f:
        f.write(array)


def main() -> None:
    root = Path(__file__).resolve().parent
    rng = np.random.default_rng(SEED)
    for city in CITIES:
        shutil.rmtree(root / city, ignore_errors=True)
        (root / city).mkdir()
        for tile in TILES:
            # land cover drives colour and height, so the three files agree
            classes = rng.integers(0, 11, (4, 4)).repeat(25, 0).repeat(25, 1)
            colour = rng.integers(30, 220, (11, 3))
            rgb = colour[classes].transpose(2, 0, 1) + rng.integers(
                -20, 20, (3, SIZE, SIZE)
            )
            image = np.clip(rgb, 0, 255).astype(np.uint8).transpose(1, 2, 0)
            Image.fromarray(image).save(root / city / f'{tile}_rgb.jp2', 'JPEG2000')
            ground = np.linspace(60, 140, SIZE)[None] + rng.uniform(0, 300)
            height = ground + 8.0 * (classes >= 4) + rng.normal(0, 0.5, (SIZE, SIZE))
            write(root / city / f'{tile}_dem.tif', height.astype(np.float32), 'GTiff')
            write(root / city / f'{tile}_seg.tif', classes.astype(np.uint8), 'GTiff')
        for aux in root.glob(f'{city}/*.aux.xml'):
            aux.unlink()


if __name__ == '__main__':
    main()
