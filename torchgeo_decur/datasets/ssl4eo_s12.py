"""Paired Sentinel-1 / Sentinel-2 samples from SSL4EO-S12."""

import os
import random
import warnings
from collections.abc import Callable
from typing import ClassVar, Literal

import numpy as np
import rasterio
import torch
import torch.nn.functional as F
from matplotlib import pyplot as plt
from matplotlib.figure import Figure
from rasterio.errors import RasterioIOError
from torch import Tensor
from torchgeo.datasets import (
    SSL4EOS12,
    DatasetNotFoundError,
    NonGeoDataset,
    Sentinel2,
)

from .normalize import normalize_s1, normalize_s2

__all__ = ('SSL4EOS12Pair', 'band_resolution')


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


class SSL4EOS12Pair(NonGeoDataset):
    """Co-located Sentinel-1 and Sentinel-2 patches of SSL4EO-S12, for DeCUR.

    `SSL4EO-S12 <https://github.com/zhu-xlab/SSL4EO-S12>`__ holds, for about
    250,000 locations, four seasonal patches of Sentinel-1 GRD (``s1``) and
    Sentinel-2 L1C (``s2c``) and L2A (``s2a``)::

        root/s1/0000000/S1A_IW_GRDH_1SDV_20200329T.../{VV,VH}.tif
        root/s2c/0000000/20200323T162931_20200323T163750_T15QXA/B1.tif ... B12.tif

    Each band is stored at its native resolution: the 10 m bands (and both
    Sentinel-1 polarisations) as ``size x size`` pixels, the 20 m bands as
    ``size / 2`` and the 60 m bands as ``size / 6`` (264, 132 and 44 pixels in
    the real dataset). Coarser bands are resampled bilinearly to
    ``size x size``; bands already stored at ``size x size`` are accepted too.
    Unless given, the tile size is read from the data (the first Sentinel-1
    band), and every band file is checked against it.

    A sample holds two views per modality, each from a season drawn at random
    (independently for each of the four views, with Python's :mod:`random`, so
    DataLoader workers draw differently)::

        {'image1': Tensor[2, 2, size, size],   # Sentinel-1 VV, VH: views a, b
         'image2': Tensor[2, C, size, size]}   # Sentinel-2 (C = 13 or 12 bands)

    Preprocessing follows the DeCUR authors' code that produced the published
    weights (see :mod:`torchgeo_decur.datasets.normalize`), giving values in
    ``[0, 1]``: Sentinel-2 digital numbers become ``clip(x / 10000, 0, 1)``;
    Sentinel-1 backscatter (dB) is clipped per image and band to its 1st and
    99th percentiles and stretched from ``mean - 2 std`` to ``mean + 2 std``
    onto ``[0, 1]`` (VV: -12.548 / 5.257, VH: -20.192 / 5.912 dB).

    Locations present in only one modality, or without any season folder, are
    skipped with a single warning that says how many.

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

    rgb_bands = ('B4', 'B3', 'B2')

    def __init__(
        self,
        root: str | os.PathLike[str] = 'data',
        optical: Literal['s2c', 's2a'] = 's2c',
        transforms: Callable[[dict[str, Tensor]], dict[str, Tensor]] | None = None,
        size: int | None = None,
    ) -> None:
        """Initialize a new SSL4EOS12Pair instance.

        Scans *root* once for the locations that have at least one season in
        both modalities.

        Args:
            root: Root directory of SSL4EO-S12, with the ``s1`` folder and the
                *optical* folder.
            optical: Sentinel-2 product: ``'s2c'`` (L1C, 13 bands) or ``'s2a'``
                (L2A, 12 bands).
            transforms: A function/transform that takes a sample and returns a
                transformed version.
            size: Size in pixels of the 10 m bands (and of the output): 264 for
                SSL4EO-S12. If None, it is read from the first Sentinel-1 band
                of the first location; every band is checked against it.

        Raises:
            DatasetNotFoundError: If *root* does not exist.
            FileNotFoundError: If a modality folder is missing, or no location
                has data in both modalities.
            ValueError: If *optical* or *size* is invalid.
        """
        if optical not in ('s2c', 's2a'):
            msg = f"optical must be 's2c' or 's2a', got {optical!r}"
            raise ValueError(msg)
        if size is not None and size < 6:
            msg = f'size must be >= 6, got {size}'
            raise ValueError(msg)

        self.root = os.fspath(root)
        self.optical = optical
        self.transforms = transforms
        self.modalities = (self.sar, optical)
        self.bands1 = self.modality_bands[self.sar]
        self.bands2 = self.modality_bands[optical]

        if not os.path.isdir(self.root):
            raise DatasetNotFoundError(self)

        self.ids = self._scan()
        #: Tile size in pixels of the 10 m bands (and of the output).
        self.size: int = size if size is not None else self._infer_size()

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

    def _infer_size(self) -> int:
        """Read the tile size from the first Sentinel-1 band of the first location.

        Returns:
            The height of that band in pixels.

        Raises:
            FileNotFoundError: If the band file is missing.
            ValueError: If the band is not square or smaller than 6 pixels.
        """
        folder = os.path.join(self.root, self.sar, self.ids[0])
        path = os.path.join(folder, self._seasons(folder)[0], f'{self.bands1[0]}.tif')
        if not os.path.exists(path):
            msg = f'band {self.bands1[0]} not found: {path}'
            raise FileNotFoundError(msg)
        with rasterio.open(path) as f:
            shape = (f.height, f.width)
        if shape[0] != shape[1] or shape[0] < 6:
            msg = f'cannot infer the tile size from {path} of shape {shape}'
            raise ValueError(msg)
        return shape[0]

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

    def __getitem__(self, index: int) -> dict[str, Tensor]:
        """Return two views of each modality at one location.

        Args:
            index: Index of the location.

        Returns:
            ``{'image1': Tensor[2, 2, size, size], 'image2': Tensor[2, C, size,
            size]}``, float32, preprocessed to ``[0, 1]``.

        Raises:
            FileNotFoundError: If a location or band file is missing.
            ValueError: If a band has an unexpected size or non-finite values.
        """
        location = self.ids[index]
        sample = {
            'image1': self._load_views(location, self.sar, self.bands1),
            'image2': self._load_views(location, self.optical, self.bands2),
        }
        if self.transforms is not None:
            sample = self.transforms(sample)
        return sample

    def _load_views(
        self, location: str, modality: str, bands: tuple[str, ...]
    ) -> Tensor:
        """Load two views of one modality, each of a randomly drawn season.

        Args:
            location: Location id.
            modality: Modality folder.
            bands: Bands to read.

        Returns:
            Tensor of shape ``[2, len(bands), size, size]``.

        Raises:
            FileNotFoundError: If the location has no season folder.
        """
        folder = os.path.join(self.root, modality, location)
        seasons = self._seasons(folder) if os.path.isdir(folder) else []
        if not seasons:
            msg = f'{folder} has no season folder'
            raise FileNotFoundError(msg)
        drawn = [random.choice(seasons) for _ in range(2)]
        images: dict[str, Tensor] = {}
        for season in drawn:
            if season not in images:  # read each file once per sample
                images[season] = self._load_image(
                    os.path.join(folder, season), modality, bands
                )
        return torch.stack([images[season] for season in drawn])

    def _load_image(
        self, directory: str, modality: str, bands: tuple[str, ...]
    ) -> Tensor:
        """Load and normalise the bands of one season.

        Args:
            directory: Season folder.
            modality: Modality folder.
            bands: Bands to read.

        Returns:
            Tensor of shape ``[len(bands), size, size]``.
        """
        image = torch.stack([self._read_band(directory, band) for band in bands])
        if modality == self.sar:
            return normalize_s1(image)
        return normalize_s2(image)

    def _read_band(self, directory: str, band: str) -> Tensor:
        """Read one band file, check it and resample it to ``size x size``.

        Args:
            directory: Season folder.
            band: Band name.

        Returns:
            Tensor of shape ``[size, size]``, float32.

        Raises:
            FileNotFoundError: If the band file is missing.
            ValueError: If the band has an unexpected size or non-finite values.
        """
        path = os.path.join(directory, f'{band}.tif')
        try:
            with rasterio.open(path) as f:
                shape = (f.height, f.width)
                native = round(self.size * 10 / band_resolution(band))
                if shape not in ((native, native), (self.size, self.size)):
                    expected = f'({native}, {native})'
                    if native != self.size:
                        expected += f' or ({self.size}, {self.size})'
                    msg = (
                        f'band {band} of {path} has shape {shape}, expected '
                        f'{expected} for size={self.size}'
                    )
                    raise ValueError(msg)
                array = f.read(1)
        except RasterioIOError as err:
            if not os.path.exists(path):
                msg = f'band {band} not found: {path}'
                raise FileNotFoundError(msg) from err
            msg = f'cannot read band {band} from {path}: {err}'
            raise ValueError(msg) from err
        if array.dtype.kind == 'f' and not np.isfinite(array).all():
            n = int((~np.isfinite(array)).sum())
            msg = f'band {band} of {path} has {n} NaN or infinite pixel(s) (no data)'
            raise ValueError(msg)
        x = torch.from_numpy(array.astype(np.float32))
        if shape != (self.size, self.size):
            x = F.interpolate(
                x[None, None], size=(self.size, self.size), mode='bilinear'
            )[0, 0]
        return x

    def plot(
        self,
        sample: dict[str, Tensor],
        show_titles: bool = True,
        suptitle: str | None = None,
    ) -> Figure:
        """Plot both views of both modalities of a sample.

        Shows Sentinel-1 VV and the Sentinel-2 RGB composite of each view.

        Args:
            sample: A sample returned by :meth:`__getitem__`.
            show_titles: Whether to show titles above each panel.
            suptitle: Optional suptitle.

        Returns:
            A matplotlib Figure with the rendered sample.

        .. versionadded:: 0.1
        """
        rgb = [self.bands2.index(b) for b in self.rgb_bands]
        fig, axes = plt.subplots(2, 2, figsize=(8, 8), squeeze=False)
        for v, view in enumerate('ab'):
            axes[0, v].imshow(sample['image1'][v, 0].numpy(), cmap='gray')
            image = sample['image2'][v, rgb].permute(1, 2, 0).numpy()
            axes[1, v].imshow(np.clip(image * 3, 0, 1))  # reflectance, brightened
            if show_titles:
                axes[0, v].set_title(f'S1 VV, view {view}')
                axes[1, v].set_title(f'S2 RGB, view {view}')
            for ax in axes[:, v]:
                ax.axis('off')
        if suptitle is not None:
            fig.suptitle(suptitle)
        return fig
