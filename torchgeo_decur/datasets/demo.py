"""Synthetic demo data in the SSL4EO-S12 format.

The demo data set lets users run DeCUR end to end without the 1.5 TB download,
and lets tests show that pretraining learns. Each location has a smooth
random land-cover map (water, urban, forest, cropland, bare soil) and a smooth
soil-moisture field that drive both modalities (the *common* factors), plus
factors seen by one modality only (the *unique* factors): speckle, an
incidence-angle gradient and bright point scatterers in Sentinel-1; haze or
clouds, cirrus and band-specific texture in Sentinel-2.
"""

import functools
import json
import os
import shutil
import tempfile
import warnings
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import rasterio
import torch
import torch.nn.functional as F
from numpy.typing import NDArray
from rasterio.crs import CRS
from rasterio.io import MemoryFile
from rasterio.transform import from_origin

from ..modalities import S2_L1C_BANDS
from .ssl4eo_s12 import band_resolution

__all__ = ('CLASSES', 'DEMO_MARKER', 'LAND_COVER_FILE', 'make_ssl4eo_s12_demo')

#: File written last into a complete demo data set.
DEMO_MARKER = '.torchgeo_decur_demo.json'

#: Land-cover classes of the demo data.
CLASSES = ('water', 'urban', 'forest', 'cropland', 'bare')

#: CSV file with the fraction of each land-cover class of each location: the
#: known common factor, a target for linear probes of pretrained encoders.
LAND_COVER_FILE = 'land_cover.csv'

#: Top-of-atmosphere reflectance x 10000 of each class, bands in
#: :data:`~torchgeo_decur.modalities.S2_L1C_BANDS` order. Cropland
#: is interpolated between bare soil and these values by crop greenness.
_S2_SIGNATURES = np.array(
    [
        [1200, 1000, 800, 600, 500, 400, 350, 300, 250, 100, 10, 100, 50],
        [1500, 1500, 1600, 1700, 1800, 1900, 2000, 2100, 2100, 800, 30, 2300, 2000],
        [1200, 900, 800, 500, 1000, 2500, 3000, 3200, 3300, 1000, 15, 1500, 700],
        [1300, 1000, 1100, 800, 1300, 2800, 3300, 3500, 3600, 1100, 20, 2000, 1100],
        [1500, 1400, 1700, 2000, 2300, 2500, 2600, 2700, 2800, 900, 30, 3200, 2700],
    ],
    dtype=np.float32,
)

#: Backscatter (VV, VH) in dB of each class; cropland as bare soil when bare.
_S1_SIGNATURES = np.array(
    [[-21, -28], [-4, -11], [-7.5, -13.5], [-9, -15], [-13, -21]], dtype=np.float32
)

#: Crop greenness in spring, summer, autumn and winter.
_GREENNESS = (0.4, 1.0, 0.5, 0.1)

#: Acquisition months of the four seasons.
_MONTHS = (3, 6, 9, 12)

#: Geographic coordinates (WGS 84), as the SSL4EO-S12 files.
_CRS = CRS.from_epsg(4326)

#: Degrees per 10 m pixel (about 10 m of latitude).
_DEG_PER_PIXEL = 9e-5


def _smooth_field(
    rng: np.random.Generator, channels: int, grid: int, size: int
) -> NDArray[np.float32]:
    """Smooth random field: coarse Gaussian noise interpolated with Gaussian kernels.

    Args:
        rng: Random number generator.
        channels: Number of independent fields.
        grid: Size of the coarse grid (larger = finer structure).
        size: Output size in pixels.

    Returns:
        Array of shape ``[channels, size, size]``, roughly unit variance.
    """
    coarse = rng.standard_normal((channels, grid, grid)).astype(np.float32)
    interp = _interpolation_matrix(grid, size)
    # plain einsum, not BLAS: multithreaded BLAS on these small matrices
    # oversubscribes the CPU when several processes generate data
    rows = np.einsum('ij,cjk->cik', interp, coarse)
    return np.einsum('cik,lk->cil', rows, interp)


@functools.cache
def _interpolation_matrix(grid: int, size: int) -> NDArray[np.float32]:
    """Separable smooth interpolation from a coarse grid to *size* pixels.

    Args:
        grid: Size of the coarse grid.
        size: Output size in pixels.

    Returns:
        Matrix of shape ``[size, grid]`` whose rows are normalised Gaussian
        weights of the grid nodes, scaled to keep roughly unit variance.
    """
    nodes = (np.arange(grid) + 0.5) / grid
    pixels = (np.arange(size) + 0.5) / size
    weights = np.exp(-0.5 * ((pixels[:, None] - nodes[None]) * grid) ** 2)
    weights /= np.sqrt((weights**2).sum(1, keepdims=True))
    return weights.astype(np.float32)


def _downsample(image: NDArray[np.float32], size: int) -> NDArray[np.float32]:
    """Average-pool an image ``[C, H, W]`` to ``[C, size, size]``.

    Args:
        image: Image to downsample.
        size: Output size in pixels.

    Returns:
        The downsampled image.
    """
    if image.shape[-1] == size:
        return image
    x = torch.from_numpy(image)[None]
    return F.interpolate(x, size=(size, size), mode='area')[0].numpy()


def _s1_name(rng: np.random.Generator, date: datetime) -> str:
    """Sentinel-1 GRD product name, as the season folders of SSL4EO-S12.

    Args:
        rng: Random number generator.
        date: Acquisition start.

    Returns:
        A name like
        ``S1A_IW_GRDH_1SDV_20200329T001515_20200329T001540_031883_03AE27_9BAF``.
    """
    stop = date + timedelta(seconds=25)
    fmt = '%Y%m%dT%H%M%S'
    orbit = int(rng.integers(20000, 40000))
    take = int(rng.integers(0x20000, 0x50000))
    unique = int(rng.integers(0, 0x10000))
    sat = 'AB'[int(rng.integers(2))]
    return (
        f'S1{sat}_IW_GRDH_1SDV_{date.strftime(fmt)}_{stop.strftime(fmt)}_'
        f'{orbit:06d}_{take:06X}_{unique:04X}'
    )


def _s2_name(date: datetime, tile: str, rng: np.random.Generator) -> str:
    """Sentinel-2 product name, as the season folders of SSL4EO-S12.

    Args:
        date: Datatake sensing start.
        tile: MGRS tile, e.g. ``'T32UNU'``.
        rng: Random number generator.

    Returns:
        A name like ``20200323T162931_20200323T163750_T32UNU``.
    """
    granule = date + timedelta(seconds=int(rng.integers(60, 900)))
    fmt = '%Y%m%dT%H%M%S'
    return f'{date.strftime(fmt)}_{granule.strftime(fmt)}_{tile}'


def _write(
    path: Path,
    array: NDArray[np.generic],
    lon0: float,
    lat0: float,
    extent: float,
) -> None:
    """Write a single-band GeoTIFF as the SSL4EO-S12 files are stored.

    Uncompressed, one strip per row, in geographic coordinates (EPSG:4326).

    Args:
        path: Output file.
        array: Band of shape ``[H, W]``.
        lon0: Longitude of the upper left corner.
        lat0: Latitude of the upper left corner.
        extent: Side length of the patch in degrees.
    """
    height, width = array.shape
    profile = {
        'driver': 'GTiff',
        'dtype': array.dtype.name,
        'width': width,
        'height': height,
        'count': 1,
        'crs': _CRS,
        'transform': from_origin(lon0, lat0, extent / width, extent / height),
    }
    # GDAL writes much faster to memory than to many small files
    with MemoryFile() as memfile:
        with memfile.open(**profile) as f:
            f.write(array, 1)
        path.write_bytes(memfile.read())


def _location(
    root: Path, index: int, size: int, seed: int, s2_sizes: dict[str, int]
) -> NDArray[np.float32]:
    """Write the four seasons of both modalities of one location.

    Args:
        root: Output root.
        index: Location index.
        size: Patch size of the 10 m bands.
        seed: Random seed of the data set.
        s2_sizes: Stored size of each Sentinel-2 band.

    Returns:
        The fraction of each land-cover class in the patch.
    """
    rng = np.random.default_rng([seed, index])
    name = f'{index:07d}'
    extent = size * _DEG_PER_PIXEL
    x0 = float(rng.uniform(6.0, 15.0))  # longitude, degrees
    y0 = float(rng.uniform(45.0, 55.0))  # latitude
    tile = 'T32' + 'TU'[int(rng.integers(2))] + ''.join(rng.choice(list('MNP'), 2))
    year = int(rng.integers(2019, 2022))

    # common factors: land cover (soft class memberships) and soil moisture
    grid = int(rng.integers(3, 7))
    scores = _smooth_field(rng, len(CLASSES), grid, size)
    scores += np.array([0.0, -0.6, 0.3, 0.3, -0.3], dtype=np.float32)[:, None, None]
    weights = np.exp(6 * (scores - scores.max(0, keepdims=True)))
    weights /= weights.sum(0, keepdims=True)
    moisture = np.tanh(_smooth_field(rng, 1, 4, size)[0])

    cols = np.linspace(-1, 1, size, dtype=np.float32)[None, :]
    for month, green in zip(_MONTHS, _GREENNESS, strict=True):
        s1_date = datetime(year, month, 1) + timedelta(
            days=int(rng.integers(0, 28)), seconds=int(rng.integers(0, 86400))
        )
        s2_date = s1_date + timedelta(
            days=int(rng.integers(-5, 6)), seconds=int(rng.integers(0, 3600))
        )

        # Sentinel-1: common factors + speckle, incidence angle, point targets
        s1 = _S1_SIGNATURES.copy()
        s1[3] = _S1_SIGNATURES[4] * (1 - green) + _S1_SIGNATURES[3] * green
        db = np.einsum('kb,khw->bhw', s1, weights)
        db += (
            2.0 * moisture[None] * np.array([1.0, 0.7], dtype=np.float32)[:, None, None]
        )
        db += float(rng.uniform(-1.5, 1.5)) * cols[None]
        looks = 4.4
        speckle = rng.gamma(looks, 1 / looks, size=(2, size, size))
        db += (10 * np.log10(speckle)).astype(np.float32)
        n_points = int(rng.integers(0, 6))
        ys, xs = rng.integers(0, size, (2, n_points))
        db[:, ys, xs] = np.array([2.0, -6.0], dtype=np.float32)[:, None]
        db[0] = np.clip(db[0], -30, 5)
        db[1] = np.clip(db[1], -35, 0)
        directory = root / 's1' / name / _s1_name(rng, s1_date)
        directory.mkdir(parents=True)
        for b, band in enumerate(('VV', 'VH')):
            _write(directory / f'{band}.tif', db[b].astype(np.float32), x0, y0, extent)

        # Sentinel-2: common factors + band texture, haze or clouds, cirrus
        s2 = _S2_SIGNATURES.copy()
        s2[3] = _S2_SIGNATURES[4] * (1 - green) + _S2_SIGNATURES[3] * green
        dn = np.einsum('kb,khw->bhw', s2, weights)
        dn[11:] *= 1 - 0.25 * moisture[None]
        loadings = rng.standard_normal((len(S2_L1C_BANDS), 3)).astype(np.float32)
        texture = np.einsum(
            'bj,jhw->bhw', loadings, _smooth_field(rng, 3, size // 4, size)
        )
        dn *= 1 + 0.03 * texture
        if rng.random() < 0.4:
            cloud = np.clip(
                _smooth_field(rng, 1, 3, size)[0] + rng.uniform(-1, 0.5), 0, 1
            )
            visible = np.linspace(1.0, 0.5, len(S2_L1C_BANDS), dtype=np.float32)
            dn += 6000 * cloud[None] * visible[:, None, None]
            dn[10] += 800 * cloud  # cirrus band B10
        directory = root / 's2c' / name / _s2_name(s2_date, tile, rng)
        directory.mkdir(parents=True)
        for b, band in enumerate(S2_L1C_BANDS):
            image = _downsample(dn[b : b + 1], s2_sizes[band])[0]
            image = np.clip(np.rint(image), 0, 10000).astype(np.uint16)
            _write(directory / f'{band}.tif', image, x0, y0, extent)
    return weights.mean(axis=(1, 2)).astype(np.float32)


def make_ssl4eo_s12_demo(
    root: str | os.PathLike[str],
    num_locations: int = 256,
    size: int = 96,
    seed: int = 0,
    overwrite: bool = False,
) -> Path:
    """Write a small synthetic data set in the SSL4EO-S12 format.

    The layout, file names and encodings are those of SSL4EO-S12::

        root/s1/0000000/S1A_IW_GRDH_1SDV_<start>_<stop>_<orbit>_<take>_<id>/VV.tif
        root/s2c/0000000/<sensing>_<granule>_T32UNU/B1.tif ... B12.tif

    with four seasons per location, Sentinel-1 backscatter as float32 dB and
    Sentinel-2 L1C as uint16 digital numbers (the 20 m and 60 m bands at
    their native resolution, *size* / 2 and *size* / 6 pixels), as
    uncompressed GeoTIFFs in geographic coordinates (EPSG:4326) with 10 m
    pixels, as the files of SSL4EO-S12. Load it with
    ``SSL4EOS12Pair(root)`` (which reads the tile size from the data).

    ``root/land_cover.csv`` gives the fraction of each land-cover class
    (:data:`CLASSES`) at each location: the factor shared by both modalities,
    a target for linear probes.

    The data set is written to a temporary folder next to *root* and moved
    into place when complete, with a marker file; a later call with the
    marker present returns at once.

    Args:
        root: Output folder; must not exist, be empty, or hold a demo data set
            written by this function.
        num_locations: Number of locations.
        size: Patch size in pixels (of the 10 m bands); smaller than the 264
            of SSL4EO-S12 by default to keep the demo small (about 180 MB for
            256 locations) and quick to write.
        seed: Random seed; the same seed gives the same data.
        overwrite: Whether to replace a demo data set already in *root*.

    Returns:
        *root*, as a :class:`~pathlib.Path`.

    Raises:
        FileExistsError: If *root* exists, is not empty and is not a demo data
            set (user data is never overwritten).
        ValueError: If *num_locations* or *size* is out of range.

    .. versionadded:: 0.1
    """
    if num_locations < 1:
        msg = f'num_locations must be >= 1, got {num_locations}'
        raise ValueError(msg)
    if size < 6:
        msg = f'size must be >= 6, got {size}'
        raise ValueError(msg)
    root = Path(root)
    marker = root / DEMO_MARKER
    params = {'num_locations': num_locations, 'size': size, 'seed': seed}
    if root.exists():
        if marker.is_file():
            if not overwrite:
                found = json.loads(marker.read_text())
                if found != params:
                    msg = (
                        f'{root} holds a demo data set made with {found}, not '
                        f'{params}; pass overwrite=True to replace it'
                    )
                    warnings.warn(msg, UserWarning, stacklevel=2)
                return root
        elif not root.is_dir() or any(root.iterdir()):
            msg = (
                f'{root} exists and is not a torchgeo-decur demo data set (no '
                f'{DEMO_MARKER}); refusing to write into it'
            )
            raise FileExistsError(msg)

    root.parent.mkdir(parents=True, exist_ok=True)
    s2_sizes = {b: round(size * 10 / band_resolution(b)) for b in S2_L1C_BANDS}
    tmp = Path(tempfile.mkdtemp(prefix=f'.{root.name}.', dir=root.parent))
    try:
        rows = [','.join(('id', *CLASSES))]
        with rasterio.Env():  # one GDAL environment for all files: faster
            for index in range(num_locations):
                fractions = _location(tmp, index, size, seed, s2_sizes)
                rows.append(
                    ','.join([f'{index:07d}', *(f'{x:.4f}' for x in fractions)])
                )
        (tmp / LAND_COVER_FILE).write_text('\n'.join(rows) + '\n')
        (tmp / DEMO_MARKER).write_text(json.dumps(params))
        if root.exists():
            # an empty folder, or an old demo data set (overwrite=True)
            old = Path(tempfile.mkdtemp(prefix=f'.{root.name}.old.', dir=root.parent))
            root.rename(old / root.name)
            tmp.rename(root)
            shutil.rmtree(old)
        else:
            tmp.rename(root)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return root
