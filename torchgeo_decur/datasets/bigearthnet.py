"""BigEarthNet-MM (Sentinel-1 + Sentinel-2) with the two modalities apart."""

import glob
import os
from collections.abc import Callable
from typing import ClassVar, Literal

import numpy as np
import rasterio
import torch
from rasterio.enums import Resampling
from torch import Tensor
from torchgeo.datasets import BigEarthNet
from torchgeo.datasets.utils import Path, Sample

from ..modalities import S2_L2A_BANDS
from .skipping import SkippingDataset

__all__ = ('BigEarthNetMM',)


def _file_band(band: str) -> str:
    """Name of a Sentinel-2 band in BigEarthNet file names (B1 -> B01).

    Args:
        band: Band name as in :data:`~torchgeo_decur.modalities.S2_L2A_BANDS`.

    Returns:
        The suffix of the band's file name.
    """
    return band if band == 'B8A' else f'B{int(band[1:]):02d}'


class BigEarthNetMM(BigEarthNet, SkippingDataset):
    """BigEarthNet v1.0 with Sentinel-1 and Sentinel-2, one key per modality.

    TorchGeo's :class:`~torchgeo.datasets.BigEarthNet` with ``bands='all'``
    (its file list, splits and labels), with its band reader changed:

    * bands are picked by file name, and the modalities are kept apart:
      ``image1`` is Sentinel-1 (VV, VH) and ``image2`` Sentinel-2 L2A in
      :attr:`input_bands` order. TorchGeo 0.10 sorts the Sentinel-1 files
      alphabetically, which gives (VH, VV), not the (VV, VH) its documentation
      states;
    * bands are read as float32, where TorchGeo reads them as int32 and so
      truncates the Sentinel-1 backscatter in dB to whole decibels.

    Values are raw (dB, digital numbers), resampled (bilinear) to 120 x 120 px
    as TorchGeo does::

        {'image1': Tensor[2, 120, 120], 'image2': Tensor[12, 120, 120],
         'label': Tensor[num_classes]}

    .. versionadded:: 0.1
    """

    #: Bands of ``image1`` and ``image2``, in channel order.
    input_bands: ClassVar[dict[str, tuple[str, ...]]] = {
        'image1': ('VV', 'VH'),
        'image2': S2_L2A_BANDS,
    }

    def __init__(
        self,
        root: Path = 'data',
        split: Literal['train', 'val', 'test'] = 'train',
        num_classes: int = 19,
        transforms: Callable[[Sample], Sample] | None = None,
        download: bool = False,
        checksum: bool = True,
        on_bad_sample: Literal['raise', 'skip'] = 'raise',
        max_sample_attempts: int = 10,
    ) -> None:
        """Initialize a new BigEarthNetMM instance.

        Args:
            root: Root directory where the dataset can be found.
            split: One of 'train', 'val' or 'test'.
            num_classes: Number of classes in the target, 19 or 43.
            transforms: A function/transform that takes a sample and returns
                a transformed version.
            download: If True, download the dataset into *root*.
            checksum: If True, check the MD5 of the downloaded files.
            on_bad_sample: What a bad sample (a missing or unreadable band
                file, a constant image) does: ``'raise'`` its error (the
                default: a replaced test sample would change the metric
                silently) or ``'skip'`` it (another sample is read, counted
                and named: :mod:`~torchgeo_decur.datasets.skipping`), e.g.
                for long fine-tuning runs.
            max_sample_attempts: Samples tried for one index before giving up.

        Raises:
            DatasetNotFoundError: If the dataset is not found and *download*
                is False.
            ValueError: If *on_bad_sample* or *max_sample_attempts* is invalid.
        """
        self.set_bad_sample_policy(on_bad_sample, max_sample_attempts)
        super().__init__(
            root, split, 'all', num_classes, transforms, download, checksum
        )

    def _band_paths(self, index: int, sensor: str, bands: tuple[str, ...]) -> list[str]:
        """Paths of the band files of one sensor of one sample, in band order.

        Args:
            index: Index of the sample.
            sensor: ``'s1'`` or ``'s2'``.
            bands: Bands wanted.

        Returns:
            The band file paths.

        Raises:
            FileNotFoundError: If a band file is missing.
        """
        folder = self.folders[index][sensor]
        files = glob.glob(os.path.join(folder, '*.tif'))
        by_band = {os.path.splitext(f)[0].rsplit('_', 1)[-1]: f for f in files}
        paths = []
        for band in bands:
            name = band if sensor == 's1' else _file_band(band)
            if name not in by_band:
                msg = f'band {name} of sample {index} not found in {folder}'
                raise FileNotFoundError(msg)
            paths.append(by_band[name])
        return paths

    def _read(self, paths: list[str]) -> Tensor:
        """Read bands at 120 x 120 px as float32.

        Args:
            paths: Band files.

        Returns:
            Tensor ``[len(paths), 120, 120]``.
        """
        images = []
        for path in paths:
            with rasterio.open(path) as dataset:
                images.append(
                    dataset.read(
                        indexes=1,
                        out_shape=self.image_size,
                        out_dtype='float32',
                        resampling=Resampling.bilinear,
                    )
                )
        return torch.from_numpy(np.stack(images, axis=0))

    __getitem__ = SkippingDataset.__getitem__

    def describe(self, index: int) -> str:
        """Name the folders of a sample, for messages.

        Args:
            index: Index of the sample.

        Returns:
            The S1 and S2 folders.
        """
        return ', '.join(self.folders[index][sensor] for sensor in ('s1', 's2'))

    def load_sample(self, index: int) -> Sample:
        """Return the two modalities and the labels of one sample.

        Args:
            index: Index of the sample.

        Returns:
            ``{'image1', 'image2', 'label'}``, raw values.
        """
        return {
            'image1': self._read(
                self._band_paths(index, 's1', self.input_bands['image1'])
            ),
            'image2': self._read(
                self._band_paths(index, 's2', self.input_bands['image2'])
            ),
            'label': self._load_target(index),
        }
