"""BigEarthNet-MM (Sentinel-1 + Sentinel-2) datamodule for DeCUR transfer."""

import glob
import os
from collections.abc import Callable
from typing import Any, Literal

import kornia.augmentation as K
import numpy as np
import rasterio
import torch
from rasterio.enums import Resampling
from torch import Tensor
from torchgeo.datasets import BigEarthNet
from torchgeo.datasets.utils import Path, Sample

from ..datasets.modalities import S2_L1C_BANDS, S2_L2A_BANDS
from ..datasets.normalize import normalize_s1, normalize_s2
from .utils import FractionDataModule, PairedAugmentation, subset_fraction

#: Sentinel-1 bands in the order the DeCUR SAR encoder expects.
S1_BANDS = ('VV', 'VH')


def _file_band(band: str) -> str:
    """Name of a Sentinel-2 band in BigEarthNet file names (B1 -> B01).

    Args:
        band: Band name as in :data:`~torchgeo_decur.datasets.modalities`.

    Returns:
        The suffix of the band's file name.
    """
    return band if band == 'B8A' else f'B{int(band[1:]):02d}'


class BigEarthNetMM(BigEarthNet):
    """BigEarthNet v1.0 with Sentinel-1 and Sentinel-2, bands in a fixed order.

    TorchGeo's :class:`~torchgeo.datasets.BigEarthNet` with ``bands='all'``,
    with two changes to its band reader:

    * bands are picked by file name: ``image`` is always (VV, VH, B01, B02,
      B03, B04, B05, B06, B07, B08, B8A, B09, B11, B12). TorchGeo 0.10 sorts
      the Sentinel-1 files alphabetically, which gives (VH, VV), not the
      (VV, VH) its documentation states;
    * bands are read as float32, where TorchGeo reads them as int32 and so
      truncates the Sentinel-1 backscatter in dB to whole decibels.

    All bands are resampled (bilinear) to 120 x 120 px as TorchGeo does.

    .. versionadded:: 0.1
    """

    def __init__(
        self,
        root: Path = 'data',
        split: Literal['train', 'val', 'test'] = 'train',
        bands: Literal['s1', 's2', 'all'] = 'all',
        num_classes: int = 19,
        transforms: Callable[[Sample], Sample] | None = None,
        download: bool = False,
        checksum: bool = True,
    ) -> None:
        """Initialize a new BigEarthNetMM instance.

        Args:
            root: Root directory where the dataset can be found.
            split: One of 'train', 'val' or 'test'.
            bands: Must be 'all' (Sentinel-1 and Sentinel-2).
            num_classes: Number of classes in the target, 19 or 43.
            transforms: A function/transform that takes a sample and returns
                a transformed version.
            download: If True, download the dataset into *root*.
            checksum: If True, check the MD5 of the downloaded files.

        Raises:
            ValueError: If *bands* is not ``'all'``.
            DatasetNotFoundError: If the dataset is not found and *download*
                is False.
        """
        if bands != 'all':
            msg = f"BigEarthNetMM needs bands='all' (S1 and S2), got {bands!r}"
            raise ValueError(msg)
        super().__init__(
            root, split, bands, num_classes, transforms, download, checksum
        )

    def _load_paths(self, index: int) -> list[str]:
        """Paths of the band files of one sample, in :attr:`image` order.

        Args:
            index: Index of the sample.

        Returns:
            The 14 band file paths.

        Raises:
            FileNotFoundError: If a band file is missing.
        """
        paths = []
        wanted = {
            's1': S1_BANDS,
            's2': tuple(_file_band(b) for b in S2_L2A_BANDS),
        }
        for sensor, bands in wanted.items():
            folder = self.folders[index][sensor]
            files = glob.glob(os.path.join(folder, '*.tif'))
            by_band = {os.path.splitext(f)[0].rsplit('_', 1)[-1]: f for f in files}
            for band in bands:
                if band not in by_band:
                    msg = f'band {band} of sample {index} not found in {folder}'
                    raise FileNotFoundError(msg)
                paths.append(by_band[band])
        return paths

    def _load_image(self, index: int) -> Tensor:
        """Read the 14 bands of one sample at 120 x 120 px.

        Args:
            index: Index of the sample.

        Returns:
            Float32 tensor ``[14, 120, 120]``.
        """
        images = []
        for path in self._load_paths(index):
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


def bigearthnet_to_pair(batch: Sample) -> Sample:
    """Split a BigEarthNetMM batch into normalised S1 and S2 L1C inputs.

    Args:
        batch: ``{'image': [B, 14, H, W], 'label': ...}`` with bands as in
            :class:`BigEarthNetMM`.

    Returns:
        ``{'image1': [B, 2, H, W], 'image2': [B, 13, H, W], 'label': ...}``:
        S1 (VV, VH) preprocessed by
        :func:`~torchgeo_decur.datasets.normalize.normalize_s1` and S2 in L1C
        band order with B10 filled with zeros, preprocessed by
        :func:`~torchgeo_decur.datasets.normalize.normalize_s2`.

    Raises:
        ValueError: If the image does not have 14 bands.

    .. versionadded:: 0.1
    """
    image = batch['image']
    n_s1, n_s2 = len(S1_BANDS), len(S2_L2A_BANDS)
    if image.shape[-3] != n_s1 + n_s2:
        msg = (
            f'BigEarthNet-MM image must have {n_s1 + n_s2} bands (S1 + S2), '
            f'got shape {tuple(image.shape)}'
        )
        raise ValueError(msg)
    s1 = image[..., :n_s1, :, :].float()
    s2 = image[..., n_s1:, :, :].float()
    b10 = S2_L1C_BANDS.index('B10')
    zeros = torch.zeros_like(s2[..., :1, :, :])
    s2 = torch.cat([s2[..., :b10, :, :], zeros, s2[..., b10:, :, :]], dim=-3)
    out = {k: v for k, v in batch.items() if k != 'image'}
    out['image1'] = normalize_s1(s1)
    out['image2'] = normalize_s2(s2)
    return out


class BigEarthNetMMDataModule(FractionDataModule):
    """BigEarthNet-MM multi-label classification with S1 and S2 inputs.

    Uses the official train/val/test splits of BigEarthNet v1.0 through
    :class:`BigEarthNetMM`. After transfer to the device each batch becomes::

        {'image1': float32 [B, 2, H, W],   # S1 (VV, VH), as pretraining
         'image2': float32 [B, 13, H, W],  # S2 L1C order, B10 = 0
         'label': int64 [B, num_classes]}  # multi-hot

    BigEarthNet's Sentinel-2 is L2A (12 bands) while the DeCUR optical encoder
    was pretrained on L1C (13 bands), so B10 is inserted as zeros at index 10,
    as in the DeCUR paper. Both modalities are preprocessed as the published
    encoders were pretrained (see :mod:`torchgeo_decur.datasets.normalize`),
    on the batch: S1 clipped per image and band to its 1st and 99th
    percentiles and stretched from ``mean - 2 std`` to ``mean + 2 std`` onto
    [0, 1] with the SSL4EO-S12 statistics; S2 as ``clip(x / 10000, 0, 1)``.
    (The authors' BigEarthNet code stretches S1 with BigEarthNet's own
    statistics; the encoders never saw those, so the pretraining ones are
    used here.) Then every split is resized to
    *size* if given, and training batches get random horizontal and vertical
    flips (the same for both modalities).

    .. versionadded:: 0.1
    """

    #: Modality names of ``image1`` and ``image2``.
    modalities = ('s1', 's2c')
    #: Number of classes (19-class nomenclature).
    num_classes = 19

    def __init__(
        self,
        root: str | os.PathLike[str] = 'data',
        batch_size: int = 64,
        num_workers: int = 0,
        size: int | None = None,
        train_fraction: float = 1.0,
        seed: int = 0,
        as_image: Literal['image1', 'image2'] | None = None,
        **kwargs: Any,
    ) -> None:
        """Initialize a new BigEarthNetMMDataModule instance.

        Args:
            root: Root directory of the dataset.
            batch_size: Size of each mini-batch.
            num_workers: Number of workers for parallel data loading.
            size: Resize every batch to ``size x size`` px (bilinear) if
                given; BigEarthNet patches are 120 x 120 px.
            train_fraction: Fraction of the training split to use, in (0, 1]
                (see :func:`~torchgeo_decur.datamodules.utils.subset_fraction`).
            seed: Seed of the training-fraction draw.
            as_image: Emit only this modality as ``image`` for TorchGeo's own
                single-input tasks (see :class:`FractionDataModule`).
            **kwargs: Additional keyword arguments passed to
                :class:`BigEarthNetMM` (``root``, ``num_classes``,
                ``download``, ...).

        Raises:
            ValueError: If *train_fraction* is not in (0, 1] or *size* is not
                positive.
        """
        if size is not None and size <= 0:
            msg = f'size must be a positive number of pixels, got {size!r}'
            raise ValueError(msg)
        super().__init__(
            BigEarthNetMM,
            batch_size,
            num_workers,
            train_fraction,
            seed,
            as_image,
            root=root,
            **kwargs,
        )
        self.num_classes = kwargs.get('num_classes', type(self).num_classes)
        self.size = size

        resize = [K.Resize((size, size))] if size is not None else []
        self.aug = PairedAugmentation(*resize)
        self.train_aug = PairedAugmentation(
            *resize, K.RandomHorizontalFlip(p=0.5), K.RandomVerticalFlip(p=0.5)
        )

    def setup(self, stage: str) -> None:
        """Set up datasets; draw the training fraction.

        Args:
            stage: Either 'fit', 'validate', 'test', or 'predict'.
        """
        super().setup(stage)
        if stage == 'fit' and self.train_dataset is not None:
            self.train_dataset = subset_fraction(
                self.train_dataset, self.train_fraction, self.seed
            )

    def on_after_batch_transfer(self, batch: Sample, dataloader_idx: int) -> Sample:
        """Split, normalise and augment a batch on the device.

        Args:
            batch: Batch from the data loader (``image``, ``label``).
            dataloader_idx: Index of the dataloader the batch comes from.

        Returns:
            Batch with ``image1``, ``image2`` and ``label``.
        """
        batch = bigearthnet_to_pair(batch)
        return super().on_after_batch_transfer(batch, dataloader_idx)
