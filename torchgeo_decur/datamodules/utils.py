"""Helpers shared by the datamodules of torchgeo-decur."""

import math
from collections.abc import Callable, Sequence, Sized
from typing import Any

import kornia.augmentation as K
import numpy as np
import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset, Subset
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


def match_bands(
    x: Tensor,
    from_bands: Sequence[str],
    to_bands: Sequence[str],
    source: str = 'input',
) -> Tensor:
    """Reorder the channels of images by band name; fill missing bands with 0.

    Used where a dataset stores a modality's bands in another order or lacks
    some, e.g. BigEarthNet's Sentinel-2 L2A (12 bands) for an encoder
    pretrained on L1C (13 bands, B10 included): B10 is filled with zeros, as
    the DeCUR paper does.

    Args:
        x: Images ``[..., C, H, W]`` with channels *from_bands*.
        from_bands: Band of each channel of *x*.
        to_bands: Bands wanted, in order.
        source: Name of the input for error messages.

    Returns:
        Images ``[..., len(to_bands), H, W]``.

    Raises:
        ValueError: If *x* does not have ``len(from_bands)`` channels, or no
            band of *to_bands* is in *from_bands*.

    .. versionadded:: 0.1
    """
    from_bands, to_bands = tuple(from_bands), tuple(to_bands)
    if x.shape[-3] != len(from_bands):
        msg = (
            f'{source} has {x.shape[-3]} channels but its bands are {list(from_bands)}'
        )
        raise ValueError(msg)
    if from_bands == to_bands:
        return x
    if not set(from_bands) & set(to_bands):
        msg = f'{source}: none of the bands {list(to_bands)} is in {list(from_bands)}'
        raise ValueError(msg)
    out = x.new_zeros(*x.shape[:-3], len(to_bands), *x.shape[-2:])
    for j, band in enumerate(to_bands):
        if band in from_bands:
            out[..., j, :, :] = x[..., from_bands.index(band), :, :]
    return out


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


def authors_fraction_indices(n: int, fraction: float, seed: int) -> list[int]:
    """The training subset as the authors' ``random_subset`` draws it.

    ``int(fraction * n)`` indices drawn **with replacement** (duplicates
    kept) by ``numpy.random.default_rng(seed).choice``
    (``src/transfer_classification_BE/linear_BE_resnet.py``; the GeoNRW
    scripts' is the same).

    Args:
        n: Number of training samples.
        fraction: Fraction of them, in (0, 1].
        seed: Seed of the draw (the authors' 42).

    Returns:
        The indices, in the order drawn.

    Raises:
        ValueError: If *fraction* is not in (0, 1] or selects no sample.

    .. versionadded:: 0.2
    """
    check_fraction(fraction)
    if fraction == 1:  # their scripts skip the draw for the full split
        return list(range(n))
    k = int(fraction * n)
    if k == 0:
        msg = f'train_fraction={fraction} of {n} samples selects none'
        raise ValueError(msg)
    return np.random.default_rng(seed).choice(n, k).tolist()
