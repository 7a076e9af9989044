"""SUN RGB-D and NYU-Depth v2 (RGB + HHA) datamodules for DeCUR.

Pretraining (:class:`SUNRGBDPairDataModule`, :class:`NYUDepthV2PairDataModule`:
RGB and HHA images, no labels) and semantic segmentation transfer
(:class:`SUNRGBDDataModule`, :class:`NYUDepthV2DataModule`) on the CMX layout
read by :class:`~torchgeo_decur.datasets.SUNRGBD` and
:class:`~torchgeo_decur.datasets.NYUDepthV2`.

.. versionadded:: 0.1
"""

import os
from typing import Any, Literal

import kornia.augmentation as K
import torch
from torch import nn
from torch.utils.data import DataLoader, Subset
from torchgeo.datasets.utils import Sample

from ..datasets import SUNRGBD, NYUDepthV2, RGBDFolderDataset
from ..transforms.geometry import RandomScaleCropPad
from .paired import PairedDataModule
from .transfer import TransferDataModule
from .utils import PairedAugmentation, subset_fraction

__all__ = (
    'NYUDepthV2DataModule',
    'NYUDepthV2PairDataModule',
    'SUNRGBDDataModule',
    'SUNRGBDPairDataModule',
)

#: Resize of SUN RGB-D's samples by default: its sensors' images differ in
#: size (mostly 4:3), and a batch needs one size.
SUNRGBD_SIZE = (480, 640)

#: Evaluation protocols of the segmentation datamodules.
PROTOCOLS = ('ours', 'authors')


class _RGBDPairDataModule(PairedDataModule):
    """Pretraining on the RGB and HHA images of an RGB-D folder dataset."""

    dataset_class: type[RGBDFolderDataset]

    def __init__(
        self,
        batch_size: int,
        num_workers: int,
        patch_size: int,
        val_fraction: float,
        root: str | os.PathLike[str],
        split: Literal['train', 'test'],
        size: int | tuple[int, int] | None,
        rgb_folder: str,
        hha_folder: str,
        modalities: tuple[str, str],
        seed: int | None,
        **kwargs: Any,
    ) -> None:
        """Initialize the datamodule (see the subclasses for the arguments)."""
        kwargs.pop('mask', None)  # pretraining reads no labels
        kwargs.setdefault('on_bad_sample', 'skip')  # long runs skip bad files
        super().__init__(
            self.dataset_class,
            modalities,
            batch_size,
            num_workers,
            patch_size,
            val_fraction,
            seed,
            root=root,
            split=split,
            size=size,
            rgb_folder=rgb_folder,
            hha_folder=hha_folder,
            mask=False,
            **kwargs,
        )


class SUNRGBDPairDataModule(_RGBDPairDataModule):
    """LightningDataModule for DeCUR pretraining on SUN RGB-D's RGB and HHA.

    A :class:`~torchgeo_decur.datamodules.PairedDataModule` over
    :class:`~torchgeo_decur.datasets.SUNRGBD` read without labels, with the
    modalities ``rgb_indoor`` and ``hha``, as the DeCUR authors pretrained
    their RGB-D encoders: each sample's RGB and HHA image are augmented twice
    each on the device. Batches are ``{'image1': [B, 2, 3, P, P], 'image2':
    [B, 2, 3, P, P]}`` with P = *patch_size*.

    SUN RGB-D's images differ in size (by sensor), so every sample is first
    resized to *size* (480 x 640 px by default).

    .. versionadded:: 0.1
    """

    dataset_class: type[RGBDFolderDataset] = SUNRGBD

    def __init__(
        self,
        batch_size: int = 32,
        num_workers: int = 0,
        patch_size: int = 224,
        val_fraction: float = 0.05,
        root: str | os.PathLike[str] = 'data',
        split: Literal['train', 'test'] = 'train',
        size: int | tuple[int, int] | None = SUNRGBD_SIZE,
        rgb_folder: str = 'RGB',
        hha_folder: str = 'HHA',
        modalities: tuple[str, str] = ('rgb_indoor', 'hha'),
        seed: int | None = None,
        **kwargs: Any,
    ) -> None:
        """Initialize a new SUNRGBDPairDataModule instance.

        Args:
            batch_size: Size of each mini-batch (per process).
            num_workers: Number of workers for parallel data loading.
            patch_size: Size of the augmented patches (random resized crops).
            val_fraction: Fraction of the images held out for validation, in
                ``[0, 1)``; 0 disables validation.
            root: Root directory of the dataset (``RGB/``, ``HHA/``, list files).
            split: List file of the images to pretrain on: ``'train'`` (keeps
                the test images unseen for transfer) or ``'test'``.
            size: Resize every sample to ``(height, width)`` px (an int:
                square), or None to keep each image's size (then all must
                have one size).
            rgb_folder: Folder of the RGB images, in *root*.
            hha_folder: Folder of the HHA images, in *root*.
            modalities: Registered modalities of the RGB and the HHA images.
            seed: Seed of the sample order and augmentation; None draws one
                from torch's generator (see
                :class:`~torchgeo_decur.datamodules.PairedDataModule`).
            **kwargs: Additional keyword arguments passed to the dataset
                (``transforms``, ``on_bad_sample``: ``'skip'`` here).

        Raises:
            ValueError: If *val_fraction* is not in ``[0, 1)``, *batch_size*
                is smaller than 2, or a modality is unknown.
        """
        super().__init__(
            batch_size,
            num_workers,
            patch_size,
            val_fraction,
            root,
            split,
            size,
            rgb_folder,
            hha_folder,
            modalities,
            seed,
            **kwargs,
        )


class NYUDepthV2PairDataModule(_RGBDPairDataModule):
    """LightningDataModule for DeCUR pretraining on NYU-Depth v2's RGB and HHA.

    As :class:`SUNRGBDPairDataModule`, over
    :class:`~torchgeo_decur.datasets.NYUDepthV2`, whose images are all
    640 x 480 px (no resize by default).

    .. versionadded:: 0.1
    """

    dataset_class: type[RGBDFolderDataset] = NYUDepthV2

    def __init__(
        self,
        batch_size: int = 32,
        num_workers: int = 0,
        patch_size: int = 224,
        val_fraction: float = 0.05,
        root: str | os.PathLike[str] = 'data',
        split: Literal['train', 'test'] = 'train',
        size: int | tuple[int, int] | None = None,
        rgb_folder: str = 'RGB',
        hha_folder: str = 'HHA',
        modalities: tuple[str, str] = ('rgb_indoor', 'hha'),
        seed: int | None = None,
        **kwargs: Any,
    ) -> None:
        """Initialize a new NYUDepthV2PairDataModule instance.

        Args:
            batch_size: Size of each mini-batch (per process).
            num_workers: Number of workers for parallel data loading.
            patch_size: Size of the augmented patches (random resized crops).
            val_fraction: Fraction of the images held out for validation, in
                ``[0, 1)``; 0 disables validation.
            root: Root directory of the dataset (``RGB/``, ``HHA/``, list files).
            split: List file of the images to pretrain on: ``'train'`` (keeps
                the test images unseen for transfer) or ``'test'``.
            size: Resize every sample to ``(height, width)`` px (an int:
                square), or None to keep the 480 x 640 px.
            rgb_folder: Folder of the RGB images, in *root*.
            hha_folder: Folder of the HHA images, in *root*.
            modalities: Registered modalities of the RGB and the HHA images.
            seed: Seed of the sample order and augmentation; None draws one
                from torch's generator.
            **kwargs: Additional keyword arguments passed to the dataset
                (``transforms``, ``on_bad_sample``: ``'skip'`` here).

        Raises:
            ValueError: If *val_fraction* is not in ``[0, 1)``, *batch_size*
                is smaller than 2, or a modality is unknown.
        """
        super().__init__(
            batch_size,
            num_workers,
            patch_size,
            val_fraction,
            root,
            split,
            size,
            rgb_folder,
            hha_folder,
            modalities,
            seed,
            **kwargs,
        )


def _pair(size: int | tuple[int, int]) -> tuple[int, int]:
    """``(height, width)`` of a size given as one int or two."""
    if isinstance(size, int):
        return size, size
    return int(size[0]), int(size[-1])


def _check_protocol(
    protocol: str, patch_size: int | tuple[int, int] | None, val_fraction: float
) -> None:
    """Check the protocol arguments of a segmentation datamodule.

    Raises:
        ValueError: If *protocol* is unknown, or ``'authors'`` without a
            *patch_size* (CMX's training size) or with a *val_fraction* (CMX
            scores the test list).
    """
    if protocol not in PROTOCOLS:
        msg = f'protocol must be one of {PROTOCOLS}, got {protocol!r}'
        raise ValueError(msg)
    if protocol != 'authors':
        return
    if patch_size is None:
        msg = "protocol='authors' needs patch_size, CMX's training size (480 x 640)"
        raise ValueError(msg)
    if val_fraction:
        msg = (
            "protocol='authors' validates on the test list as CMX did; "
            f'set val_fraction to 0, got {val_fraction}'
        )
        raise ValueError(msg)


class _RGBDSegmentationDataModule(TransferDataModule):
    """Segmentation transfer on an RGB-D folder dataset (RGB, HHA, mask)."""

    dataset_class: type[RGBDFolderDataset]

    #: Number of classes (unlabeled pixels excluded).
    num_classes: int

    #: Mask value of unlabeled pixels.
    ignore_index = RGBDFolderDataset.ignore_index

    #: Seed of the train/validation split.
    split_seed = 0

    def __init__(
        self,
        root: str | os.PathLike[str],
        batch_size: int,
        num_workers: int,
        patch_size: int | tuple[int, int] | None,
        size: int | tuple[int, int] | None,
        val_fraction: float,
        train_fraction: float,
        seed: int,
        as_image: Literal['image1', 'image2'] | None,
        modalities: tuple[str, str],
        rgb_folder: str,
        hha_folder: str,
        label_folder: str,
        protocol: Literal['ours', 'authors'] = 'ours',
        **kwargs: Any,
    ) -> None:
        """Initialize the datamodule (see the subclasses for the arguments).

        Raises:
            ValueError: If *train_fraction* is not in (0, 1], *val_fraction*
                not in [0, 1), *patch_size* is not positive, or *protocol*
                is unknown or ``'authors'`` without *patch_size* or with a
                *val_fraction*.
        """
        sides = [patch_size] if isinstance(patch_size, int) else patch_size or []
        if patch_size is not None and (
            len(sides) not in (1, 2) or any(s <= 0 for s in sides)
        ):
            msg = f'patch_size must be a positive number of pixels, got {patch_size!r}'
            raise ValueError(msg)
        if not 0 <= val_fraction < 1:
            msg = f'val_fraction must be in [0, 1), got {val_fraction}'
            raise ValueError(msg)
        _check_protocol(protocol, patch_size, val_fraction)
        kwargs.pop('mask', None)
        super().__init__(
            self.dataset_class,
            modalities,
            batch_size,
            num_workers,
            train_fraction,
            seed,
            as_image,
            root=root,
            size=size,
            rgb_folder=rgb_folder,
            hha_folder=hha_folder,
            label_folder=label_folder,
            **kwargs,
        )
        self.patch_size = patch_size
        self.size = size
        self.val_fraction = val_fraction
        self.protocol = protocol

        keys = {'image_keys': ('image1', 'image2'), 'mask_keys': ('mask',)}
        self.aug = PairedAugmentation(**keys)
        self.train_aug: nn.Module
        if protocol == 'authors':  # CMX: flip, scale from a set, crop / pad
            assert patch_size is not None
            self.train_aug = nn.Sequential(
                PairedAugmentation(K.RandomHorizontalFlip(p=0.5), **keys),
                RandomScaleCropPad(patch_size, ignore_index=self.ignore_index),
            )
            return
        crop = [K.RandomCrop(_pair(patch_size))] if patch_size else []
        self.train_aug = PairedAugmentation(
            *crop, K.RandomHorizontalFlip(p=0.5), **keys
        )

    def setup(self, stage: str) -> None:
        """Set up datasets.

        Args:
            stage: Either 'fit', 'validate', 'test', or 'predict'.

        Raises:
            ValueError: If *train_fraction* selects no training image.
        """
        if self.protocol == 'authors':  # CMX: every training image; test list
            if stage in ['fit', 'validate', 'test']:
                train = self.dataset_class(split='train', **self.kwargs)
                self.train_dataset = subset_fraction(
                    train, self.train_fraction, self.seed
                )
                self.val_dataset = self.dataset_class(split='test', **self.kwargs)
                self.test_dataset = self.val_dataset
            return
        if stage in ['fit', 'validate']:
            dataset = self.dataset_class(split='train', **self.kwargs)
            n = len(dataset)
            n_val = round(n * self.val_fraction)
            if self.val_fraction > 0 and n > 1:
                n_val = min(max(n_val, 1), n - 1)
            generator = torch.Generator().manual_seed(self.split_seed)
            order = torch.randperm(n, generator=generator).tolist()
            train = Subset(dataset, sorted(order[: n - n_val]))
            self.train_dataset = subset_fraction(train, self.train_fraction, self.seed)
            if n_val:
                self.val_dataset = Subset(dataset, sorted(order[n - n_val :]))
        if stage in ['test']:
            self.test_dataset = self.dataset_class(split='test', **self.kwargs)

    def val_dataloader(  # type: ignore[override]
        self,
    ) -> DataLoader[Sample] | list[DataLoader[Sample]]:
        """Implement the PyTorch DataLoader for validation.

        Returns:
            The validation data loader, or an empty list (no validation) if
            *val_fraction* is 0.
        """
        if getattr(self, 'val_dataset', None) is None:
            return []
        return super().val_dataloader()

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
        training = self.trainer is not None and self.trainer.training
        if training and self.patch_size and self.protocol == 'ours':
            height, width = batch['image1'].shape[-2:]
            crop_h, crop_w = _pair(self.patch_size)
            if crop_h > height or crop_w > width:
                msg = (
                    f'patch_size={self.patch_size} exceeds the image size '
                    f'{height} x {width}; lower patch_size or set size'
                )
                raise ValueError(msg)
        return super().on_after_batch_transfer(batch, dataloader_idx)


class SUNRGBDDataModule(_RGBDSegmentationDataModule):
    """SUN RGB-D semantic segmentation (37 classes) with RGB and HHA inputs.

    The training list is split into training and validation images with a
    fixed seed (0), *val_fraction* of them for validation, the same in every
    run; *train_fraction* then draws a subset of the remaining training
    images with *seed*. The test list is the test split. After transfer to the
    device each batch becomes::

        {'image1': float32 [B, 3, H, W],  # RGB / 255, ImageNet-standardised
         'image2': float32 [B, 3, H, W],  # HHA / 255, ImageNet-standardised
         'mask': int64 [B, H, W]}         # classes 0..36, 255 unlabeled

    preprocessed as the modalities (``rgb_indoor``, ``hha``) say, as the
    DeCUR encoders saw them. Use ``ignore_index=255`` in the task.

    Every sample is resized to *size* by the dataset (SUN RGB-D's images
    differ in size; masks with nearest neighbour, so evaluation is at that
    size). Training batches then get a random *patch_size* crop and a random
    horizontal flip, identical for RGB, HHA and mask (no vertical flip:
    indoor scenes have an up). Validation and test batches are whole images.

    .. versionadded:: 0.1
    .. versionchanged:: 0.2
       *protocol* added (CMX's training, the test list validated);
       *patch_size* may be ``(height, width)``.
    """

    dataset_class: type[RGBDFolderDataset] = SUNRGBD

    #: Number of classes (unlabeled pixels excluded).
    num_classes = SUNRGBD.num_classes

    def __init__(
        self,
        root: str | os.PathLike[str] = 'data',
        batch_size: int = 8,
        num_workers: int = 0,
        patch_size: int | tuple[int, int] | None = 480,
        size: int | tuple[int, int] | None = SUNRGBD_SIZE,
        val_fraction: float = 0.1,
        train_fraction: float = 1.0,
        seed: int = 0,
        as_image: Literal['image1', 'image2'] | None = None,
        modalities: tuple[str, str] = ('rgb_indoor', 'hha'),
        rgb_folder: str = 'RGB',
        hha_folder: str = 'HHA',
        label_folder: str = 'Label',
        protocol: Literal['ours', 'authors'] = 'ours',
        **kwargs: Any,
    ) -> None:
        """Initialize a new SUNRGBDDataModule instance.

        Args:
            root: Root directory of the dataset.
            batch_size: Size of each mini-batch.
            num_workers: Number of workers for parallel data loading.
            patch_size: Size of the random training crop in px (one int: a
                square; or ``(height, width)``), or None for no crop; must not
                exceed the (resized) image size, except under
                ``protocol='authors'`` (padded).
            size: Resize every sample to ``(height, width)`` px (an int:
                square), or None to keep each image's size (then a batch
                needs images of one size).
            val_fraction: Fraction of the training list held out for
                validation, in ``[0, 1)``; 0 disables validation.
            train_fraction: Fraction of the remaining training images to use,
                in (0, 1] (see
                :func:`~torchgeo_decur.datamodules.utils.subset_fraction`).
            seed: Seed of the training-fraction draw.
            as_image: Emit only this modality as ``image`` for TorchGeo's own
                single-input tasks (see
                :class:`~torchgeo_decur.datamodules.TransferDataModule`).
            modalities: Modalities of the pretrained encoders for ``image1``
                (RGB) and ``image2`` (HHA).
            rgb_folder: Folder of the RGB images, in *root*.
            hha_folder: Folder of the HHA images, in *root*.
            label_folder: Folder of the labels, in *root*.
            protocol: ``'ours'``, or ``'authors'``: CMX's training as the
                DeCUR authors scored their RGB-D encoders (random flip, a
                scale drawn from 0.5 ... 1.75, a random *patch_size* crop
                padded with the ignore index where the image is smaller;
                :class:`~torchgeo_decur.transforms.RandomScaleCropPad`), on
                every training image (*val_fraction* must be 0), validated
                on the test list as CMX scored it.
            **kwargs: Additional keyword arguments passed to the dataset
                (``transforms``).

        Raises:
            ValueError: If *train_fraction* is not in (0, 1], *val_fraction*
                not in [0, 1), *patch_size* is not positive, or *protocol*
                is unknown or ``'authors'`` without *patch_size* or with a
                *val_fraction*.
        """
        super().__init__(
            root,
            batch_size,
            num_workers,
            patch_size,
            size,
            val_fraction,
            train_fraction,
            seed,
            as_image,
            modalities,
            rgb_folder,
            hha_folder,
            label_folder,
            protocol,
            **kwargs,
        )


class NYUDepthV2DataModule(_RGBDSegmentationDataModule):
    """NYU-Depth v2 semantic segmentation (40 classes) with RGB and HHA inputs.

    As :class:`SUNRGBDDataModule`, over
    :class:`~torchgeo_decur.datasets.NYUDepthV2` (795 training images, of
    which *val_fraction* validate, and 654 test images, all 640 x 480 px, so
    no resize by default). Masks hold classes 0..39 and 255 for unlabeled
    pixels.

    .. versionadded:: 0.1
    .. versionchanged:: 0.2
       *protocol* added (CMX's training, the test list validated);
       *patch_size* may be ``(height, width)``.
    """

    dataset_class: type[RGBDFolderDataset] = NYUDepthV2

    #: Number of classes (unlabeled pixels excluded).
    num_classes = NYUDepthV2.num_classes

    def __init__(
        self,
        root: str | os.PathLike[str] = 'data',
        batch_size: int = 8,
        num_workers: int = 0,
        patch_size: int | tuple[int, int] | None = 480,
        size: int | tuple[int, int] | None = None,
        val_fraction: float = 0.1,
        train_fraction: float = 1.0,
        seed: int = 0,
        as_image: Literal['image1', 'image2'] | None = None,
        modalities: tuple[str, str] = ('rgb_indoor', 'hha'),
        rgb_folder: str = 'RGB',
        hha_folder: str = 'HHA',
        label_folder: str = 'Label',
        protocol: Literal['ours', 'authors'] = 'ours',
        **kwargs: Any,
    ) -> None:
        """Initialize a new NYUDepthV2DataModule instance.

        Args:
            root: Root directory of the dataset.
            batch_size: Size of each mini-batch.
            num_workers: Number of workers for parallel data loading.
            patch_size: Size of the random training crop in px (one int: a
                square; or ``(height, width)``), or None for no crop; must not
                exceed the (resized) image size, except under
                ``protocol='authors'`` (padded).
            size: Resize every sample to ``(height, width)`` px (an int:
                square), or None to keep the 480 x 640 px.
            val_fraction: Fraction of the training list held out for
                validation, in ``[0, 1)``; 0 disables validation.
            train_fraction: Fraction of the remaining training images to use,
                in (0, 1].
            seed: Seed of the training-fraction draw.
            as_image: Emit only this modality as ``image`` for TorchGeo's own
                single-input tasks.
            modalities: Modalities of the pretrained encoders for ``image1``
                (RGB) and ``image2`` (HHA).
            rgb_folder: Folder of the RGB images, in *root*.
            hha_folder: Folder of the HHA images, in *root*.
            label_folder: Folder of the labels, in *root*.
            protocol: ``'ours'``, or ``'authors'``: CMX's training as the
                DeCUR authors scored their RGB-D encoders (random flip, a
                scale drawn from 0.5 ... 1.75, a random *patch_size* crop
                padded with the ignore index where the image is smaller;
                :class:`~torchgeo_decur.transforms.RandomScaleCropPad`), on
                every training image (*val_fraction* must be 0), validated
                on the test list as CMX scored it.
            **kwargs: Additional keyword arguments passed to the dataset
                (``transforms``).

        Raises:
            ValueError: If *train_fraction* is not in (0, 1], *val_fraction*
                not in [0, 1), *patch_size* is not positive, or *protocol*
                is unknown or ``'authors'`` without *patch_size* or with a
                *val_fraction*.
        """
        super().__init__(
            root,
            batch_size,
            num_workers,
            patch_size,
            size,
            val_fraction,
            train_fraction,
            seed,
            as_image,
            modalities,
            rgb_folder,
            hha_folder,
            label_folder,
            protocol,
            **kwargs,
        )
