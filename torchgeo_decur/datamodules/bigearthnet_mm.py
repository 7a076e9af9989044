"""BigEarthNet-MM (Sentinel-1 + Sentinel-2) datamodule for DeCUR transfer."""

import os
from typing import Any, Literal

import kornia.augmentation as K
from torch.utils.data import Dataset, Subset
from torchgeo.datasets.utils import Sample

from ..datasets import BigEarthNetMM
from .transfer import TransferDataModule
from .utils import PairedAugmentation, authors_fraction_indices, subset_fraction

__all__ = ('BigEarthNetMMDataModule',)

#: Crop size of the authors' BigEarthNet-MM transfer.
AUTHORS_SIZE = 224


class BigEarthNetMMDataModule(TransferDataModule):
    """BigEarthNet-MM multi-label classification with S1 and S2 inputs.

    Uses the official train/val/test splits of BigEarthNet v1.0 through
    :class:`~torchgeo_decur.datasets.BigEarthNetMM`. After transfer to the
    device each batch becomes::

        {'image1': float32 [B, 2, H, W],   # S1 (VV, VH), as pretraining
         'image2': float32 [B, 13, H, W],  # S2 in L1C band order, B10 = 0
         'label': int64 [B, num_classes]}  # multi-hot

    BigEarthNet's Sentinel-2 is L2A (12 bands) while the DeCUR optical encoder
    was pretrained on L1C (13 bands), so B10 is inserted as zeros, as in the
    DeCUR paper (bands are matched by name to the ``s2c`` modality). Both
    modalities are preprocessed as the published encoders were pretrained
    (their modalities' ``normalization``), on the batch: S1 clipped per image
    and band to its 1st and 99th percentiles and stretched from
    ``mean - 2 std`` to ``mean + 2 std`` onto [0, 1] with the SSL4EO-S12
    statistics; S2 as ``clip(x / 10000, 0, 1)``. (The authors' BigEarthNet
    code stretches S1 with BigEarthNet's own statistics; the encoders never
    saw those, so the pretraining ones are used here.) Then every split is
    resized to *size* if given, and training batches get random horizontal
    and vertical flips (the same for both modalities).

    ``protocol='authors'`` feeds the data as the authors' BigEarthNet-MM
    scripts did (``src/transfer_classification_BE/linear_BE_resnet.py``):
    training batches RandomResizedCrop(224, scale 0.8-1.0) and both flips,
    evaluation batches Resize(256) and CenterCrop(224); the training fraction
    drawn as their ``random_subset`` draws it (``int(fraction * n)`` indices
    *with* replacement from ``numpy.random.default_rng(seed)``; their scripts
    use seed 42); and the **val** split scored by ``test`` too, as the
    published numbers were. (Their LMDB orders samples by their own listing,
    so the same seed need not select the same patches.)

    .. versionadded:: 0.1
    .. versionchanged:: 0.2
       *protocol* added.
    """

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
        modalities: tuple[str, str] = ('s1', 's2c'),
        protocol: Literal['ours', 'authors'] = 'ours',
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
                single-input tasks (see
                :class:`~torchgeo_decur.datamodules.TransferDataModule`).
            modalities: Modalities of the pretrained encoders for ``image1``
                and ``image2``.
            protocol: ``'ours'`` or ``'authors'`` (transforms, fraction draw
                and evaluation split of the authors' scripts; see above).
            **kwargs: Additional keyword arguments passed to
                :class:`~torchgeo_decur.datasets.BigEarthNetMM` (``num_classes``,
                ``download``, ...).

        Raises:
            ValueError: If *train_fraction* is not in (0, 1], *size* is not
                positive (or not 224 under the authors' protocol), or
                *protocol* is unknown.
        """
        if size is not None and size <= 0:
            msg = f'size must be a positive number of pixels, got {size!r}'
            raise ValueError(msg)
        if protocol not in ('ours', 'authors'):
            msg = f"protocol must be 'ours' or 'authors', got {protocol!r}"
            raise ValueError(msg)
        if protocol == 'authors' and size not in (None, AUTHORS_SIZE):
            msg = (
                f"protocol='authors' crops {AUTHORS_SIZE} px as the authors did; "
                f'got size={size}'
            )
            raise ValueError(msg)
        super().__init__(
            BigEarthNetMM,
            modalities,
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

        self.protocol = protocol
        flips = (K.RandomHorizontalFlip(p=0.5), K.RandomVerticalFlip(p=0.5))
        if protocol == 'authors':
            self.size = AUTHORS_SIZE
            # bilinear with half-pixel centres, as OpenCV's resize (theirs)
            crop = K.RandomResizedCrop(
                (AUTHORS_SIZE, AUTHORS_SIZE), scale=(0.8, 1.0), align_corners=False
            )
            self.train_aug = PairedAugmentation(crop, *flips)
            self.aug = PairedAugmentation(
                K.Resize(256, align_corners=False),
                K.CenterCrop((AUTHORS_SIZE, AUTHORS_SIZE)),
            )
            return
        resize = [K.Resize((size, size))] if size is not None else []
        self.aug = PairedAugmentation(*resize)
        self.train_aug = PairedAugmentation(*resize, *flips)

    def setup(self, stage: str) -> None:
        """Set up datasets; draw the training fraction.

        Args:
            stage: Either 'fit', 'validate', 'test', or 'predict'.
        """
        authors = self.protocol == 'authors'
        if authors and stage == 'test':
            self.test_dataset = self._authors_val_split()
            return
        super().setup(stage)
        if stage == 'fit' and self.train_dataset is not None:
            if authors:
                self.train_dataset = Subset(
                    self.train_dataset,
                    authors_fraction_indices(
                        len(self.train_dataset), self.train_fraction, self.seed
                    ),
                )
            else:
                self.train_dataset = subset_fraction(
                    self.train_dataset, self.train_fraction, self.seed
                )

    def _authors_val_split(self) -> Dataset[Sample]:
        """The val split, which the authors' scripts scored."""
        try:
            return self.dataset_class(split='val', **self.kwargs)
        except (OSError, ValueError, RuntimeError) as err:
            root = self.kwargs.get('root')
            msg = (
                f"protocol='authors' scores the val split, which could not be "
                f'read under {root}: {err}'
            )
            raise ValueError(msg) from err
