"""Datamodule of paired SSL4EO-S12 Sentinel-1 / Sentinel-2 samples."""

from typing import Any, Literal

from ..datasets import SSL4EOS12Pair
from .paired import PairedDataModule

__all__ = ('SSL4EOS12PairDataModule',)


class SSL4EOS12PairDataModule(PairedDataModule):
    """LightningDataModule for DeCUR pretraining on SSL4EO-S12 S1/S2 pairs.

    A :class:`~torchgeo_decur.datamodules.PairedDataModule` over
    :class:`~torchgeo_decur.datasets.SSL4EOS12Pair` with the modalities
    ``s1`` and ``s2c`` (or ``s2a``): raw samples from the workers, the coarser
    Sentinel-2 bands resampled on the batch, then each modality preprocessed
    as the DeCUR weights saw it and augmented, four views independently, on
    the device. Batches are ``{'image1': [B, 2, 2, P, P], 'image2': [B, 2, C,
    P, P]}`` with P = *patch_size*.

    .. versionadded:: 0.1
    """

    def __init__(
        self,
        batch_size: int = 256,
        num_workers: int = 0,
        patch_size: int = 224,
        val_fraction: float = 0.05,
        root: str = 'data',
        optical: Literal['s2c', 's2a'] = 's2c',
        size: int | None = None,
        on_bad_sample: Literal['raise', 'skip'] = 'skip',
        max_nonfinite: float = 0.01,
        seed: int | None = None,
        **kwargs: Any,
    ) -> None:
        """Initialize a new SSL4EOS12PairDataModule instance.

        Args:
            batch_size: Size of each mini-batch (per process).
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
            on_bad_sample: What a bad band file (missing, unreadable, of the
                wrong size, or with too many non-finite pixels) does: ``'raise'``
                an error naming it, or ``'skip'`` it (another season, or another
                location, is read; counts are logged by the task).
            max_nonfinite: Largest fraction of non-finite pixels of a band that
                is filled with the band's median instead of making it bad.
            seed: Seed of the sample order, season draws and augmentation; None
                draws one from torch's generator (so ``seed_everything`` fixes
                it). A resumed run takes the seed from the checkpoint.
            **kwargs: Additional keyword arguments passed to
                :class:`~torchgeo_decur.datasets.SSL4EOS12Pair`.

        Raises:
            ValueError: If *val_fraction* is not in ``[0, 1)`` or *batch_size*
                is smaller than 2.
        """
        kwargs.setdefault('resample', 'batch')
        super().__init__(
            SSL4EOS12Pair,
            ('s1', optical),
            batch_size,
            num_workers,
            patch_size,
            val_fraction,
            seed,
            root=root,
            optical=optical,
            size=size,
            on_bad_sample=on_bad_sample,
            max_nonfinite=max_nonfinite,
            **kwargs,
        )
