"""A datamodule for DeCUR pretraining on Bimodal Trifeature pairs."""

from typing import Any

from ..datamodules import PairedDataModule
from .trifeature import BimodalTrifeature

__all__ = ('TrifeaturePairDataModule',)


class TrifeaturePairDataModule(PairedDataModule):
    """LightningDataModule of Bimodal Trifeature pairs for DeCUR pretraining.

    A :class:`~torchgeo_decur.datamodules.PairedDataModule` over the training
    pairs of :class:`~torchgeo_decur.lab.BimodalTrifeature` (generated
    in memory at setup), with the modalities ``trifeature1`` and
    ``trifeature2``: after transfer to the device each image is divided by
    255 and augmented twice with
    :func:`~torchgeo_decur.transforms.trifeature_augmentation`, so batches are::

        {'image1': [B, 2, 3, P, P], 'image2': [B, 2, 3, P, P],  # in [0, 1]
         'shape', 'texture1', 'texture2', 'colour1', 'colour2',
         'synergy': int64 [B]}

    with P = *patch_size*; the labels pass through for probes. *biased*
    pretrains on the biased set of the synergy experiment (every pair has
    ``colour2 = M[texture1]``).

    Two seeds: *seed* generates the data (which pairs, how they are
    rendered), *sample_seed* is the datamodule's own (the order of the
    samples and the augmentation, see
    :class:`~torchgeo_decur.datamodules.PairedDataModule`).

    .. versionadded:: 0.1
    """

    def __init__(
        self,
        batch_size: int = 256,
        num_workers: int = 0,
        patch_size: int = 32,
        val_fraction: float = 0.0,
        num_pairs: int = 10000,
        size: int = 32,
        biased: bool = False,
        seed: int = 0,
        sample_seed: int | None = None,
        **kwargs: Any,
    ) -> None:
        """Initialize a new TrifeaturePairDataModule instance.

        Args:
            batch_size: Size of each mini-batch (per process).
            num_workers: Number of workers for parallel data loading.
            patch_size: Size of the augmented patches (random resized crops).
            val_fraction: Fraction of the pairs held out for validation, in
                ``[0, 1)``; 0 disables validation.
            num_pairs: Number of training pairs generated.
            size: Side of the generated images in pixels.
            biased: Whether every pair has ``colour2 = M[texture1]``.
            seed: Seed of the data generation.
            sample_seed: Seed of the sample order and augmentation; None draws
                one from torch's generator. A resumed run takes it from the
                checkpoint.
            **kwargs: Further arguments of
                :class:`~torchgeo_decur.lab.BimodalTrifeature`
                (``split_seed``, ``synergy_seed``, ``transforms``).
        """
        super().__init__(
            BimodalTrifeature,
            ('trifeature1', 'trifeature2'),
            batch_size,
            num_workers,
            patch_size,
            val_fraction,
            sample_seed,
            split='train',
            num_pairs=num_pairs,
            size=size,
            biased=biased,
            **kwargs,
        )
        # the dataset's seed: the datamodule's own ``seed`` (order and
        # augmentation) is *sample_seed* above
        self.kwargs['seed'] = seed
