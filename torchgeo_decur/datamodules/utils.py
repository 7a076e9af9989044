"""Helpers shared by the datamodules of torchgeo-decur."""

import math
from collections.abc import Callable, Sequence, Sized
from typing import Any, Literal

import kornia.augmentation as K
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, Subset
from torchgeo.datamodules import NonGeoDataModule
from torchgeo.datasets import NonGeoDataset
from torchgeo.datasets.utils import Sample


def check_fraction(fraction: float, name: str = 'train') -> None:
    """Check that a label fraction is in (0, 1].

    Args:
        fraction: Fraction of a split to keep.
        name: Split name; the argument is reported as ``{name}_fraction``.

    Raises:
        ValueError: If *fraction* is not a number in (0, 1].

    .. versionadded:: 0.1
    """
    if (
        isinstance(fraction, bool)
        or not isinstance(fraction, int | float)
        or not 0 < fraction <= 1
    ):
        msg = f'{name}_fraction must be in (0, 1], got {fraction!r}'
        raise ValueError(msg)


def fraction_indices(
    n: int, fraction: float, seed: int = 0, name: str = 'train'
) -> list[int]:
    """Indices of a deterministic random fraction of ``range(n)``.

    ``round(fraction * n)`` indices (halves rounded up) are drawn without
    replacement from :func:`torch.randperm` seeded with *seed*, and returned
    sorted. The draw depends only on ``(n, fraction, seed)``, so it is the same
    in every process and every run; for one seed, a smaller fraction selects a
    subset of a larger one. ``fraction == 1`` returns ``range(n)``.

    Args:
        n: Number of samples in the split.
        fraction: Fraction to keep, in (0, 1].
        seed: Seed of the draw.
        name: Split name used in error messages (``{name}_fraction``).

    Returns:
        Sorted sample indices.

    Raises:
        ValueError: If *fraction* is not in (0, 1], or selects no sample.

    .. versionadded:: 0.1
    """
    check_fraction(fraction, name)
    if fraction == 1:
        return list(range(n))
    k = math.floor(fraction * n + 0.5)
    if k == 0:
        msg = (
            f'{name}_fraction={fraction} of the {n} samples of the {name} split '
            f'selects no sample (round({fraction} * {n}) = 0)'
        )
        if n > 0:
            msg += f'; use {name}_fraction >= {0.5 / n:.3g}'
        raise ValueError(msg)
    generator = torch.Generator().manual_seed(seed)
    perm = torch.randperm(n, generator=generator)[:k]
    return sorted(perm.tolist())


def subset_fraction(
    dataset: Dataset[Any], fraction: float, seed: int = 0, name: str = 'train'
) -> Subset[Any]:
    """Keep a deterministic random fraction of a dataset (low-label regimes).

    See :func:`fraction_indices` for how the samples are drawn. A
    :class:`~torch.utils.data.Subset` input is flattened: the result indexes
    the underlying dataset directly.

    Args:
        dataset: Dataset of one split (must define ``__len__``).
        fraction: Fraction of samples to keep, in (0, 1].
        seed: Seed of the draw.
        name: Split name used in error messages (``{name}_fraction``).

    Returns:
        The selected samples.

    Raises:
        ValueError: If *fraction* is not in (0, 1], or selects no sample of
            *dataset*.

    .. versionadded:: 0.1
    """
    check_fraction(fraction, name)
    if not isinstance(dataset, Sized):
        msg = f'{type(dataset).__name__} has no length; cannot take a fraction'
        raise ValueError(msg)
    indices = fraction_indices(len(dataset), fraction, seed, name)
    if isinstance(dataset, Subset):
        parent = list(dataset.indices)
        return Subset(dataset.dataset, [parent[i] for i in indices])
    return Subset(dataset, indices)


class PairedAugmentation(nn.Module):
    """Apply the same Kornia augmentations to several entries of a batch.

    All images and masks of a sample get the same random parameters (same
    crop, same flip), as co-registered modalities need. Kornia's own dict
    input only recognises keys such as ``image``/``image_1``/``mask``; this
    wrapper names the keys explicitly instead. Masks may be ``[B, H, W]``
    integer tensors: they are resampled with nearest neighbour and returned
    with their shape and dtype. Other entries pass through unchanged.

    .. versionadded:: 0.1
    """

    def __init__(
        self,
        *augmentations: K.AugmentationBase2D,
        image_keys: Sequence[str] = ('image1', 'image2'),
        mask_keys: Sequence[str] = (),
    ) -> None:
        """Initialize a new PairedAugmentation instance.

        Args:
            *augmentations: Kornia augmentations, applied in order; none gives
                the identity.
            image_keys: Batch keys of the images ``[B, C, H, W]``.
            mask_keys: Batch keys of the masks ``[B, H, W]`` or
                ``[B, 1, H, W]``.
        """
        super().__init__()
        self.image_keys = tuple(image_keys)
        self.mask_keys = tuple(mask_keys)
        data_keys = ['input'] * len(self.image_keys) + ['mask'] * len(self.mask_keys)
        self.augmentations = (
            K.AugmentationSequential(*augmentations, data_keys=data_keys)
            if augmentations
            else None
        )

    def forward(self, batch: dict[str, Any]) -> dict[str, Any]:
        """Augment a batch.

        Args:
            batch: Batch with the configured image and mask keys.

        Returns:
            A new dict with the augmented entries.
        """
        if self.augmentations is None:
            return batch
        keys = self.image_keys + self.mask_keys
        out = self.augmentations(*[batch[k] for k in keys])
        if not isinstance(out, list | tuple):
            out = [out]
        batch = dict(batch)
        for key, value in zip(keys, out, strict=True):
            if key in self.mask_keys:
                value = value.reshape(batch[key].shape[:-2] + value.shape[-2:])
                value = value.to(batch[key].dtype)
            batch[key] = value
        return batch


def small_split_dataloader(
    dataset: Dataset[Sample],
    batch_size: int,
    num_workers: int,
    collate_fn: Callable[[list[Sample]], Sample],
    train: bool,
    min_batch_size: int = 1,
) -> DataLoader[Sample]:
    """Build a data loader as TorchGeo does, but keep splits smaller than a batch.

    TorchGeo's training loader always drops the last incomplete batch, so a
    training split smaller than one batch (a small label fraction, a fixture)
    gives no step at all. Here the training loader drops it only when the split
    holds at least one full batch, and an evaluation loader drops a last batch
    smaller than *min_batch_size* when it is not the only one.

    Args:
        dataset: The dataset.
        batch_size: Size of each mini-batch.
        num_workers: Number of workers for parallel data loading.
        collate_fn: Function merging samples into a batch.
        train: Whether this is the (shuffled) training loader.
        min_batch_size: Smallest evaluation batch worth keeping (2 for losses
            that normalise along the batch).

    Returns:
        The data loader.

    .. versionadded:: 0.1
    """
    n = len(dataset)  # type: ignore[arg-type]
    if train:
        drop_last = n >= batch_size
    else:
        drop_last = n > batch_size and 0 < n % batch_size < min_batch_size
    return DataLoader(
        dataset=dataset,
        batch_size=batch_size,
        shuffle=train,
        num_workers=num_workers,
        collate_fn=collate_fn,
        drop_last=drop_last,
        persistent_workers=num_workers > 0,
    )


class FractionDataModule(NonGeoDataModule):
    """Base of datamodules whose training split can be cut to a fraction.

    Stores and checks ``train_fraction`` and ``seed`` (subclasses apply
    :func:`subset_fraction` in ``setup``), and builds data loaders as
    TorchGeo's :class:`~torchgeo.datamodules.NonGeoDataModule` does, except
    that the training loader drops its last incomplete batch only when the
    training split holds at least one full batch: a small label fraction
    (or a fixture) then still yields training steps instead of none.

    .. versionadded:: 0.1
    """

    def __init__(
        self,
        dataset_class: type[NonGeoDataset],
        batch_size: int = 1,
        num_workers: int = 0,
        train_fraction: float = 1.0,
        seed: int = 0,
        as_image: Literal['image1', 'image2'] | None = None,
        **kwargs: Any,
    ) -> None:
        """Initialize a new FractionDataModule instance.

        Args:
            dataset_class: Class used to instantiate a new dataset.
            batch_size: Size of each mini-batch.
            num_workers: Number of workers for parallel data loading.
            train_fraction: Fraction of the training split to use, in (0, 1].
            seed: Seed of the training-fraction draw.
            as_image: Emit only this modality, under the key ``image``, so that
                TorchGeo's own single-input tasks (``Classification``,
                ``SemanticSegmentation``) can train on it; None keeps
                ``image1`` and ``image2``.
            **kwargs: Additional keyword arguments passed to *dataset_class*.

        Raises:
            ValueError: If *train_fraction* is not in (0, 1] or *as_image* is
                not ``image1``, ``image2`` or None.
        """
        check_fraction(train_fraction)
        if as_image not in (None, 'image1', 'image2'):
            msg = f"as_image must be 'image1', 'image2' or None, got {as_image!r}"
            raise ValueError(msg)
        super().__init__(dataset_class, batch_size, num_workers, **kwargs)
        self.train_fraction = train_fraction
        self.seed = seed
        self.as_image = as_image

    def plot(self, *args: Any, **kwargs: Any) -> None:
        """Plot nothing: the wrapped TorchGeo dataset cannot draw these samples.

        Batches here are split into modalities and normalised on the device,
        so they no longer match what the TorchGeo dataset's ``plot`` expects;
        TorchGeo's tasks skip logging a figure when this returns None.

        Args:
            *args: Ignored.
            **kwargs: Ignored.
        """
        return None

    def on_after_batch_transfer(self, batch: Sample, dataloader_idx: int) -> Sample:
        """Augment a batch on the device; keep one modality if *as_image*.

        Args:
            batch: A batch with ``image1`` and ``image2``.
            dataloader_idx: Index of the dataloader the batch comes from.

        Returns:
            The batch, with ``image`` in place of both images if *as_image*.
        """
        batch = super().on_after_batch_transfer(batch, dataloader_idx)
        if self.as_image is not None:
            batch = dict(batch)
            batch['image'] = batch.pop(self.as_image)
            batch.pop('image2' if self.as_image == 'image1' else 'image1', None)
        return batch

    def _dataloader_factory(self, split: str) -> DataLoader[Sample]:
        """Build the data loader of one split.

        Args:
            split: Either 'train', 'val', 'test', or 'predict'.

        Returns:
            The data loader.
        """
        dataset = self._valid_attribute(f'{split}_dataset', 'dataset')
        batch_size = self._valid_attribute(f'{split}_batch_size', 'batch_size')
        return small_split_dataloader(
            dataset, batch_size, self.num_workers, self.collate_fn, split == 'train'
        )
