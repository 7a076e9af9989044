"""Datamodule of co-located SSL4EO-S12 v1.1 modalities (Zarr chunk files)."""

from collections.abc import Sequence
from typing import Any

from ..datasets import SSL4EOS12V11
from ..datasets.ssl4eo_s12_v11 import V11_MODALITIES
from .paired import PairedDataModule

__all__ = ('SSL4EOS12V11DataModule',)


class SSL4EOS12V11DataModule(PairedDataModule):
    """LightningDataModule for DeCUR pretraining on SSL4EO-S12 v1.1.

    A :class:`~torchgeo_decur.datamodules.PairedDataModule` over
    :class:`~torchgeo_decur.datasets.SSL4EOS12V11`: two modality folders of
    v1.1 (``S1GRD`` with ``S2L1C`` or ``S2L2A``), read as the v1 reader's
    samples (Sentinel-2 without v1.1's offset of 1000), then each modality
    preprocessed as the DeCUR weights saw it (``s1``, ``s2c``, ``s2a``) and
    augmented, four views independently, on the device, exactly as
    :class:`~torchgeo_decur.datamodules.SSL4EOS12PairDataModule` does for v1.
    The sample order, the timestamp draws and the augmentation are seeded per
    sample, and a resumed run continues mid-epoch where it stopped
    (:mod:`~torchgeo_decur.datamodules.sampling`).

    .. versionadded:: 0.2
    """

    def __init__(
        self,
        batch_size: int = 256,
        num_workers: int = 0,
        patch_size: int = 224,
        val_fraction: float = 0.05,
        root: str = 'data',
        modalities: Sequence[str] = ('S1GRD', 'S2L1C'),
        split: str = 'train',
        max_cloud: float | None = None,
        seed: int | None = None,
        **kwargs: Any,
    ) -> None:
        """Initialize a new SSL4EOS12V11DataModule instance.

        Args:
            batch_size: Size of each mini-batch (per process).
            num_workers: Number of workers for parallel data loading.
            patch_size: Size of the augmented patches (random resized crops).
            val_fraction: Fraction of the locations of *split* held out for
                validation, in ``[0, 1)``; 0 disables validation.
            root: Root directory of SSL4EO-S12 v1.1 (with ``train`` and ``val``).
            modalities: The two modality folders of ``image1`` and ``image2``:
                ``S1GRD``, ``S2L1C`` or ``S2L2A``.
            split: The v1.1 split folder read (``'train'`` or ``'val'``).
            max_cloud: Largest share of cloud, cloud shadow and no-data pixels
                of a drawn Sentinel-2 timestamp; None ignores the cloud mask.
            seed: Seed of the sample order, timestamp draws and augmentation;
                None draws one from torch's generator.
            **kwargs: Additional keyword arguments passed to
                :class:`~torchgeo_decur.datasets.SSL4EOS12V11`.

        Raises:
            ValueError: If *modalities* are not two v1.1 folders with a
                registered preprocessing, or another argument is invalid.
        """
        kwargs.setdefault('finish', 'batch')
        names = [V11_MODALITIES.get(m) for m in modalities]
        if len(names) != 2 or None in names:
            usable = [m for m, n in V11_MODALITIES.items() if n is not None]
            msg = (
                f'modalities must be two of the v1.1 folders {usable}, got '
                f'{list(modalities)}'
            )
            raise ValueError(msg)
        super().__init__(
            SSL4EOS12V11,
            [str(n) for n in names],
            batch_size,
            num_workers,
            patch_size,
            val_fraction,
            seed,
            root=root,
            split=split,
            max_cloud=max_cloud,
            **kwargs,
        )
        # the dataset's modalities are v1.1's folder names
        self.kwargs['modalities'] = tuple(modalities)
