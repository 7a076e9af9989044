"""GeoNRW (RGB + DEM) segmentation datamodule for DeCUR transfer."""

import os
from typing import Any, Literal

import kornia.augmentation as K
from torch.utils.data import Subset
from torchgeo.datamodules.utils import group_shuffle_split
from torchgeo.datasets import GeoNRW
from torchgeo.datasets.utils import Sample

from ..datasets import GeoNRWCities, GeoNRWTiles
from .paired import PairedDataModule
from .transfer import TransferDataModule
from .utils import PairedAugmentation, authors_fraction_indices, subset_fraction

__all__ = ('GeoNRWDataModule', 'GeoNRWPairDataModule')

#: Crop side of the authors' GeoNRW transfer scripts.
AUTHORS_CROP = 224


class GeoNRWDataModule(TransferDataModule):
    """GeoNRW semantic segmentation with RGB and DEM inputs.

    GeoNRW has train and test cities; as in TorchGeo's datamodule, 20 % of
    the training cities (drawn with a fixed seed, 0) form the validation
    split, so train and validation never share a city. *train_fraction* then
    draws a subset of the remaining training samples with *seed*. After
    transfer to the device each batch becomes::

        {'image1': float32 [B, 3, H, W],  # R, G, B / 255, in [0, 1]
         'image2': float32 [B, 1, H, W],  # DEM stretched per image to [0, 1]
         'mask': int64 [B, H, W]}         # class indices 0..10

    Preprocessing as the published RGB-DEM encoders saw it (see
    :mod:`torchgeo_decur.transforms.normalize`): the DEM of each image is
    clipped to its 1st and 99th percentiles and stretched to [0, 1]. The RGB
    channels stay in R, G, B order: the authors' files, which store B, G, R,
    are converted when they are loaded (see
    :func:`~torchgeo_decur.models.convert_input_layer`).

    All splits are first resized to *size* if given (masks with nearest
    neighbour). Training batches then get a random *patch_size* crop and
    random horizontal and vertical flips, identical for RGB, DEM and mask.
    Validation and test batches are whole images (1000 x 1000 px in GeoNRW
    unless resized).

    ``protocol='authors'`` feeds the data as the authors' GeoNRW scripts did
    (``src/transfer_segmentation_GEONRW/``, zhu-xlab/DeCUR f190e9a): the
    scenes cut into 250 x 250 px tiles (:class:`~torchgeo_decur.datasets.GeoNRWTiles`
    with masks), training on the train cities' tiles and scoring on the
    **test** cities' tiles; RandomResizedCrop(224, scale 0.2-1, nearest) and
    a horizontal flip on **every** split (their dataset applies its
    augmentation in ``__getitem__``, evaluation included); the training
    fraction drawn as their ``random_subset``
    (:func:`~torchgeo_decur.datamodules.utils.authors_fraction_indices`).
    *patch_size* and *size* do not apply. Their DEM stretch is the image's
    minimum to maximum; ours clips to the 1st and 99th percentiles first
    (the modality's, as the published encoders were pretrained).

    .. versionadded:: 0.1
    .. versionchanged:: 0.2
       *protocol* added.
    """

    #: Number of classes, background (0) included.
    num_classes = len(GeoNRW.classes)

    def __init__(
        self,
        root: str | os.PathLike[str] = 'data',
        batch_size: int = 64,
        num_workers: int = 0,
        patch_size: int | None = 256,
        size: int | None = None,
        train_fraction: float = 1.0,
        seed: int = 0,
        as_image: Literal['image1', 'image2'] | None = None,
        modalities: tuple[str, str] = ('rgb', 'dem'),
        protocol: Literal['ours', 'authors'] = 'ours',
        tile_size: int = 250,
        **kwargs: Any,
    ) -> None:
        """Initialize a new GeoNRWDataModule instance.

        Args:
            root: Root directory of the dataset.
            batch_size: Size of each mini-batch.
            num_workers: Number of workers for parallel data loading.
            patch_size: Side of the random training crop in px, or None for
                no crop; must not exceed the (resized) image size.
            size: Resize every batch to ``size x size`` px before cropping,
                or None to keep the native 1000 x 1000 px.
            train_fraction: Fraction of the training samples to use, in
                (0, 1] (see
                :func:`~torchgeo_decur.datamodules.utils.subset_fraction`).
            seed: Seed of the training-fraction draw.
            as_image: Emit only this modality as ``image`` for TorchGeo's own
                single-input tasks (see
                :class:`~torchgeo_decur.datamodules.TransferDataModule`).
            modalities: Modalities of the pretrained encoders for ``image1``
                and ``image2``.
            protocol: ``'ours'`` or ``'authors'`` (the authors' tiles, crops,
                fraction draw and evaluation split; see above).
            tile_size: Side of the authors' tiles in px (their 250); only
                under ``protocol='authors'``.
            **kwargs: Additional keyword arguments passed to
                :class:`~torchgeo_decur.datasets.GeoNRWCities` (``download``,
                ...).

        Raises:
            ValueError: If *train_fraction* is not in (0, 1], *patch_size*
                or *size* is not positive, or *protocol* is unknown.
        """
        if protocol not in ('ours', 'authors'):
            msg = f"protocol must be 'ours' or 'authors', got {protocol!r}"
            raise ValueError(msg)
        for name, value in (('patch_size', patch_size), ('size', size)):
            if value is not None and value <= 0:
                msg = f'{name} must be a positive number of pixels, got {value!r}'
                raise ValueError(msg)
        super().__init__(
            GeoNRWCities,
            modalities,
            batch_size,
            num_workers,
            train_fraction,
            seed,
            as_image,
            root=root,
            **kwargs,
        )
        self.patch_size = patch_size
        self.size = size

        self.protocol = protocol
        self.tile_size = tile_size
        keys = {'image_keys': ('image1', 'image2'), 'mask_keys': ('mask',)}
        if protocol == 'authors':
            self.patch_size = self.size = None
            crop = K.RandomResizedCrop(
                (AUTHORS_CROP, AUTHORS_CROP), scale=(0.2, 1.0), resample='nearest'
            )
            flip = K.RandomHorizontalFlip(p=0.5)
            self.aug = self.train_aug = PairedAugmentation(crop, flip, **keys)
            return
        resize = [K.Resize((size, size))] if size is not None else []
        crop = [K.RandomCrop((patch_size, patch_size))] if patch_size else []
        self.aug = PairedAugmentation(*resize, **keys)
        self.train_aug = PairedAugmentation(
            *resize,
            *crop,
            K.RandomHorizontalFlip(p=0.5),
            K.RandomVerticalFlip(p=0.5),
            **keys,
        )

    def setup(self, stage: str) -> None:
        """Set up datasets.

        Args:
            stage: Either 'fit', 'validate', 'test', or 'predict'.
        """
        if self.protocol == 'authors':
            self._setup_authors(stage)
            return
        if stage in ['fit', 'validate']:
            dataset = GeoNRWCities(split='train', **self.kwargs)
            cities = [os.path.dirname(path) for path in dataset.file_list]
            train_indices, val_indices = group_shuffle_split(
                cities, test_size=0.2, random_state=0
            )
            self.train_dataset = subset_fraction(
                Subset(dataset, train_indices), self.train_fraction, self.seed
            )
            self.val_dataset = Subset(dataset, val_indices)
        if stage in ['test']:
            self.test_dataset = GeoNRWCities(split='test', **self.kwargs)

    def _setup_authors(self, stage: str) -> None:
        """The authors' splits: train cities' tiles; test cities' tiles to score."""

        def tiles(split: str) -> GeoNRWTiles:
            dataset = GeoNRWTiles(
                split=split,
                tile_size=self.tile_size,
                with_mask=True,
                on_bad_sample='raise',
                **self.kwargs,
            )
            if not len(dataset):
                msg = (
                    f"protocol='authors' needs the {split} cities of GeoNRW, "
                    f'found none under {self.kwargs.get("root")}'
                )
                raise ValueError(msg)
            return dataset

        if stage == 'fit':
            train = tiles('train')
            indices = authors_fraction_indices(
                len(train), self.train_fraction, self.seed
            )
            self.train_dataset = Subset(train, indices)
        if stage in ('fit', 'validate'):
            self.val_dataset = tiles('test')
        if stage == 'test':
            self.test_dataset = tiles('test')

    def on_after_batch_transfer(self, batch: Sample, dataloader_idx: int) -> Sample:
        """Preprocess and augment a batch on the device.

        Args:
            batch: Batch from the data loader (``image1``, ``image2``, ``mask``).
            dataloader_idx: Index of the dataloader the batch comes from.

        Returns:
            Batch with ``image1``, ``image2`` and ``mask``.

        Raises:
            ValueError: If a training batch is smaller than *patch_size*.
        """
        if self.trainer is not None and self.trainer.training and self.patch_size:
            height, width = batch['image1'].shape[-2:]
            if self.size is not None:
                height = width = self.size
            if self.patch_size > min(height, width):
                msg = (
                    f'patch_size={self.patch_size} exceeds the image size '
                    f'{height} x {width}; lower patch_size or set size'
                )
                raise ValueError(msg)
        return super().on_after_batch_transfer(batch, dataloader_idx)


class GeoNRWPairDataModule(PairedDataModule):
    """LightningDataModule for DeCUR pretraining on GeoNRW RGB + DEM tiles.

    A :class:`~torchgeo_decur.datamodules.PairedDataModule` over
    :class:`~torchgeo_decur.datasets.GeoNRWTiles`: GeoNRW's training scenes
    cut into *tile_size* tiles on the fly (250 x 250 px, 16 per scene, as the
    paper), with the modalities ``rgb`` and ``dem``. Each tile's RGB and DEM
    are preprocessed as the published RGB-DEM encoders saw them (``x / 255``;
    the DEM clipped to its 1st and 99th percentiles and stretched to [0, 1])
    and augmented twice each, on the device: RGB as the optical pipeline on 3
    bands (crop scale 0.2-1, brightness and contrast, grayscale, blur,
    solarize, flips), DEM with crop (0.2-1) and horizontal and vertical flips.
    Batches are ``{'image1': [B, 2, 3, P, P], 'image2': [B, 2, 1, P, P]}``.

    .. versionadded:: 0.1
    """

    def __init__(
        self,
        batch_size: int = 256,
        num_workers: int = 0,
        patch_size: int = 224,
        val_fraction: float = 0.0,
        root: str = 'data',
        tile_size: int = 250,
        seed: int | None = None,
        modalities: tuple[str, str] = ('rgb', 'dem'),
        **kwargs: Any,
    ) -> None:
        """Initialize a new GeoNRWPairDataModule instance.

        Args:
            batch_size: Size of each mini-batch (per process).
            num_workers: Number of workers for parallel data loading.
            patch_size: Size of the augmented patches (random resized crops).
            val_fraction: Fraction of the tiles held out for validation, in
                ``[0, 1)``; 0 (the paper) disables validation.
            root: Root directory of GeoNRW (one folder per city).
            tile_size: Side of the tiles cut from the 1000 x 1000 px scenes.
            seed: Seed of the sample order and augmentation; None draws one
                from torch's generator. A resumed run takes it from the
                checkpoint.
            modalities: Modalities of ``image1`` and ``image2``.
            **kwargs: Further arguments of
                :class:`~torchgeo_decur.datasets.GeoNRWTiles` (``download``,
                ``checksum``).
        """
        super().__init__(
            GeoNRWTiles,
            modalities,
            batch_size,
            num_workers,
            patch_size,
            val_fraction,
            seed,
            root=root,
            split='train',
            tile_size=tile_size,
            **kwargs,
        )
