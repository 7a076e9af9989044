"""Synthetic demo data in the SSL4EO-S12 format, with known factors.

The demo data set lets users run DeCUR end to end without the 1.5 TB download,
and shows what pretraining learns. Every location has three labels
(``labels.csv``), drawn independently of each other (every combination equally
often) and constant over its four seasons, each a property of the ground that
a downstream user could want to map:

* ``land_cover``, the **common** factor (both sensors see it): water, urban,
  forest, cropland or bare soil, the class that covers most of the patch
  (about three quarters on average). A smooth random map of soft class
  memberships in which the labelled class is boosted; each class has its own
  Sentinel-2 spectrum (cropland between bare soil and green vegetation with
  the season's greenness) and its own Sentinel-1 backscatter (VV, VH).
* ``roughness``, seen by **SAR only**: a smooth, moderate or rough surface,
  -2, 0 or +2 dB of VV (and 0.8 times that of VH) on cropland and bare soil,
  0.6 times that on forest, 0.4 times on urban land, none on water. The
  Sentinel-2 images do not depend on it at all.
* ``mineral``, seen by the **optical sensor only**: the soil's mineralogy,
  quartz (the reference), iron oxide or clay, a change of the soil's spectrum.
  Iron oxides absorb blue and green light (B1, B2 20% darker, B3 15%) and at
  0.9 um (B8A, B9 8% darker), and make the soil redder (B4 8% brighter); clay
  absorbs at 2.2 um (B12 20% darker, B11 3% brighter). It shows where soil
  shows: fully on bare soil, 0.8 times on cropland, 0.4 times on urban land,
  0.3 times under forest, not on water. The Sentinel-1 images do not depend
  on it at all.

A location's nuisance draws (map, speckle, clouds, ...) do not depend on its
factors, so that rendering a location with another roughness changes its
Sentinel-1 files only and leaves its Sentinel-2 files identical, and the
other way round for the mineral.

The unique factors are small next to the variability within a class and from
one acquisition (season) to the next: in Sentinel-1 the land-cover mixture
(10 dB between classes), a wetness offset of the whole scene (1 dB standard
deviation), an incidence-angle gradient, speckle and bright point
scatterers; in Sentinel-2 the land-cover mixture, the illumination (+-15%),
the calibration of each band (2%), haze, clouds (in 30% of the images),
cirrus, band-specific texture and the crops' greenness. A linear probe of
randomly initialised encoders recovers them barely above chance; a
representation learns them from what stays the same across the seasons of
one sensor, which cross-modal alignment alone has no reason to keep.

``land_cover.csv`` also gives the fraction of each land-cover class at each
location (the common factor as fractions).

With ``dem=True`` a third modality is written, a digital surface model
(``dem/<id>/dem.tif``, metres, one acquisition as SSL4EO-S12 v1.1's DEM), with
a fourth factor that only it sees:

* ``relief``, seen by the **DEM only**: flat, hilly or mountainous terrain,
  a smooth random surface of 3, 15 or 60 m standard deviation and finer
  structure the rougher it is (2, 4, 6 nodes per side). On top of it the
  land cover shows as object heights (urban 12 m, forest 18 m, crops up to
  1.5 m with their greenness, water 2 m below the ground), so the DEM sees
  the common factor too. Nuisances: the base elevation, a regional slope
  (up to 30 m across the patch) and 0.5 m of noise. The DEM is drawn from a
  stream of its own: the Sentinel-1/2 files of a location are identical
  with and without it, and do not depend on its relief.
"""

import functools
import itertools
import json
import os
import shutil
import tempfile
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from numpy.typing import NDArray
from rasterio.io import MemoryFile
from rasterio.transform import from_origin

from ..datasets.ssl4eo_s12 import band_resolution
from ..modalities import S2_L1C_BANDS

__all__ = (
    'CLASSES',
    'DEMO_LOCATIONS',
    'DEMO_MARKER',
    'DEMO_SIZE',
    'DEM_FACTORS',
    'DEM_FACTOR_SENSORS',
    'FACTORS',
    'FACTOR_SENSORS',
    'LABELS_FILE',
    'LAND_COVER_FILE',
    'make_ssl4eo_s12_demo',
    'read_labels',
)

#: File written last into a complete demo data set.
DEMO_MARKER = '.torchgeo_decur_demo.json'

#: Version of the generator, recorded in :data:`DEMO_MARKER`: data of an
#: older version is not taken for the same parameters.
GENERATOR_VERSION = 2

#: Land-cover classes of the demo data.
CLASSES = ('water', 'urban', 'forest', 'cropland', 'bare')

#: The labelled factors of the demo data and their classes (column order of
#: :data:`LABELS_FILE`).
FACTORS: dict[str, tuple[str, ...]] = {
    'land_cover': CLASSES,
    'roughness': ('smooth', 'moderate', 'rough'),
    'mineral': ('quartz', 'iron_oxide', 'clay'),
}

#: Which sensor sees each factor: ``'both'``, ``'s1'`` or ``'s2c'``.
FACTOR_SENSORS = {'land_cover': 'both', 'roughness': 's1', 'mineral': 's2c'}

#: The factors of demo data with a DEM (``dem=True``): those of
#: :data:`FACTORS` and the relief, which only the DEM sees.
DEM_FACTORS: dict[str, tuple[str, ...]] = {
    **FACTORS,
    'relief': ('flat', 'hilly', 'mountainous'),
}

#: Which sensor sees each factor of :data:`DEM_FACTORS`.
DEM_FACTOR_SENSORS = {**FACTOR_SENSORS, 'land_cover': 'all', 'relief': 'dem'}

#: CSV file with the class index of each factor at each location.
LABELS_FILE = 'labels.csv'

#: CSV file with the fraction of each land-cover class of each location: the
#: common factor as fractions, a target for regression probes.
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

#: Boost of the drawn land-cover class's score (the scores have unit
#: variance): it then covers three quarters of the patch on average, and
#: most of it at about three locations in four (the label is the class
#: that covers most of the patch).
_DOMINANCE = 1.5

#: Backscatter change in dB (VV) of each roughness class, and its share in VH.
_ROUGHNESS_DB = np.array([-2.0, 0.0, 2.0], dtype=np.float32)
_ROUGHNESS_POL = np.array([1.0, 0.8], dtype=np.float32)

#: How much of the roughness change each land-cover class shows.
_ROUGHNESS_VISIBILITY = np.array([0.0, 0.4, 0.6, 1.0, 1.0], dtype=np.float32)

#: Reflectance factor of each band for each soil mineral (quartz: none).
_MINERAL_SPECTRA = np.array(
    [
        [1.0] * 13,
        [0.8, 0.8, 0.85, 1.08, 1.03, 1.0, 1.0, 0.95, 0.92, 0.92, 1.0, 1.0, 1.0],
        [1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.03, 0.8],
    ],
    dtype=np.float32,
)

#: How much soil each land-cover class shows (the mineral's visibility).
_MINERAL_VISIBILITY = np.array([0.0, 0.4, 0.3, 0.8, 1.0], dtype=np.float32)

#: Standard deviation (dB) of the wetness offset of each Sentinel-1 scene.
_S1_WETNESS_DB = 1.0

#: Range of the illumination factor of each Sentinel-2 image, and the
#: standard deviation of each band's calibration factor.
_S2_ILLUMINATION = (0.85, 1.15)
_S2_BAND_JITTER = 0.02

#: Amplitude of the band-specific texture of Sentinel-2 (relative).
_S2_TEXTURE = 0.03

#: Largest haze (path radiance x 10000 per band, times a uniform draw).
_S2_HAZE = 1.0
_HAZE_SPECTRUM = np.array(
    [600, 500, 400, 300, 250, 200, 180, 160, 150, 140, 0, 60, 40], dtype=np.float32
)

#: Probability that a Sentinel-2 image has clouds.
_CLOUD_PROBABILITY = 0.3

#: Entropy words that seed the draw of the factors (a location's own draws
#: are seeded with ``[seed, index]``).
_FACTOR_STREAM = (0, 0xFAC7)

#: Crop greenness in spring, summer, autumn and winter.
_GREENNESS = (0.4, 1.0, 0.5, 0.1)

#: Acquisition months of the four seasons.
_MONTHS = (3, 6, 9, 12)

#: Degrees per 10 m pixel (about 10 m of latitude).
_DEG_PER_PIXEL = 9e-5

#: Terrain of each relief class: standard deviation (m) and nodes per side
#: of its smooth random surface.
_RELIEF = ((3.0, 2), (15.0, 4), (60.0, 6))

#: Object height (m) of each land-cover class over the terrain; cropland's
#: is scaled by the crops' greenness (its mean over the year).
_OBJECT_HEIGHT = np.array([-2.0, 12.0, 18.0, 1.5, 0.0], dtype=np.float32)

#: Entropy words of the DEM's own draws (relief class, terrain, nuisances).
_DEM_STREAM = 0xDE3


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

    Uncompressed, in geographic coordinates (EPSG:4326). GDAL builds the file
    in memory and it is written in one call: much faster than letting GDAL
    write thousands of small files.

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
        'crs': 'EPSG:4326',
        'transform': from_origin(lon0, lat0, extent / width, extent / height),
    }
    with MemoryFile() as memfile:
        with memfile.open(**profile) as f:
            f.write(array, 1)
        path.write_bytes(memfile.read())


def _factors(num_locations: int, seed: int) -> NDArray[np.int64]:
    """Draw the factors of every location: balanced, independent of each other.

    Every combination of the factors' classes (5 x 3 x 3 = 45) appears once in
    each block of 45 locations, in a random order: each factor is balanced
    and independent of the others (exactly so for a multiple of 45
    locations).

    Args:
        num_locations: Number of locations.
        seed: Random seed of the data set.

    Returns:
        Array ``[num_locations, 3]``: the class index of each factor of
        :data:`FACTORS`, in its order.
    """
    rng = np.random.default_rng([seed, *_FACTOR_STREAM])
    combos = np.array(
        list(itertools.product(*(range(len(c)) for c in FACTORS.values())))
    )
    blocks = -(-num_locations // len(combos))
    order = np.concatenate([rng.permutation(len(combos)) for _ in range(blocks)])
    return combos[order[:num_locations]]


def _reliefs(num_locations: int, seed: int) -> NDArray[np.int64]:
    """Draw the relief class of every location, balanced, from the DEM's stream.

    Independent of the other factors (drawn from another stream): each block
    of three locations holds each class once, in a random order.

    Args:
        num_locations: Number of locations.
        seed: Random seed of the data set.

    Returns:
        Array ``[num_locations]`` of indices into ``DEM_FACTORS['relief']``.
    """
    rng = np.random.default_rng([seed, _DEM_STREAM])
    classes = len(_RELIEF)
    blocks = -(-num_locations // classes)
    order = np.concatenate([rng.permutation(classes) for _ in range(blocks)])
    return order[:num_locations]


def _write_dem(
    path: Path,
    rng: np.random.Generator,
    relief: int,
    weights: NDArray[np.float32],
    corner: tuple[float, float, float],
) -> None:
    """Write the surface model of one location (see the module's description).

    Args:
        path: Output file.
        rng: The location's DEM stream.
        relief: Index of its relief class.
        weights: Its land-cover memberships ``[classes, H, W]``.
        corner: Longitude and latitude of the upper left corner, and the
            patch's side in degrees.
    """
    size = weights.shape[-1]
    spread, grid = _RELIEF[relief]
    terrain = spread * _smooth_field(rng, 1, grid, size)[0]
    heights = _OBJECT_HEIGHT.copy()
    heights[3] *= float(np.mean(_GREENNESS))
    objects = np.einsum('k,khw->hw', heights, weights)
    ramp = np.linspace(-0.5, 0.5, size, dtype=np.float32)
    angle = rng.uniform(0, 2 * np.pi)
    slope = rng.uniform(0, 30) * (
        np.cos(angle) * ramp[None, :] + np.sin(angle) * ramp[:, None]
    )
    base = rng.uniform(50, 1500)
    noise = rng.normal(0, 0.5, (size, size))
    dem = (base + terrain + objects + slope + noise).astype(np.float32)
    path.parent.mkdir(parents=True)
    _write(path, dem, *corner)


def _s1_backscatter(
    rng: np.random.Generator,
    weights: NDArray[np.float32],
    rough_db: NDArray[np.float32],
    green: float,
) -> NDArray[np.float32]:
    """One Sentinel-1 acquisition in dB ``[2, H, W]`` (VV, VH).

    Land cover and roughness; per acquisition a wetness offset, an
    incidence-angle gradient, speckle and point targets.
    """
    size = weights.shape[-1]
    cols = np.linspace(-1, 1, size, dtype=np.float32)[None, :]
    s1 = _S1_SIGNATURES.copy()
    s1[3] = _S1_SIGNATURES[4] * (1 - green) + _S1_SIGNATURES[3] * green
    db = np.einsum('kb,khw->bhw', s1, weights)
    db += rough_db[None] * _ROUGHNESS_POL[:, None, None]
    db += float(rng.normal(0, _S1_WETNESS_DB))
    db += float(rng.uniform(-1.5, 1.5)) * cols[None]
    looks = 4.4
    speckle = rng.gamma(looks, 1 / looks, size=(2, size, size))
    db += (10 * np.log10(speckle)).astype(np.float32)
    n_points = int(rng.integers(0, 6))
    ys, xs = rng.integers(0, size, (2, n_points))
    db[:, ys, xs] = np.array([2.0, -6.0], dtype=np.float32)[:, None]
    db[0] = np.clip(db[0], -30, 5)
    db[1] = np.clip(db[1], -35, 0)
    return db


def _s2_reflectance(
    rng: np.random.Generator,
    weights: NDArray[np.float32],
    soil_map: NDArray[np.float32],
    mineral: int,
    green: float,
) -> NDArray[np.float32]:
    """One Sentinel-2 acquisition, reflectance x 10000 ``[13, H, W]``.

    Land cover and soil mineral; per acquisition the illumination, band
    calibration, band texture, haze or clouds, and cirrus.
    """
    size = weights.shape[-1]
    s2 = _S2_SIGNATURES.copy()
    s2[3] = _S2_SIGNATURES[4] * (1 - green) + _S2_SIGNATURES[3] * green
    dn = np.einsum('kb,khw->bhw', s2, weights)
    dn *= 1 + soil_map[None] * (_MINERAL_SPECTRA[mineral] - 1)[:, None, None]
    gain = rng.uniform(*_S2_ILLUMINATION) * (
        1 + _S2_BAND_JITTER * rng.standard_normal(len(S2_L1C_BANDS))
    )
    dn *= gain.astype(np.float32)[:, None, None]
    loadings = rng.standard_normal((len(S2_L1C_BANDS), 3)).astype(np.float32)
    texture = np.einsum(
        'bj,jhw->bhw', loadings, _smooth_field(rng, 3, max(2, size // 4), size)
    )
    dn *= 1 + _S2_TEXTURE * texture
    haze = rng.uniform(0, _S2_HAZE)
    dn += haze * _HAZE_SPECTRUM[:, None, None]
    if rng.random() < _CLOUD_PROBABILITY:
        cloud = np.clip(_smooth_field(rng, 1, 3, size)[0] + rng.uniform(-1, 0.5), 0, 1)
        visible = np.linspace(1.0, 0.5, len(S2_L1C_BANDS), dtype=np.float32)
        dn += 6000 * cloud[None] * visible[:, None, None]
        dn[10] += 800 * cloud  # cirrus band B10
    return dn


def _location(
    root: Path,
    index: int,
    size: int,
    seed: int,
    s2_sizes: dict[str, int],
    factors: NDArray[np.int64],
    relief: int | None = None,
) -> NDArray[np.float32]:
    """Write the four seasons of both modalities of one location.

    Args:
        root: Output root.
        index: Location index.
        size: Patch size of the 10 m bands.
        seed: Random seed of the data set.
        s2_sizes: Stored size of each Sentinel-2 band.
        factors: Class index of each factor of :data:`FACTORS` at this
            location (land cover: the class boosted to dominate the patch).
        relief: Index of the location's relief class, to write its DEM
            (``dem/<id>/dem.tif``) too; None for no DEM.

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
    dominant, roughness, mineral = (int(f) for f in factors)

    # common factor: a land-cover map (soft class memberships) in which the
    # drawn class covers most of the patch
    grid = int(rng.integers(2, 5))
    scores = _smooth_field(rng, len(CLASSES), grid, size)
    scores[dominant] += _DOMINANCE
    weights = np.exp(6 * (scores - scores.max(0, keepdims=True)))
    weights /= weights.sum(0, keepdims=True)
    # where the unique factors show, per pixel (from the class memberships)
    rough_map = np.einsum('k,khw->hw', _ROUGHNESS_VISIBILITY, weights)
    rough_db = _ROUGHNESS_DB[roughness] * rough_map
    soil_map = np.einsum('k,khw->hw', _MINERAL_VISIBILITY, weights)
    if relief is not None:  # its own stream: the S1/S2 draws stay the same
        dem_rng = np.random.default_rng([seed, index, _DEM_STREAM])
        path = root / 'dem' / name / 'dem.tif'
        _write_dem(path, dem_rng, relief, weights, (x0, y0, extent))

    for month, green in zip(_MONTHS, _GREENNESS, strict=True):
        s1_date = datetime(year, month, 1) + timedelta(
            days=int(rng.integers(0, 28)), seconds=int(rng.integers(0, 86400))
        )
        s2_date = s1_date + timedelta(
            days=int(rng.integers(-5, 6)), seconds=int(rng.integers(0, 3600))
        )

        db = _s1_backscatter(rng, weights, rough_db, green)
        directory = root / 's1' / name / _s1_name(rng, s1_date)
        directory.mkdir(parents=True)
        for b, band in enumerate(('VV', 'VH')):
            _write(directory / f'{band}.tif', db[b].astype(np.float32), x0, y0, extent)

        dn = _s2_reflectance(rng, weights, soil_map, mineral, green)
        directory = root / 's2c' / name / _s2_name(s2_date, tile, rng)
        directory.mkdir(parents=True)
        for b, band in enumerate(S2_L1C_BANDS):
            image = _downsample(dn[b : b + 1], s2_sizes[band])[0]
            image = np.clip(np.rint(image), 0, 10000).astype(np.uint16)
            _write(directory / f'{band}.tif', image, x0, y0, extent)
    return weights.mean(axis=(1, 2)).astype(np.float32)


#: Default number of locations and tile size of the demo data: those of
#: ``make demo`` (:data:`torchgeo_decur.lab.demo.DEMO_SETTINGS`), so that
#: ``torchgeo-decur demo-data``, the Python function and the demo write the
#: same data.
DEMO_LOCATIONS, DEMO_SIZE = 450, 48


def _written_already(root: Path, params: dict[str, Any], overwrite: bool) -> bool:
    """Whether *root* holds the demo data of *params* (nothing to write).

    Raises:
        FileExistsError: As :func:`make_ssl4eo_s12_demo` documents.
    """
    marker = root / DEMO_MARKER
    if not root.exists():
        return False
    if marker.is_file():
        if overwrite:
            return False
        found = json.loads(marker.read_text())
        if found != params:
            msg = (
                f'{root} holds a demo data set made with {found}, not '
                f'{params}; pass overwrite=True (--overwrite) to replace it'
            )
            raise FileExistsError(msg)
        return True
    if not root.is_dir() or any(root.iterdir()):
        msg = (
            f'{root} exists and is not a torchgeo-decur demo data set (no '
            f'{DEMO_MARKER}); refusing to write into it'
        )
        raise FileExistsError(msg)
    return False


def _write_locations(
    folder: Path, num_locations: int, size: int, seed: int, dem: bool
) -> None:
    """Write every location, :data:`LABELS_FILE` and :data:`LAND_COVER_FILE`."""
    s2_sizes = {b: round(size * 10 / band_resolution(b)) for b in S2_L1C_BANDS}
    factors = _factors(num_locations, seed)
    reliefs = _reliefs(num_locations, seed) if dem else None
    rows = [','.join(('id', *CLASSES))]
    labels = [','.join(('id', *(DEM_FACTORS if dem else FACTORS)))]
    for index in range(num_locations):
        relief = None if reliefs is None else int(reliefs[index])
        fractions = _location(
            folder, index, size, seed, s2_sizes, factors[index], relief
        )
        name = f'{index:07d}'
        rows.append(','.join([name, *(f'{x:.4f}' for x in fractions)]))
        # the land cover label is the class that covers most of the patch
        # (the boosted one, almost always)
        values = [int(np.argmax(fractions)), *factors[index, 1:].tolist()]
        values += [] if relief is None else [relief]
        labels.append(','.join([name, *map(str, values)]))
    (folder / LAND_COVER_FILE).write_text('\n'.join(rows) + '\n')
    (folder / LABELS_FILE).write_text('\n'.join(labels) + '\n')


def make_ssl4eo_s12_demo(
    root: str | os.PathLike[str],
    num_locations: int = DEMO_LOCATIONS,
    size: int = DEMO_SIZE,
    seed: int = 0,
    overwrite: bool = False,
    dem: bool = False,
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

    ``root/labels.csv`` gives the class index of each factor of
    :data:`FACTORS` at each location (columns ``id,land_cover,roughness,
    mineral``; see the module's description): land cover, seen by both
    sensors, surface roughness, seen by Sentinel-1 only, and the soil's
    mineral, seen by Sentinel-2 only; read it with :func:`read_labels`.
    ``root/land_cover.csv`` gives the fraction of each land-cover class
    (:data:`CLASSES`) at each location. With *dem*, each location also has a
    surface model ``root/dem/<id>/dem.tif`` (float32 metres, one
    acquisition) and ``labels.csv`` a fourth column, ``relief``, which only
    the DEM sees (:data:`DEM_FACTORS`); the Sentinel-1/2 files are the same
    as without it.

    The data set is written to a temporary folder next to *root* and moved
    into place when complete, with a marker file; a later call with the
    marker present returns at once (and refuses, unless *overwrite*, if the
    marker records other parameters or an older version of this generator).
    The defaults are the demo's: 450 locations of 48 px (27,000 files),
    about half a minute to write.

    Args:
        root: Output folder; must not exist, be empty, or hold a demo data set
            written by this function.
        num_locations: Number of locations (the demo's 450).
        size: Patch size in pixels of the 10 m bands (the demo's 48; smaller
            than SSL4EO-S12's 264 to keep the demo small and quick to write).
        seed: Random seed; the same seed gives the same data.
        overwrite: Whether to replace a demo data set already in *root*.
        dem: Whether to write the third modality, a DEM with its own factor.

    Returns:
        *root*, as a :class:`~pathlib.Path`.

    Raises:
        FileExistsError: If *root* exists, is not empty and is not a demo data
            set (user data is never overwritten), or holds a demo data set of
            other parameters and *overwrite* is False.
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
    params: dict[str, Any] = {
        'num_locations': num_locations,
        'size': size,
        'seed': seed,
        'version': GENERATOR_VERSION,
    }
    if dem:  # recorded only when set: the markers of two-modality data stay
        params['dem'] = True
    if _written_already(root, params, overwrite):
        return root
    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f'.{root.name}.', dir=root.parent))
    try:
        _write_locations(tmp, num_locations, size, seed, dem)
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


def read_labels(root: str | os.PathLike[str]) -> dict[str, dict[str, int]]:
    """Read the factors of every location of a demo data set.

    Args:
        root: A folder written by :func:`make_ssl4eo_s12_demo`.

    Returns:
        ``{location id: {factor: class index}}`` with the factors of
        :data:`FACTORS` (and ``relief`` for data with a DEM); class names are
        ``DEM_FACTORS[factor][index]``.

    Raises:
        FileNotFoundError: If *root* has no :data:`LABELS_FILE`.
        ValueError: If the file's columns are not ``id`` and the factors.

    .. versionadded:: 0.1
    """
    path = Path(root) / LABELS_FILE
    if not path.is_file():
        msg = f'{path} not found: not a demo data set of this version'
        raise FileNotFoundError(msg)
    lines = path.read_text().splitlines()
    header = lines[0].split(',')
    if header not in (['id', *FACTORS], ['id', *DEM_FACTORS]):
        msg = (
            f'{path} has columns {header}, expected {["id", *FACTORS]} or '
            f'{["id", *DEM_FACTORS]}'
        )
        raise ValueError(msg)
    out = {}
    for line in lines[1:]:
        name, *values = line.split(',')
        out[name] = {k: int(v) for k, v in zip(header[1:], values, strict=True)}
    return out
