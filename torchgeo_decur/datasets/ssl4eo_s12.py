"""Paired Sentinel-1 / Sentinel-2 samples from SSL4EO-S12."""

import os
import random
import warnings
from collections.abc import Callable
from typing import Any, ClassVar, Literal

import numpy as np
import rasterio
import torch
import torch.nn.functional as F
from matplotlib import pyplot as plt
from matplotlib.figure import Figure
from numpy.typing import NDArray
from rasterio.errors import NotGeoreferencedWarning, RasterioIOError
from rasterio.io import DatasetReader
from torch import Tensor
from torchgeo.datasets import (
    SSL4EOS12,
    DatasetNotFoundError,
    Sentinel2,
)

from ..modalities import get_modality
from .multimodal import MultimodalDataset

__all__ = ('SSL4EOS12Pair', 'band_resolution')

#: GDAL settings of the reader: no listing of the season folder at each open
#: (no sidecar files are used) and no georeferencing (only the pixels are
#: read; parsing the CRS is a large part of GDAL's cost of opening a small
#: file).
_GDAL_ENV = {'GDAL_DISABLE_READDIR_ON_OPEN': 'EMPTY_DIR'}
_OPEN_OPTIONS = {'GEOREF_SOURCES': 'NONE'}


class _BadLocation(Exception):
    """No season of a modality of a location can be read (skip mode)."""


def band_resolution(band: str) -> int:
    """Native ground sample distance of a Sentinel-1 or Sentinel-2 band.

    Args:
        band: Band name as in SSL4EO-S12 (``'VV'``, ``'VH'``, ``'B1'`` ...
            ``'B12'``, ``'B8A'``).

    Returns:
        The ground sample distance in metres (10, 20 or 60).

    Raises:
        ValueError: If *band* is not a Sentinel-1 or Sentinel-2 band.

    .. versionadded:: 0.1
    """
    if band in ('VV', 'VH'):
        return 10
    key = band if band == 'B8A' else f'B{band[1:].zfill(2)}'
    try:
        return int(Sentinel2.resolutions[key].rstrip('m'))
    except KeyError:
        msg = f'unknown Sentinel-1/2 band {band!r}'
        raise ValueError(msg) from None


class SSL4EOS12Pair(MultimodalDataset):
    """Co-located Sentinel-1 and Sentinel-2 patches of SSL4EO-S12, for DeCUR.

    `SSL4EO-S12 <https://github.com/zhu-xlab/SSL4EO-S12>`__ holds, for about
    250,000 locations, four seasonal patches of Sentinel-1 GRD (``s1``) and
    Sentinel-2 L1C (``s2c``) and L2A (``s2a``)::

        root/s1/0000000/S1A_IW_GRDH_1SDV_20200329T.../{VV,VH}.tif
        root/s2c/0000000/20200323T162931_20200323T163750_T15QXA/B1.tif ... B12.tif

    Each band is stored at its native resolution: the 10 m bands (and both
    Sentinel-1 polarisations) as ``size x size`` pixels, the 20 m bands as
    ``size / 2`` and the 60 m bands as ``size / 6`` (264, 132 and 44 pixels in
    the real dataset); bands stored at ``size x size`` are accepted too. The
    layout (the stored size of every band) is read from the first location,
    and every file is checked against it.

    A sample holds two views per modality, each from a season drawn at random
    (independently for each of the four views, as the DeCUR authors draw them,
    with Python's :mod:`random`, so DataLoader workers draw differently)::

        {'image1': Tensor[2, 2, size, size],   # Sentinel-1 VV, VH (dB): views a, b
         'image2': Tensor[2, C, size, size]}   # Sentinel-2 digital numbers

    Values are **raw** (dB, digital numbers): the preprocessing of the DeCUR
    weights (:mod:`torchgeo_decur.transforms.normalize`) is the modalities'
    job and runs on whole batches, on the device
    (:class:`~torchgeo_decur.datamodules.PairedDataModule`). Coarser bands are
    resampled bilinearly to ``size x size`` (as the authors' OpenCV
    ``INTER_LINEAR_EXACT``). With ``resample='batch'`` (what the datamodule
    asks for) they are not: ``image2`` then holds only the bands stored at
    ``size``, and ``image2@<n>`` the bands stored at ``n`` pixels, fewer bytes
    for the workers to hand over; :meth:`on_device` resamples and reassembles
    them on the batch.

    Locations present in only one modality, or without any season folder, are
    skipped with a single warning that says how many.

    Real archives have bad files: no-data borders, partial downloads, the odd
    corrupt GeoTIFF. With ``on_bad_sample='skip'`` (the default, for long
    pretraining runs) a season with a bad band file is replaced by another
    season of the same location, and a location with no readable season of a
    modality by another location (a fixed draw for each index, so reruns see
    the same data); each sample counts what was replaced
    (``skipped_samples``, ``skipped_seasons``) and names the bad files
    (``bad_files``), which :class:`~torchgeo_decur.tasks.DeCURTask` logs per
    epoch. A float band with non-finite pixels (Sentinel-1 no data) on at most
    ``max_nonfinite`` of its pixels (1 %) is kept, the pixels filled with the
    median of the band: a thin no-data border should not cost a whole season,
    and the median barely moves the per-image percentile clip of the
    preprocessing. With ``on_bad_sample='raise'`` a bad file raises an error
    that names the file and band.

    If you use this dataset in your research, please cite:

    * https://arxiv.org/abs/2211.07044 (SSL4EO-S12)
    * https://arxiv.org/abs/2309.05300 (DeCUR)

    .. versionadded:: 0.1
    """

    #: Folder of the SAR modality.
    sar = 's1'

    #: Bands of each modality folder, in the order of the channels.
    modality_bands: ClassVar[dict[str, tuple[str, ...]]] = {
        k: v['bands'] for k, v in SSL4EOS12.metadata.items()
    }

    def __init__(
        self,
        root: str | os.PathLike[str] = 'data',
        optical: Literal['s2c', 's2a'] = 's2c',
        transforms: Callable[[dict[str, Tensor]], dict[str, Tensor]] | None = None,
        size: int | None = None,
        resample: Literal['sample', 'batch'] = 'sample',
        on_bad_sample: Literal['raise', 'skip'] = 'skip',
        max_nonfinite: float = 0.01,
        max_location_attempts: int = 10,
    ) -> None:
        """Initialize a new SSL4EOS12Pair instance.

        Scans *root* once for the locations that have at least one season in
        both modalities, and reads the band layout of the first one.

        Args:
            root: Root directory of SSL4EO-S12, with the ``s1`` folder and the
                *optical* folder.
            optical: Sentinel-2 product: ``'s2c'`` (L1C, 13 bands) or ``'s2a'``
                (L2A, 12 bands).
            transforms: A function/transform that takes a sample and returns a
                transformed version.
            size: Size in pixels of the 10 m bands (and of the output): 264 for
                SSL4EO-S12. If None, it is read from the first Sentinel-1 band
                of the first location.
            resample: Where coarser bands are resampled to ``size``: in every
                sample (``'sample'``), or on the batch by :meth:`on_device`
                (``'batch'``).
            on_bad_sample: What a bad band file (missing, unreadable, of the
                wrong size, or with too many non-finite pixels) does:
                ``'raise'`` an error naming the file and band, or ``'skip'`` it:
                another season of the location is read instead, or, if no
                season of a modality is readable, another location (a fixed
                draw for each index); samples then say what was skipped.
            max_nonfinite: Largest fraction of non-finite pixels (no data) of a
                float band that is filled, with the median of the band's
                finite pixels, rather than making the band bad.
            max_location_attempts: Locations tried for one sample before giving
                up with a :class:`RuntimeError`.

        Raises:
            DatasetNotFoundError: If *root* does not exist.
            FileNotFoundError: If a modality folder is missing, or no location
                has data in both modalities.
            ValueError: If *optical*, *size* or *resample* is invalid, or the
                first location's band files have unexpected sizes.
        """
        if optical not in ('s2c', 's2a'):
            msg = f"optical must be 's2c' or 's2a', got {optical!r}"
            raise ValueError(msg)
        if size is not None and size < 6:
            msg = f'size must be >= 6, got {size}'
            raise ValueError(msg)
        if resample not in ('sample', 'batch'):
            msg = f"resample must be 'sample' or 'batch', got {resample!r}"
            raise ValueError(msg)
        if on_bad_sample not in ('raise', 'skip'):
            msg = f"on_bad_sample must be 'raise' or 'skip', got {on_bad_sample!r}"
            raise ValueError(msg)
        if not 0 <= max_nonfinite < 1:
            msg = f'max_nonfinite must be in [0, 1), got {max_nonfinite}'
            raise ValueError(msg)
        if max_location_attempts < 1:
            msg = f'max_location_attempts must be >= 1, got {max_location_attempts}'
            raise ValueError(msg)

        self.root = os.fspath(root)
        self.optical = optical
        self.transforms = transforms
        self.resample = resample
        self.on_bad_sample = on_bad_sample
        self.max_nonfinite = max_nonfinite
        self.max_location_attempts = max_location_attempts
        #: Modality names of ``image1`` and ``image2``.
        self.modalities = (self.sar, optical)
        self.bands1 = self.modality_bands[self.sar]
        self.bands2 = self.modality_bands[optical]
        #: Bands of ``image1`` and ``image2``, in channel order.
        self.input_bands = {'image1': self.bands1, 'image2': self.bands2}

        if not os.path.isdir(self.root):
            raise DatasetNotFoundError(self)

        self.ids = self._scan()
        #: Tile size in pixels of the 10 m bands (and of the output).
        self.size: int = size if size is not None else self._infer_size()
        #: Stored size in pixels of every band (from the first location).
        self.stored_size: dict[str, int] = self._infer_layout()

    def _scan(self) -> list[str]:
        """Find the locations with at least one season in both modalities.

        Returns:
            Sorted location ids.

        Raises:
            FileNotFoundError: If a modality folder is missing, or no location
                has data in both modalities.
        """
        found: dict[str, set[str]] = {}
        empty: dict[str, int] = {}
        for modality in self.modalities:
            folder = os.path.join(self.root, modality)
            if not os.path.isdir(folder):
                msg = (
                    f'{folder} not found: SSL4EOS12Pair needs the {self.sar!r} and '
                    f'{self.optical!r} folders of SSL4EO-S12 in root={self.root!r}'
                )
                raise FileNotFoundError(msg)
            found[modality] = set()
            empty[modality] = 0
            with os.scandir(folder) as it:
                for entry in it:
                    if not entry.is_dir():
                        continue
                    if self._has_season(entry.path):
                        found[modality].add(entry.name)
                    else:
                        empty[modality] += 1

        ids1, ids2 = (found[m] for m in self.modalities)
        ids = sorted(ids1 & ids2)
        only = {self.sar: len(ids1 - ids2), self.optical: len(ids2 - ids1)}
        skipped = sum(only.values()) + sum(empty.values())
        if skipped:
            parts = [f'{n} only in {m}/' for m, n in only.items() if n]
            parts += [
                f'{n} in {m}/ without a season folder' for m, n in empty.items() if n
            ]
            msg = (
                f'SSL4EOS12Pair skipped {skipped} location(s) of {self.root}: '
                + ', '.join(parts)
            )
            warnings.warn(msg, UserWarning, stacklevel=3)
        if not ids:
            counts = ', '.join(f'{len(found[m])} in {m}/' for m in self.modalities)
            msg = (
                f'no location of {self.root} has data in both {self.sar}/ and '
                f'{self.optical}/ (locations with a season folder: {counts})'
            )
            raise FileNotFoundError(msg)
        return ids

    def _reference_seasons(self, modality: str) -> list[str]:
        """Season folders to read the layout from: the first location's first.

        With ``on_bad_sample='skip'`` every season of the first few locations
        follows, in case the first one is bad.

        Args:
            modality: Modality folder.

        Returns:
            Season folder paths, in the order to try them.
        """
        ids = self.ids[:1] if self.on_bad_sample == 'raise' else self.ids[:10]
        paths = []
        for location in ids:
            folder = os.path.join(self.root, modality, location)
            paths += [os.path.join(folder, s) for s in self._seasons(folder)]
        return paths[:1] if self.on_bad_sample == 'raise' else paths

    def _infer_size(self) -> int:
        """Read the tile size from the first Sentinel-1 band of the first location.

        Returns:
            The height of that band in pixels.

        Raises:
            FileNotFoundError: If the band file is missing.
            ValueError: If the band is not square or smaller than 6 pixels.
        """
        band = self.bands1[0]
        error: Exception | None = None
        for directory in self._reference_seasons(self.sar):
            path = os.path.join(directory, f'{band}.tif')
            try:
                shape = self._shape(path, band)
            except (FileNotFoundError, ValueError) as err:
                error = error or err
                continue
            if shape[0] != shape[1] or shape[0] < 6:
                msg = f'cannot infer the tile size from {path} of shape {shape}'
                raise ValueError(msg)
            return shape[0]
        assert error is not None
        raise error

    def _infer_layout(self) -> dict[str, int]:
        """Read the stored size of every band from the first readable season.

        Returns:
            ``{band: size in pixels}``.

        Raises:
            FileNotFoundError: If a band file is missing.
            ValueError: If a band is neither at its native resolution nor at
                ``size``.
        """
        layout = {}
        for modality, bands in zip(
            self.modalities, (self.bands1, self.bands2), strict=True
        ):
            error: Exception | None = None
            for directory in self._reference_seasons(modality):
                try:
                    layout.update(self._season_layout(directory, bands))
                    break
                except (FileNotFoundError, ValueError) as err:
                    error = error or err
            else:
                assert error is not None
                raise error
        return layout

    def _season_layout(self, directory: str, bands: tuple[str, ...]) -> dict[str, int]:
        """The stored size of every band of one season folder.

        Args:
            directory: Season folder.
            bands: Bands to look at.

        Returns:
            ``{band: size in pixels}``.

        Raises:
            FileNotFoundError: If a band file is missing.
            ValueError: If a band is unreadable, or neither at its native
                resolution nor at ``size``.
        """
        layout = {}
        for band in bands:
            path = os.path.join(directory, f'{band}.tif')
            shape = self._shape(path, band)
            native = round(self.size * 10 / band_resolution(band))
            if shape not in ((native, native), (self.size, self.size)):
                raise ValueError(self._size_message(path, band, shape))
            layout[band] = shape[0]
        return layout

    def _size_message(self, path: str, band: str, shape: tuple[int, int]) -> str:
        """Explain which shapes a band file may have.

        Args:
            path: The file.
            band: Its band.
            shape: Its shape.

        Returns:
            The error message.
        """
        native = round(self.size * 10 / band_resolution(band))
        expected = {(native, native), (self.size, self.size)}
        if hasattr(self, 'stored_size'):
            n = self.stored_size[band]
            expected = {(n, n)}
        shapes = ' or '.join(str(e) for e in sorted(expected))
        return (
            f'band {band} of {path} has shape {shape}, expected {shapes} for '
            f'size={self.size}'
        )

    @staticmethod
    def _shape(path: str, band: str) -> tuple[int, int]:
        """Read the height and width of a band file.

        Args:
            path: The file.
            band: Its band, for error messages.

        Returns:
            ``(height, width)``.

        Raises:
            FileNotFoundError: If the file is missing.
            ValueError: If the file cannot be opened.
        """
        if not os.path.exists(path):
            msg = f'band {band} not found: {path}'
            raise FileNotFoundError(msg)
        try:
            with rasterio.open(path) as f:
                return f.height, f.width
        except RasterioIOError as err:
            msg = f'cannot read band {band} from {path}: {err}'
            raise ValueError(msg) from err

    @staticmethod
    def _seasons(path: str) -> list[str]:
        """List the season (product) folders of a location.

        Args:
            path: Folder of one location of one modality.

        Returns:
            Sorted names of the season folders.
        """
        with os.scandir(path) as it:
            return sorted(e.name for e in it if e.is_dir())

    @staticmethod
    def _has_season(path: str) -> bool:
        """Whether a location folder has at least one season folder.

        Args:
            path: Folder of one location of one modality.

        Returns:
            True if a season folder exists.
        """
        with os.scandir(path) as it:
            return any(e.is_dir() for e in it)

    def __len__(self) -> int:
        """Return the number of locations with both modalities.

        Returns:
            Length of the dataset.
        """
        return len(self.ids)

    def groups(self, bands: tuple[str, ...]) -> dict[int, list[int]]:
        """Channel indices of *bands* grouped by stored size.

        Args:
            bands: Bands of one modality.

        Returns:
            ``{stored size: [channel index, ...]}``, the group of ``size``
            first.

        .. versionadded:: 0.1
        """
        groups: dict[int, list[int]] = {self.size: []}
        for i, band in enumerate(bands):
            groups.setdefault(self.stored_size[band], []).append(i)
        return groups

    def __getitem__(self, index: int) -> dict[str, Any]:
        """Return two views of each modality at one location.

        Seasons are drawn with Python's :mod:`random`; the datamodule seeds it
        for each sample
        (:class:`~torchgeo_decur.datamodules.sampling.SeededDataset`), which
        makes runs reproducible and resumable.

        Args:
            index: Index of the location.

        Returns:
            ``{'image1': Tensor[2, 2, size, size], 'image2': Tensor[2, C, size,
            size]}``, float32, raw values (dB and digital numbers); with
            ``resample='batch'``, ``image2`` holds the bands stored at
            ``size`` and ``image2@<n>`` those stored at ``n`` pixels. With
            ``on_bad_sample='skip'`` also ``skipped_samples`` (locations
            replaced, 0 or more), ``skipped_seasons`` (seasons replaced) and
            ``bad_files`` (``'path: reason'`` lines, empty if none).

        Raises:
            FileNotFoundError: If a band file is missing (``on_bad_sample=
                'raise'``).
            ValueError: If a band is unreadable, has an unexpected size or too
                many non-finite values (``on_bad_sample='raise'``).
            RuntimeError: If no readable location is found in
                ``max_location_attempts`` draws.
        """
        bad: list[str] = []
        replaced = [0]  # seasons replaced, in every location tried
        sample: dict[str, Any] = {}
        for attempt in range(self.max_location_attempts):
            location = self.ids[self._fallback(index, attempt)]
            try:
                sample = self._load_location(location, bad, replaced)
                break
            except _BadLocation:
                continue
        else:
            msg = (
                f'no readable location of {self.root} in {self.max_location_attempts} '
                f'draws starting at index {index}; bad files:\n' + '\n'.join(bad[-10:])
            )
            raise RuntimeError(msg)
        if self.resample == 'sample':
            sample = self.on_device(sample)
        if self.on_bad_sample == 'skip':
            sample['skipped_samples'] = torch.tensor(attempt)
            sample['skipped_seasons'] = torch.tensor(replaced[0])
            sample['bad_files'] = '\n'.join(bad)
        if self.transforms is not None:
            sample = self.transforms(sample)
        return sample

    def _fallback(self, index: int, attempt: int) -> int:
        """The location tried at an attempt: *index* first, then fixed draws.

        Args:
            index: The requested location.
            attempt: 0 for the first try.

        Returns:
            The location index, a function of *index* and *attempt* only.
        """
        if attempt == 0 or len(self) == 1:
            return index
        draw = int(np.random.default_rng([index, attempt]).integers(len(self) - 1))
        return draw + (draw >= index)  # never the requested location again

    def _load_location(
        self, location: str, bad: list[str], replaced: list[int]
    ) -> dict[str, Tensor]:
        """Load both modalities of one location.

        Args:
            location: Location id.
            bad: List to append the error of each bad file to.
            replaced: One-item counter of the seasons replaced.

        Returns:
            The raw sample.

        Raises:
            _BadLocation: If no season of a modality is readable (skip mode).
        """
        sample: dict[str, Tensor] = {}
        with rasterio.Env(**_GDAL_ENV), warnings.catch_warnings():
            warnings.simplefilter('ignore', NotGeoreferencedWarning)
            for key, modality, bands in (
                ('image1', self.sar, self.bands1),
                ('image2', self.optical, self.bands2),
            ):
                sample.update(
                    self._load_views(key, location, modality, bands, bad, replaced)
                )
        return sample

    def _load_views(
        self,
        key: str,
        location: str,
        modality: str,
        bands: tuple[str, ...],
        bad: list[str],
        replaced: list[int],
    ) -> dict[str, Tensor]:
        """Load two views of one modality, each of a randomly drawn season.

        A season with a bad band file is replaced by another season of the
        location, drawn from those left (``on_bad_sample='skip'``).

        Args:
            key: Sample key of the modality (``image1`` or ``image2``).
            location: Location id.
            modality: Modality folder.
            bands: Bands to read.
            bad: List to append the error of each bad file to.
            replaced: One-item counter of the seasons replaced.

        Returns:
            ``{key: Tensor[2, n, size, size]}`` with the bands stored at
            ``size`` and ``{f'{key}@{m}': Tensor[2, k, m, m]}`` for the bands
            stored at ``m`` pixels.

        Raises:
            FileNotFoundError: If the location has no season folder.
            _BadLocation: If no season is readable (skip mode).
        """
        folder = os.path.join(self.root, modality, location)
        seasons = self._seasons(folder) if os.path.isdir(folder) else []
        if not seasons:
            msg = f'{folder} has no season folder'
            if self.on_bad_sample == 'skip':
                bad.append(msg)
                raise _BadLocation(msg)
            raise FileNotFoundError(msg)
        groups = self.groups(bands)
        arrays = {
            n: np.empty((2, len(idx), n, n), dtype=np.float32)
            for n, idx in groups.items()
        }
        drawn = [random.choice(seasons) for _ in range(2)]
        read: dict[str, int] = {}
        failed: set[str] = set()
        for view in range(2):
            season = drawn[view]
            if season in failed:  # found bad for the first view: not read again
                season = random.choice([s for s in seasons if s not in failed])
            while True:
                if season in read:  # read each file once per sample
                    for array in arrays.values():
                        array[view] = array[read[season]]
                    break
                directory = os.path.join(folder, season)
                try:
                    for n, idx in groups.items():
                        for j, c in enumerate(idx):
                            self._read_band(directory, bands[c], arrays[n][view, j])
                    read[season] = view
                    break
                except (FileNotFoundError, ValueError) as err:
                    if self.on_bad_sample == 'raise':
                        raise
                    bad.append(str(err))
                    failed.add(season)
                    replaced[0] += 1
                    left = [s for s in seasons if s not in failed]
                    if not left:
                        raise _BadLocation(folder) from err
                    season = random.choice(left)
        out = {key: torch.from_numpy(arrays.pop(self.size))}
        out.update({f'{key}@{n}': torch.from_numpy(a) for n, a in arrays.items()})
        return out

    def read_season(
        self, key: str, directory: str | os.PathLike[str]
    ) -> dict[str, Tensor]:
        """Read every band of one season folder of one modality, raw.

        For callers that choose their seasons themselves (the lab's demo
        reads them all); :meth:`__getitem__` draws two per location.

        Args:
            key: ``image1`` (the SAR modality) or ``image2`` (the optical one).
            directory: The season folder.

        Returns:
            One view in the layout of samples with ``resample='batch'``:
            ``{key: [C, size, size]}`` with the bands stored at ``size`` and
            ``{f'{key}@{n}': [k, n, n]}`` with those stored at ``n`` pixels;
            :meth:`on_device` assembles them.

        Raises:
            FileNotFoundError: If a band file is missing.
            ValueError: If *key* is neither modality's, or a band is bad.
        """
        if key not in self.input_bands:
            msg = f"key must be 'image1' or 'image2', got {key!r}"
            raise ValueError(msg)
        bands = self.input_bands[key]
        groups = self.groups(bands)
        arrays = {n: np.empty((len(i), n, n), np.float32) for n, i in groups.items()}
        with rasterio.Env(**_GDAL_ENV), warnings.catch_warnings():
            warnings.simplefilter('ignore', NotGeoreferencedWarning)
            for n, idx in groups.items():
                for j, c in enumerate(idx):
                    self._read_band(os.fspath(directory), bands[c], arrays[n][j])
        out = {key: torch.from_numpy(arrays.pop(self.size))}
        out.update({f'{key}@{n}': torch.from_numpy(a) for n, a in arrays.items()})
        return out

    def _read_band(self, directory: str, band: str, out: NDArray[np.float32]) -> None:
        """Read one band file into *out*, checking its size and values.

        Non-finite pixels (no data) up to :attr:`max_nonfinite` of the band are
        filled with the median of its finite pixels; more make the band bad.

        Args:
            directory: Season folder.
            band: Band name.
            out: Array of the band's stored size to fill.

        Raises:
            FileNotFoundError: If the band file is missing.
            ValueError: If the band is unreadable, has an unexpected size or too
                many non-finite values.
        """
        path = os.path.join(directory, f'{band}.tif')
        try:
            # DatasetReader directly: rasterio.open would enter a new GDAL
            # environment for every file; __getitem__ holds one for all of them
            with DatasetReader(path, sharing=False, **_OPEN_OPTIONS) as f:
                shape = (f.height, f.width)
                if shape != out.shape:
                    raise ValueError(self._size_message(path, band, shape))
                f.read(1, out=out)
        except RasterioIOError as err:
            if not os.path.exists(path):
                msg = f'band {band} not found: {path}'
                raise FileNotFoundError(msg) from err
            msg = f'cannot read band {band} from {path}: {err}'
            raise ValueError(msg) from err
        finite = np.isfinite(out)
        if not finite.all():
            n = int(out.size - finite.sum())
            if n > self.max_nonfinite * out.size or n == out.size:
                msg = (
                    f'band {band} of {path} has {n} NaN or infinite pixel(s) '
                    f'(no data), more than max_nonfinite={self.max_nonfinite:g} '
                    'of the band'
                )
                raise ValueError(msg)
            out[~finite] = np.median(out[finite])

    def on_device(self, batch: dict[str, Any]) -> dict[str, Any]:
        """Resample the coarser bands to ``size`` and put every band in place.

        The datamodule calls this on each batch after transfer to the device
        when the dataset reads with ``resample='batch'``; ``__getitem__`` calls
        it on each sample with ``resample='sample'``. Bilinear, as the authors'
        ``cv2.resize(..., INTER_LINEAR_EXACT)``.

        Args:
            batch: A batch (or sample) with ``image1``, ``image2`` and the
                ``<key>@<n>`` band groups, any number of leading dimensions
                (samples, views) before ``(C, H, W)``.

        Returns:
            A new dict with full ``image1`` / ``image2`` and no band groups.

        .. versionadded:: 0.1
        """
        out = dict(batch)
        for key, bands in (('image1', self.bands1), ('image2', self.bands2)):
            groups = self.groups(bands)
            if len(groups) == 1 or f'{key}@{next(reversed(groups))}' not in batch:
                continue
            full = out.pop(key)
            lead = full.shape[:-3]
            image = full.new_empty(*lead, len(bands), self.size, self.size)
            image[..., groups[self.size], :, :] = full
            for n, idx in groups.items():
                if n == self.size:
                    continue
                group = out.pop(f'{key}@{n}')
                up = F.interpolate(
                    group.reshape(-1, *group.shape[-3:]),
                    size=(self.size, self.size),
                    mode='bilinear',
                    align_corners=False,
                )
                image[..., idx, :, :] = up.reshape(*lead, *up.shape[-3:])
            out[key] = image
        return out

    def plot(
        self,
        sample: dict[str, Tensor],
        show_titles: bool = True,
        suptitle: str | None = None,
    ) -> Figure:
        """Plot both views of both modalities of a sample.

        Shows Sentinel-1 VV (dB) and the Sentinel-2 RGB composite of each view.

        Args:
            sample: A sample returned by :meth:`__getitem__` (raw values).
            show_titles: Whether to show titles above each panel.
            suptitle: Optional suptitle.

        Returns:
            A matplotlib Figure with the rendered sample.

        .. versionadded:: 0.1
        """
        rgb = list(get_modality(self.optical).rgb_indices)
        fig, axes = plt.subplots(2, 2, figsize=(8, 8), squeeze=False)
        for v, view in enumerate('ab'):
            axes[0, v].imshow(sample['image1'][v, 0].numpy(), cmap='gray')
            image = sample['image2'][v, rgb].permute(1, 2, 0).numpy()
            # reflectance, brightened for display
            axes[1, v].imshow(np.clip(image / 10000 * 3, 0, 1))
            if show_titles:
                axes[0, v].set_title(f'S1 VV (dB), view {view}')
                axes[1, v].set_title(f'S2 RGB, view {view}')
            for ax in axes[:, v]:
                ax.axis('off')
        if suptitle is not None:
            fig.suptitle(suptitle)
        return fig
