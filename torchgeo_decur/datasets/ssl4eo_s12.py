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
from .skipping import fallback_index

__all__ = ('SSL4EOS12Pair', 'band_resolution')

#: GDAL settings of the reader: no listing of the season folder at each open
#: (no sidecar files are used) and no georeferencing (only the pixels are
#: read; parsing the CRS is a large part of GDAL's cost of opening a small
#: file).
_GDAL_ENV = {'GDAL_DISABLE_READDIR_ON_OPEN': 'EMPTY_DIR'}
_OPEN_OPTIONS = {'GEOREF_SOURCES': 'NONE'}

#: Locations whose band layouts are read when the dataset is opened; the
#: layout most of them share is the dataset's.
_LAYOUT_LOCATIONS = 10

#: Fewest pixels of a band for a constant value other than 0 to make it bad
#: (32 x 32). Over that many pixels sensor noise and quantisation always vary a
#: real band (SSL4EO-S12's smallest, the 60 m bands, have 44 x 44 pixels);
#: a coarse band of a small tile can be flat (the lab demo's 8 x 8 pixel cirrus
#: band B10 at 48 px). An all-zero band (SSL4EO-S12's no-data value) is bad at
#: any size.
_MIN_CONSTANT_PIXELS = 1024

#: Files named in warnings about files that do not fit their modality, per
#: dataset and process; a systematic problem (a whole archive converted to
#: another unit) gives one last warning instead of a flood.
_MAX_WARNED_FILES = 20

#: How the error of a constant band reads (up to its value).
_CONSTANT = 'constant (all pixels = '

#: What the numpy dtype kinds of :attr:`SSL4EOS12Pair.dtype_kinds` mean.
_KIND_NAMES = {'f': 'floating point', 'u': 'unsigned integer', 'i': 'integer'}


class _BadLocation(Exception):
    """No season of a modality of a location can be read (skip mode)."""


def _is_dir(entry: os.DirEntry[str], problems: list[str] | None) -> bool:
    """Whether a folder entry is a folder, False if it cannot be followed.

    Args:
        entry: The entry.
        problems: List to append ``'path (error)'`` to if the entry cannot be
            followed (a symbolic link loop, a broken file system), if given.

    Returns:
        True for a folder or a link to one.
    """
    try:
        return entry.is_dir()
    except OSError as err:
        if problems is not None:
            problems.append(f'{entry.path} ({err.strerror or err})')
        return False


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
    layout (the stored size of every band, and ``size`` unless given) is the
    one most of the first ten locations share (ties: the earlier location's),
    so that one odd location is named in a warning rather than making every
    correct file look wrong; every file is checked against it.

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
    skipped with a single warning that says how many; so are entries that
    cannot be listed or followed (a symbolic link loop, a folder without read
    permission), which the warning names.

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
    preprocessing. A band whose pixels are all equal is bad too (all zeros at
    any size, another value on at least 32 x 32 pixels): a flat band is no
    measurement (a no-data fill, a failed conversion), and views of it teach
    the encoder to map a flat patch, not the scene. With
    ``on_bad_sample='raise'`` a bad file raises an error that names the file
    and band.

    A file that is read but does not fit its modality gets one
    :class:`UserWarning`: more than one band (band 1 is read), a dtype other
    than :attr:`dtype_kinds` says (Sentinel-1 as integers, Sentinel-2 as
    floats), or, for float files, values that fail the modality's
    :attr:`~torchgeo_decur.modalities.Modality.raw_check` (linear
    backscatter, reflectance in [0, 1]). Each file is named once per dataset
    and process (each DataLoader worker keeps its own record, so a file can be
    named once by each worker), the first 20 such files, then one warning that
    says more follow.

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

    #: numpy dtype kinds the files of each modality are expected in: floats
    #: (dB) for Sentinel-1, integers (digital numbers) for Sentinel-2.
    dtype_kinds: ClassVar[dict[str, str]] = {'s1': 'f', 's2c': 'ui', 's2a': 'ui'}

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
        both modalities, and reads the band layout most of the first ten
        share.

        Args:
            root: Root directory of SSL4EO-S12, with the ``s1`` folder and the
                *optical* folder.
            optical: Sentinel-2 product: ``'s2c'`` (L1C, 13 bands) or ``'s2a'``
                (L2A, 12 bands).
            transforms: A function/transform that takes a sample and returns a
                transformed version.
            size: Size in pixels of the 10 m bands (and of the output): 264 for
                SSL4EO-S12. If None, it is read from the first Sentinel-1 band
                of the first locations (the size most of them have).
            resample: Where coarser bands are resampled to ``size``: in every
                sample (``'sample'``), or on the batch by :meth:`on_device`
                (``'batch'``).
            on_bad_sample: What a bad band file (missing, unreadable, of the
                wrong size, constant, or with too many non-finite pixels) does:
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
                band files of the layout have unexpected sizes.
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

        #: Files warned about as not fitting their modality (in this process).
        self._warned_files: set[str] = set()
        self.ids = self._scan()
        #: Seasons whose files were checked for fit, a bit per season.
        self._checked_seasons = np.zeros((len(self.ids), 2), np.uint8)
        shapes = self._majority_shapes()
        #: Tile size in pixels of the 10 m bands (and of the output).
        self.size: int = size if size is not None else self._infer_size(shapes)
        #: Stored size in pixels of every band (the first locations' majority).
        self.stored_size: dict[str, int] = self._infer_layout(shapes)

    def _scan(self) -> list[str]:
        """Find the locations with at least one season in both modalities.

        Entries that cannot be listed or followed (a symbolic link loop, a
        folder without read permission) are skipped and named in the scan's
        warning.

        Returns:
            Sorted location ids.

        Raises:
            FileNotFoundError: If a modality folder is missing, or no location
                has data in both modalities.
        """
        found: dict[str, set[str]] = {}
        empty: dict[str, int] = {}
        problems: list[str] = []
        for modality in self.modalities:
            found[modality], empty[modality] = self._scan_modality(modality, problems)
        ids1, ids2 = (found[m] for m in self.modalities)
        ids = sorted(ids1 & ids2)
        only = {self.sar: len(ids1 - ids2), self.optical: len(ids2 - ids1)}
        self._warn_scan(only, empty, problems)
        if not ids:
            counts = ', '.join(f'{len(found[m])} in {m}/' for m in self.modalities)
            msg = (
                f'no location of {self.root} has data in both {self.sar}/ and '
                f'{self.optical}/ (locations with a season folder: {counts})'
            )
            raise FileNotFoundError(msg)
        return ids

    def _scan_modality(
        self, modality: str, problems: list[str]
    ) -> tuple[set[str], int]:
        """Find the locations of one modality that have a season folder.

        Args:
            modality: Modality folder.
            problems: List to append ``'path (error)'`` to for each entry that
                cannot be listed or followed.

        Returns:
            The location ids with a season folder, and the number without.

        Raises:
            FileNotFoundError: If the modality folder is missing.
        """
        folder = os.path.join(self.root, modality)
        if not os.path.isdir(folder):
            msg = (
                f'{folder} not found: SSL4EOS12Pair needs the {self.sar!r} and '
                f'{self.optical!r} folders of SSL4EO-S12 in root={self.root!r}'
            )
            raise FileNotFoundError(msg)
        found: set[str] = set()
        empty = 0
        with os.scandir(folder) as it:
            for entry in it:
                if not _is_dir(entry, problems):
                    continue
                if self._has_season(entry.path, problems):
                    found.add(entry.name)
                else:
                    empty += 1
        return found, empty

    def _warn_scan(
        self, only: dict[str, int], empty: dict[str, int], problems: list[str]
    ) -> None:
        """Warn once about the locations and entries the scan skipped.

        Args:
            only: Locations found in one modality only, by modality.
            empty: Locations without a season folder, by modality.
            problems: Entries that could not be listed or followed.
        """
        skipped = sum(only.values()) + sum(empty.values())
        if not skipped and not problems:
            return
        parts = [f'{n} only in {m}/' for m, n in only.items() if n]
        parts += [f'{n} in {m}/ without a season folder' for m, n in empty.items() if n]
        if problems:
            entries = 'entry' if len(problems) == 1 else 'entries'
            more = f' (and {len(problems) - 5} more)' if len(problems) > 5 else ''
            parts.append(
                f'{len(problems)} unreadable {entries} skipped: '
                + ', '.join(problems[:5])
                + more
            )
        head = f'skipped {skipped} location(s) of' if skipped else 'scanned'
        msg = f'SSL4EOS12Pair {head} {self.root}: ' + ', '.join(parts)
        warnings.warn(msg, UserWarning, stacklevel=4)

    def _majority_shapes(self) -> dict[str, tuple[str, tuple[int, int]]]:
        """The band shapes most of the first locations share.

        Each of the first ten locations gives the shapes of every band of its
        first readable season of each modality (of its first season with
        ``on_bad_sample='raise'``). The shapes most of them share win (ties:
        the earlier location's); the other locations are named in a warning,
        since their files will be found bad. Reading one location only, a
        wrongly sized first location made every correct file look wrong.

        Returns:
            ``{band: (path, (height, width))}`` of a location of the majority.

        Raises:
            FileNotFoundError: If a band file of the first location is missing
                (``on_bad_sample='raise'``), or of every location looked at.
            ValueError: If such a band file cannot be read.
        """
        found: dict[str, dict[str, tuple[str, tuple[int, int]]]] = {}
        votes: dict[tuple[tuple[int, int], ...], list[str]] = {}
        error: Exception | None = None
        for i, location in enumerate(self.ids[:_LAYOUT_LOCATIONS]):
            try:
                found[location] = self._location_shapes(location)
            except (FileNotFoundError, ValueError) as err:
                if i == 0 and self.on_bad_sample == 'raise':
                    raise
                error = error or err
                continue
            key = tuple(shape for _, shape in found[location].values())
            votes.setdefault(key, []).append(location)
        if not votes:
            assert error is not None
            raise error
        majority = max(votes, key=lambda k: len(votes[k]))  # the first of a tie
        reference = found[votes[majority][0]]
        odd = [loc for key, locs in votes.items() if key != majority for loc in locs]
        if odd:
            self._warn_odd_layouts(odd, reference, found, len(votes[majority]))
        return reference

    def _location_shapes(self, location: str) -> dict[str, tuple[str, tuple[int, int]]]:
        """The shapes of every band of one location's first readable seasons.

        Args:
            location: Location id.

        Returns:
            ``{band: (path, (height, width))}`` for the bands of both
            modalities.

        Raises:
            FileNotFoundError: If a band file or the season folders are missing.
            ValueError: If a band file cannot be read.
        """
        shapes = {}
        for modality, bands in zip(
            self.modalities, (self.bands1, self.bands2), strict=True
        ):
            folder = os.path.join(self.root, modality, location)
            seasons = self._seasons(folder)
            error: Exception | None = None
            for season in seasons[:1] if self.on_bad_sample == 'raise' else seasons:
                try:
                    shapes.update(
                        self._season_shapes(os.path.join(folder, season), bands)
                    )
                    break
                except (FileNotFoundError, ValueError) as err:
                    error = error or err
            else:
                raise error or FileNotFoundError(f'{folder} has no season folder')
        return shapes

    def _season_shapes(
        self, directory: str, bands: tuple[str, ...]
    ) -> dict[str, tuple[str, tuple[int, int]]]:
        """The shape of every band file of one season folder.

        Args:
            directory: Season folder.
            bands: Bands to look at.

        Returns:
            ``{band: (path, (height, width))}``.

        Raises:
            FileNotFoundError: If a band file is missing.
            ValueError: If a band file cannot be read.
        """
        shapes = {}
        for band in bands:
            path = os.path.join(directory, f'{band}.tif')
            shapes[band] = (path, self._shape(path, band))
        return shapes

    def _warn_odd_layouts(
        self,
        odd: list[str],
        reference: dict[str, tuple[str, tuple[int, int]]],
        found: dict[str, dict[str, tuple[str, tuple[int, int]]]],
        agree: int,
    ) -> None:
        """Name the locations whose band shapes differ from the majority's.

        Args:
            odd: The locations whose shapes differ.
            reference: The majority's shapes, ``{band: (path, shape)}``.
            found: The shapes of each location looked at.
            agree: How many locations share the majority's shapes.
        """
        details = []
        for location in odd[:5]:
            band = next(
                b for b, (_, s) in reference.items() if found[location][b][1] != s
            )
            path, shape = found[location][band]
            details.append(
                f'{location} ({path} has shape {shape}, not {reference[band][1]})'
            )
        msg = (
            f'SSL4EOS12Pair: the band layout of {self.root} is that of {agree} of '
            f'the first {agree + len(odd)} readable locations; the files of '
            f'{len(odd)} other location(s) have other shapes and will be found '
            'bad: ' + ', '.join(details)
        )
        warnings.warn(msg, UserWarning, stacklevel=4)

    def _infer_size(self, shapes: dict[str, tuple[str, tuple[int, int]]]) -> int:
        """Read the tile size from the first Sentinel-1 band of the layout.

        Args:
            shapes: The majority's band shapes, ``{band: (path, shape)}``.

        Returns:
            The height of that band in pixels.

        Raises:
            ValueError: If the band is not square or smaller than 6 pixels.
        """
        path, shape = shapes[self.bands1[0]]
        if shape[0] != shape[1] or shape[0] < 6:
            msg = f'cannot infer the tile size from {path} of shape {shape}'
            raise ValueError(msg)
        return shape[0]

    def _infer_layout(
        self, shapes: dict[str, tuple[str, tuple[int, int]]]
    ) -> dict[str, int]:
        """Check the majority's band shapes against ``size``.

        Args:
            shapes: The majority's band shapes, ``{band: (path, shape)}``.

        Returns:
            ``{band: size in pixels}``.

        Raises:
            ValueError: If a band is neither at its native resolution nor at
                ``size``.
        """
        layout = {}
        for band, (path, shape) in shapes.items():
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
    def _seasons(path: str, problems: list[str] | None = None) -> list[str]:
        """List the season (product) folders of a location.

        Entries that cannot be followed (a symbolic link loop) are left out,
        as is everything if the folder cannot be listed.

        Args:
            path: Folder of one location of one modality.
            problems: List to append ``'path (error)'`` to for each entry left
                out, if given.

        Returns:
            Sorted names of the season folders.
        """
        try:
            with os.scandir(path) as it:
                return sorted(e.name for e in it if _is_dir(e, problems))
        except OSError as err:
            if problems is not None:
                problems.append(f'{path} ({err.strerror or err})')
            return []

    @classmethod
    def _has_season(cls, path: str, problems: list[str] | None = None) -> bool:
        """Whether a location folder has at least one season folder.

        Args:
            path: Folder of one location of one modality.
            problems: List to append ``'path (error)'`` to for each entry that
                cannot be listed or followed, if given.

        Returns:
            True if a season folder exists.
        """
        return bool(cls._seasons(path, problems))

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
            try:
                sample = self._load_location(
                    self._fallback(index, attempt), bad, replaced
                )
                break
            except _BadLocation:
                continue
        else:
            raise RuntimeError(self._no_location_message(index, bad))
        if self.resample == 'sample':
            sample = self.on_device(sample)
        if self.on_bad_sample == 'skip':
            sample['skipped_samples'] = torch.tensor(attempt)
            sample['skipped_seasons'] = torch.tensor(replaced[0])
            sample['bad_files'] = '\n'.join(bad)
        if self.transforms is not None:
            sample = self.transforms(sample)
        return sample

    def _no_location_message(self, index: int, bad: list[str]) -> str:
        """Explain why no location could be read for a sample.

        Args:
            index: The requested location.
            bad: The error of each bad file met.

        Returns:
            The message, which says so when every bad file was constant (the
            data set, or this part of it, holds no data: e.g. zero-filled by an
            interrupted download or a conversion).
        """
        msg = (
            f'no readable location of {self.root} in {self.max_location_attempts} '
            f'draws starting at index {index}'
        )
        if bad and all(_CONSTANT in line for line in bad):
            msg += (
                f': all {len(bad)} bad files were constant (every pixel equal), '
                'so the data set (or this part of it) holds no data: was it '
                'zero-filled by an interrupted download or a failed conversion?'
            )
        return msg + '; bad files:\n' + '\n'.join(bad[-10:])

    def _fallback(self, index: int, attempt: int) -> int:
        """The location tried at an attempt (:func:`fallback_index`)."""
        return fallback_index(index, attempt, len(self))

    def _load_location(
        self, index: int, bad: list[str], replaced: list[int]
    ) -> dict[str, Tensor]:
        """Load both modalities of one location.

        Args:
            index: Index of the location.
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
                    self._load_views(key, index, modality, bands, bad, replaced)
                )
        return sample

    def _load_views(
        self,
        key: str,
        index: int,
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
            index: Index of the location.
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
        folder = os.path.join(self.root, modality, self.ids[index])
        problems: list[str] = []
        seasons = self._seasons(folder, problems) if os.path.isdir(folder) else []
        if not seasons:
            msg = f'{folder} has no season folder'
            msg += f' ({", ".join(problems)})' if problems else ''
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
                record = (index, self.modalities.index(modality), seasons.index(season))
                try:
                    self._read_view(
                        os.path.join(folder, season), bands, arrays, view, record
                    )
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

    def _read_view(
        self,
        directory: str,
        bands: tuple[str, ...],
        arrays: dict[int, NDArray[np.float32]],
        view: int,
        record: tuple[int, int, int],
    ) -> None:
        """Read every band of one season folder into one view.

        Args:
            directory: Season folder.
            bands: Bands to read.
            arrays: ``{stored size: array[2, k, n, n]}`` of the views, filled.
            view: The view (0 or 1).
            record: Location index, modality slot and season index, to check
                the files for fit on their first read only (:meth:`_fit_checked`).

        Raises:
            FileNotFoundError: If a band file is missing.
            ValueError: If a band is bad.
        """
        fit = not self._fit_checked(*record)
        for n, idx in self.groups(bands).items():
            for j, c in enumerate(idx):
                self._read_band(directory, bands[c], arrays[n][view, j], fit)
        self._fit_checked(*record, mark=True)

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

    def _fit_checked(
        self, index: int, slot: int, season: int, mark: bool = False
    ) -> bool:
        """Whether the files of a season were checked for fit (in this process).

        One bit per season of each location and modality (the first eight
        seasons; 2 bytes per location): :meth:`_check_fit` looks at each file
        once per process, not at every read. Checking at every read cost 2.7 %
        of the time to read a sample (``benchmarks/ssl4eo_checks.py``, 264 px,
        one thread), later reads 0.9 % (the constant check, which has to run
        at every read, and the bookkeeping).

        Args:
            index: Index of the location.
            slot: 0 for the SAR modality, 1 for the optical one.
            season: Index of the season among the location's.
            mark: Whether to record the season as checked.

        Returns:
            True if the season's files were checked (before this call).
        """
        record = self._checked_seasons
        if index >= len(record) or season >= 8:
            return False
        bit = np.uint8(1 << season)
        checked = bool(record[index, slot] & bit)
        if mark:
            record[index, slot] |= bit
        return checked

    def _read_band(
        self,
        directory: str,
        band: str,
        out: NDArray[np.float32],
        check_fit: bool = True,
    ) -> None:
        """Read one band file into *out*, checking its size and values.

        Non-finite pixels (no data) up to :attr:`max_nonfinite` of a float
        band are filled with the median of its finite pixels; more make the
        band bad, as a constant band does (:meth:`_check_constant`). A file
        that does not fit its modality is read, with a warning
        (:meth:`_check_fit`).

        Args:
            directory: Season folder.
            band: Band name.
            out: Array of the band's stored size to fill.
            check_fit: Whether to check that the file fits its modality.

        Raises:
            FileNotFoundError: If the band file is missing.
            ValueError: If the band is unreadable, has an unexpected size, too
                many non-finite values or a single value.
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
                dtype = f.dtypes[0]
                count = f.count if check_fit else 1
        except RasterioIOError as err:
            if not os.path.exists(path):
                msg = f'band {band} not found: {path}'
                raise FileNotFoundError(msg) from err
            msg = f'cannot read band {band} from {path}: {err}'
            raise ValueError(msg) from err
        if dtype.startswith('float') or dtype.startswith('complex'):
            self._fill_nonfinite(out, path, band)  # integers are all finite
        self._check_constant(out, path, band)
        if check_fit:
            self._check_fit(out, path, band, count, dtype)

    def _fill_nonfinite(self, out: NDArray[np.float32], path: str, band: str) -> None:
        """Fill a few non-finite pixels with the median of the finite ones.

        Args:
            out: The band, filled in place.
            path: Its file, for the error message.
            band: Its band, for the error message.

        Raises:
            ValueError: If more than :attr:`max_nonfinite` of the pixels, or
                all of them, are NaN or infinite.
        """
        finite = np.isfinite(out)
        if finite.all():
            return
        n = int(out.size - finite.sum())
        if n > self.max_nonfinite * out.size or n == out.size:
            msg = (
                f'band {band} of {path} has {n} NaN or infinite pixel(s) '
                f'(no data), more than max_nonfinite={self.max_nonfinite:g} '
                'of the band'
            )
            raise ValueError(msg)
        out[~finite] = np.median(out[finite])

    @staticmethod
    def _check_constant(out: NDArray[np.float32], path: str, band: str) -> None:
        """Make a band whose pixels are all equal bad.

        A constant band is no measurement: sensor noise and quantisation vary
        every real band, so a flat one is a fill value (SSL4EO-S12's no-data
        0, a conversion that wrote nothing). It carries nothing to learn: its
        views are flat patches, and an encoder fed them learns to map a flat
        patch rather than the scene. All zeros are bad at any size, another
        value on at least ``_MIN_CONSTANT_PIXELS`` (32 x 32) pixels: smaller
        coarse bands can be flat for real (a 60 m cirrus band of a small
        tile).

        A real band differs at one of the first few pixels looked at (four,
        spread over the tile), so the check costs almost nothing: 0.5 us on a
        264 x 264 band (2 us between GDAL reads), against 7 us for ``min ==
        max`` (8 us for ``np.ptp``) and about 200 us to read the band. Only a
        band flat at those pixels is compared in full.

        Args:
            out: The band.
            path: Its file, for the error message.
            band: Its band, for the error message.

        Raises:
            ValueError: If the band is constant.
        """
        flat = out.reshape(-1)
        item, n = flat.item, flat.size
        first = item(0)
        if item(n - 1) != first or item(n // 2) != first or item(n // 3) != first:
            return
        if flat.min() != flat.max() or (first != 0 and n < _MIN_CONSTANT_PIXELS):
            return
        first = flat[0]  # numpy's shortest repr in the message: 0.0, -5.1
        msg = (
            f'band {band} of {path} is {_CONSTANT}{first}): no measurement, a '
            'flat patch to learn from'
        )
        raise ValueError(msg)

    def _check_fit(
        self, out: NDArray[np.float32], path: str, band: str, count: int, dtype: str
    ) -> None:
        """Warn, once per file, when a band file does not fit its modality.

        Looks at the number of bands (1 expected), the dtype
        (:attr:`dtype_kinds`) and, for float files, the values: the
        modality's :attr:`~torchgeo_decur.modalities.Modality.raw_check`.
        Rescaled inputs (linear backscatter, reflectance in [0, 1]) are
        floats, and an integer file is checked by its dtype.

        A record of the files warned about is kept per dataset, hence per
        DataLoader worker process: each worker warns once about a file.
        :meth:`__getitem__` checks a season's files on their first read in
        each process only (:meth:`_fit_checked`).

        Args:
            out: The band as read.
            path: Its file.
            band: Its band.
            count: The number of bands of the file.
            dtype: Its dtype.
        """
        if path in self._warned_files or len(self._warned_files) > _MAX_WARNED_FILES:
            return
        modality = self.sar if band in self.bands1 else self.optical
        problems = []
        if count != 1:
            problems.append(f'{count} bands, expected 1 (band 1 is read)')
        kind = np.dtype(dtype).kind
        kinds = self.dtype_kinds.get(modality)
        if kinds is not None and kind not in kinds:
            expected = ' or '.join(_KIND_NAMES.get(k, k) for k in kinds)
            problems.append(f'dtype {dtype}, expected {expected}')
        if kind == 'f':
            problem = self._raw_problem(out, modality)
            if problem is not None:
                problems.append(problem)
        if problems:
            self._warn_file(path, band, modality, problems)

    @staticmethod
    def _raw_problem(out: NDArray[np.float32], modality: str) -> str | None:
        """Run the modality's raw check on a band, a sample of its pixels first.

        The check runs on the whole band only if it fails on every 8th row
        and column of a 264 px band (1/64 of the pixels): what it looks for
        (a file in another unit) shows on any sample of the pixels.

        Args:
            out: The band.
            modality: Its modality.

        Returns:
            The check's message, or None if the band passes (or the modality
            has no check).
        """
        check = get_modality(modality).raw_check
        if check is None:
            return None
        step = max(1, out.shape[0] // 32)
        sample = out[::step, ::step]
        if check(torch.from_numpy(sample)) is None:
            return None
        return check(torch.from_numpy(out))

    def _warn_file(
        self, path: str, band: str, modality: str, problems: list[str]
    ) -> None:
        """Warn about a file that does not fit its modality.

        Args:
            path: The file.
            band: Its band.
            modality: Its modality.
            problems: What does not fit.
        """
        self._warned_files.add(path)
        if len(self._warned_files) > _MAX_WARNED_FILES:
            msg = (
                f'SSL4EOS12Pair: more than {_MAX_WARNED_FILES} files of {self.root} '
                'do not fit their modality; no further one is named'
            )
        else:
            raw = get_modality(modality).raw or modality
            msg = (
                f'band {band} of {path} does not fit modality {modality!r} ({raw}): '
                + '; '.join(problems)
                + ' (the file is read as it is)'
            )
        warnings.warn(msg, UserWarning, stacklevel=2)

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
