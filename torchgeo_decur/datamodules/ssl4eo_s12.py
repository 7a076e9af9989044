"""Datamodule of paired SSL4EO-S12 Sentinel-1 / Sentinel-2 samples."""

import warnings
from typing import Any, Literal

import torch
from torch.utils.data import DataLoader, Dataset, random_split
from torchgeo.datamodules import NonGeoDataModule
from torchgeo.datasets.utils import Sample

from ..datasets import SSL4EOS12Pair
from ..transforms import MultiViewAugmentation, augmentation_for
from .utils import small_split_dataloader

__all__ = ('SSL4EOS12PairDataModule',)


class SSL4EOS12PairDataModule(NonGeoDataModule):
    """LightningDataModule for DeCUR pretraining on SSL4EO-S12 S1/S2 pairs.

    Loads :class:`~torchgeo_decur.datasets.SSL4EOS12Pair` samples (already
    normalised) and, after transfer to the device, augments each of the four
    views (two per modality) independently with the modality's pipeline
    (:func:`~torchgeo_decur.transforms.sar_augmentation` and
    :func:`~torchgeo_decur.transforms.optical_augmentation`), giving batches
    ``{'image1': [B, 2, 2, P, P], 'image2': [B, 2, C, P, P]}`` with
    P = *patch_size*. Validation batches are augmented the same way, so that
    the validation loss compares augmented views as in training.

    A fraction of the locations (*val_fraction*) is held out for validation
    with a fixed random split (seed 0), the same in every process.

    Batch statistics: DeCUR, like Barlow Twins, normalises embeddings along
    the batch, so every batch needs at least 2 samples. Training batches are
    therefore all full (``drop_last=True``) when the training set has at least
    *batch_size* samples; a smaller training set gives a single batch. The
    validation loader keeps every sample, except that it drops a last batch of
    a single sample.

    .. versionadded:: 0.1
    """

    #: Seed of the train/validation split.
    split_seed = 0

    def __init__(
        self,
        batch_size: int = 256,
        num_workers: int = 0,
        patch_size: int = 224,
        val_fraction: float = 0.05,
        root: str = 'data',
        optical: Literal['s2c', 's2a'] = 's2c',
        size: int | None = None,
        **kwargs: Any,
    ) -> None:
        """Initialize a new SSL4EOS12PairDataModule instance.

        Args:
            batch_size: Size of each mini-batch.
            num_workers: Number of workers for parallel data loading.
            patch_size: Size of the augmented patches (random resized crops).
            val_fraction: Fraction of the locations held out for validation,
                in ``[0, 1)``; 0 disables validation.
            root: Root directory of SSL4EO-S12 (with ``s1`` and *optical*).
            optical: Sentinel-2 product: ``'s2c'`` (L1C, 13 bands) or ``'s2a'``
                (L2A, 12 bands).
            size: Tile size in pixels of the 10 m bands (264 for SSL4EO-S12,
                96 for the default demo data, 36 for the test fixture); None
                reads it from the data.
            **kwargs: Additional keyword arguments passed to
                :class:`~torchgeo_decur.datasets.SSL4EOS12Pair`.

        Raises:
            ValueError: If *val_fraction* is not in ``[0, 1)`` or *batch_size*
                is smaller than 2.
        """
        if not 0 <= val_fraction < 1:
            msg = f'val_fraction must be in [0, 1), got {val_fraction}'
            raise ValueError(msg)
        if batch_size < 2:
            msg = (
                f'batch_size must be >= 2 (DeCUR normalises along the batch), '
                f'got {batch_size}'
            )
            raise ValueError(msg)
        super().__init__(
            SSL4EOS12Pair,
            batch_size,
            num_workers,
            root=root,
            optical=optical,
            size=size,
            **kwargs,
        )
        self.patch_size = patch_size
        self.val_fraction = val_fraction

        aug = MultiViewAugmentation(
            {
                'image1': augmentation_for('s1', patch_size),
                'image2': augmentation_for(optical, patch_size),
            }
        )
        # The dataset normalises: replace TorchGeo's default Normalize too.
        self.aug = self.train_aug = self.val_aug = aug

    def setup(self, stage: str) -> None:
        """Set up the datasets.

        Args:
            stage: Either 'fit', 'validate', 'test', or 'predict'.
        """
        if stage not in ('fit', 'validate'):
            return
        self.dataset = SSL4EOS12Pair(**self.kwargs)
        n_val = round(len(self.dataset) * self.val_fraction)
        if self.val_fraction > 0:
            # keep at least one sample on each side when there are two or more
            n_val = min(max(n_val, 1), len(self.dataset) - 1)
        if n_val > 0:
            generator = torch.Generator().manual_seed(self.split_seed)
            self.train_dataset, self.val_dataset = random_split(
                self.dataset, [len(self.dataset) - n_val, n_val], generator
            )
        else:
            self.train_dataset = self.dataset
            self.val_dataset = None

    def _dataloader_factory(self, split: str) -> DataLoader[Sample]:
        """Build a data loader.

        Args:
            split: Either 'train' or 'val'.

        Returns:
            The data loader.
        """
        dataset: Dataset[Sample] = self._valid_attribute(f'{split}_dataset')
        n = len(dataset)  # type: ignore[arg-type]
        if split == 'train' and n < 2:
            msg = (
                f'the training set has {n} sample(s): DeCUR normalises along '
                'the batch and needs at least 2 samples per batch'
            )
            warnings.warn(msg, UserWarning, stacklevel=2)
        return small_split_dataloader(
            dataset,
            self.batch_size,
            self.num_workers,
            self.collate_fn,
            train=split == 'train',
            min_batch_size=2,
        )

    def val_dataloader(  # type: ignore[override]
        self,
    ) -> DataLoader[Sample] | list[DataLoader[Sample]]:
        """Implement the PyTorch DataLoader for validation.

        Returns:
            The validation data loader, or an empty list (no validation) if
            *val_fraction* is 0.
        """
        if self.val_dataset is None:
            return []
        return self._dataloader_factory('val')
