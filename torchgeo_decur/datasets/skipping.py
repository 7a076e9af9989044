"""Bad samples skipped, counted and named: one rule for every dataset.

Real archives hold a few bad files: a truncated download, an undecodable
image, a tile of no data. A run of days should not die on one of them, nor
train on it. Datasets built on :class:`SkippingDataset` read a sample with
:meth:`~SkippingDataset.load_sample`; if that raises one of
:data:`BAD_SAMPLE_ERRORS` or an image is constant (:func:`check_not_constant`)
the sample is bad. With ``on_bad_sample='skip'`` (the default of the
pretraining readers and datamodules; the evaluation datasets raise by default,
as a replaced test sample would change a metric silently) another sample is
read instead, a fixed draw for each index and attempt
(:func:`fallback_index`, so reruns see the same data), and the sample says
what was replaced: ``skipped_samples`` (0 or more) and ``bad_files`` (one
``'what: reason'`` line each), which the tasks log per epoch and name in a
warning, as for SSL4EO-S12
(:class:`~torchgeo_decur.datasets.SSL4EOS12Pair`). With ``'raise'`` the first
bad sample raises its error, naming the file.

.. versionadded:: 0.2
"""

from typing import Any, Literal

import numpy as np
import torch
from rasterio.errors import RasterioError
from torch import Tensor

from .multimodal import MultimodalDataset

__all__ = (
    'BAD_SAMPLE_ERRORS',
    'ConstantImageError',
    'SkippingDataset',
    'check_not_constant',
    'fallback_index',
)

#: What reading a bad file raises: missing or unreadable files (OSError, also
#: PIL's UnidentifiedImageError), GDAL's errors, wrong sizes and contents
#: (ValueError, also :class:`ConstantImageError`).
BAD_SAMPLE_ERRORS: tuple[type[Exception], ...] = (OSError, RasterioError, ValueError)


class ConstantImageError(ValueError):
    """An image of a sample has the same value in every pixel and band.

    .. versionadded:: 0.2
    """


def check_not_constant(
    sample: dict[str, Any], keys: tuple[str, ...], what: str
) -> None:
    """Refuse a sample whose image under one of *keys* is constant.

    A constant image (an all-zero tile of no data, a failed export) carries
    nothing to learn: the encoder sees a flat patch, and after normalisation
    its features are the same for every such sample. The check is one
    ``aminmax`` per image, negligible next to reading it.

    Args:
        sample: A raw sample.
        keys: Its image keys.
        what: The sample's files, for the error.

    Raises:
        ConstantImageError: Naming the key and the value.
    """
    for key in keys:
        image = sample.get(key)
        if isinstance(image, Tensor) and image.numel():
            low, high = torch.aminmax(image)
            if bool(low == high):
                msg = f'{what}: {key} is constant (all pixels = {float(low):g})'
                raise ConstantImageError(msg)


def fallback_index(index: int, attempt: int, length: int) -> int:
    """The sample read at an attempt: *index* first, then fixed draws.

    Args:
        index: The requested sample.
        attempt: 0 for the first try.
        length: Number of samples.

    Returns:
        A sample index, a function of the arguments only; never *index* again.
    """
    if attempt == 0 or length == 1:
        return index
    draw = int(np.random.default_rng([index, attempt]).integers(length - 1))
    return draw + (draw >= index)


class SkippingDataset(MultimodalDataset):
    """Base of datasets that replace bad samples by others (see the module).

    Subclasses implement :meth:`load_sample` (a raw sample, transforms not
    applied) and :meth:`describe` (its files), and call
    :meth:`set_bad_sample_policy` in their ``__init__``; ``transforms`` is
    applied here, to the sample finally read.

    .. versionadded:: 0.2
    """

    #: ``'skip'`` bad samples (replaced, counted, named) or ``'raise'``.
    on_bad_sample: Literal['raise', 'skip'] = 'skip'
    #: Samples tried for one index before giving up.
    max_sample_attempts: int = 10
    #: Keys of the images checked by :func:`check_not_constant`.
    image_keys: tuple[str, ...] = ('image1', 'image2')
    transforms: Any = None

    def set_bad_sample_policy(
        self, on_bad_sample: Literal['raise', 'skip'], max_sample_attempts: int
    ) -> None:
        """Check and set what a bad sample does.

        Args:
            on_bad_sample: ``'skip'`` or ``'raise'``.
            max_sample_attempts: Samples tried for one index (>= 1).

        Raises:
            ValueError: If either is invalid.
        """
        if on_bad_sample not in ('raise', 'skip'):
            msg = f"on_bad_sample must be 'raise' or 'skip', got {on_bad_sample!r}"
            raise ValueError(msg)
        if max_sample_attempts < 1:
            msg = f'max_sample_attempts must be >= 1, got {max_sample_attempts}'
            raise ValueError(msg)
        self.on_bad_sample = on_bad_sample
        self.max_sample_attempts = max_sample_attempts

    def load_sample(self, index: int) -> dict[str, Any]:
        """Read one raw sample (no transforms).

        Args:
            index: The sample.

        Returns:
            The sample.
        """
        raise NotImplementedError

    def describe(self, index: int) -> str:
        """Name the files of a sample, for messages.

        Args:
            index: The sample.

        Returns:
            The file paths (or the sample's name).
        """
        return f'sample {index}'

    def __getitem__(self, index: int) -> dict[str, Any]:
        """Return a sample, or a replacement for a bad one.

        Args:
            index: The sample.

        Returns:
            The sample, transformed; with ``on_bad_sample='skip'`` also
            ``skipped_samples`` and ``bad_files``.

        Raises:
            Exception: One of :data:`BAD_SAMPLE_ERRORS` for a bad sample with
                ``on_bad_sample='raise'``.
            RuntimeError: If *max_sample_attempts* samples in a row (or all of
                them) are bad.
        """
        bad: list[str] = []
        for attempt in range(min(self.max_sample_attempts, len(self))):
            i = fallback_index(index, attempt, len(self))
            try:
                sample = self.load_sample(i)
                check_not_constant(sample, self.image_keys, self.describe(i))
            except BAD_SAMPLE_ERRORS as err:
                if self.on_bad_sample == 'raise':
                    raise
                bad.append(_reason(self.describe(i), err))
                continue
            if self.on_bad_sample == 'skip':
                sample['skipped_samples'] = torch.tensor(attempt)
                sample['bad_files'] = '\n'.join(bad)
            return self.transforms(sample) if self.transforms is not None else sample
        msg = (
            f'{type(self).__name__}: {len(bad)} samples in a row are bad, from '
            f'index {index} (of {len(self)}):\n  ' + '\n  '.join(bad)
        )
        raise RuntimeError(msg)


def _reason(what: str, err: Exception) -> str:
    """One ``'files: reason'`` line; the error's text when it names them."""
    text = ' '.join(str(err).split()) or type(err).__name__
    return text if what in text else f'{what}: {text}'
