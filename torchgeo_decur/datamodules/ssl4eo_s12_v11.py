"""Datamodules of co-located SSL4EO-S12 v1.1 modalities (Zarr files, shards)."""

from collections.abc import Mapping, Sequence
from typing import Any

from torch.utils.data import DataLoader

from ..datasets import SSL4EOS12V11, SSL4EOS12V11Shards
from ..datasets.ssl4eo_s12_v11 import V11_MODALITIES
from ..datasets.ssl4eo_s12_v11_shards import SHARD_MODALITIES
from .paired import PairedDataModule
from .preparation import ModalityPreprocessing

__all__ = ('SSL4EOS12V11DataModule', 'SSL4EOS12V11ShardsDataModule')


def _registered(
    folders: Sequence[str], table: Mapping[str, str | None], what: str
) -> list[str]:
    """The registered modality of each folder of v1.1.

    Raises:
        ValueError: If fewer than two folders are given, or one has no
            registered preprocessing (names the usable ones).
    """
    names = [table.get(m) for m in folders]
    if len(names) < 2 or None in names:
        usable = [m for m, n in table.items() if n is not None]
        msg = (
            f'modalities must be two or more of the {what} {usable}, got '
            f'{list(folders)}'
        )
        raise ValueError(msg)
    return [str(n) for n in names]


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
            modalities: The modality folders of ``image1``, ``image2``, ...
                (two or more of ``S1GRD``, ``S2L1C``, ``S2L2A``).
            split: The v1.1 split folder read (``'train'`` or ``'val'``).
            max_cloud: Largest share of cloud, cloud shadow and no-data pixels
                of a drawn Sentinel-2 timestamp; None ignores the cloud mask.
            seed: Seed of the sample order, timestamp draws and augmentation;
                None draws one from torch's generator.
            **kwargs: Additional keyword arguments passed to
                :class:`~torchgeo_decur.datasets.SSL4EOS12V11`.

        Raises:
            ValueError: If *modalities* are not two or more v1.1 folders with
                a registered preprocessing, or another argument is invalid.
        """
        kwargs.setdefault('finish', 'batch')
        names = _registered(modalities, V11_MODALITIES, 'v1.1 folders')
        super().__init__(
            SSL4EOS12V11,
            names,
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


class _EpochLoader(DataLoader):  # type: ignore[type-arg]
    """A loader of a streamed dataset that starts a new epoch at each pass.

    Lightning sets the epoch of a loader's sampler, which a streamed dataset
    has none of; this loader counts its passes instead.
    """

    def __init__(
        self, dataset: SSL4EOS12V11Shards, first_epoch: int, **kwargs: Any
    ) -> None:
        super().__init__(dataset, **kwargs)
        self.epoch = first_epoch

    def __iter__(self) -> Any:
        self.dataset.set_epoch(self.epoch)  # type: ignore[attr-defined]
        self.epoch += 1
        return super().__iter__()


class SSL4EOS12V11ShardsDataModule(PairedDataModule):
    """LightningDataModule streaming SSL4EO-S12 v1.1's WebDataset shards.

    As :class:`SSL4EOS12V11DataModule`, over
    :class:`~torchgeo_decur.datasets.SSL4EOS12V11Shards`: the shards of
    ``root`` (a folder or an fsspec URL such as Hugging Face's
    ``https://huggingface.co/datasets/<repo>/resolve/main``) are dealt out
    to every DataLoader worker of every process, and every epoch reads each
    location once. The shard order and the timestamp draws follow ``(seed,
    epoch)``; the augmentation is not seeded per sample, and a resumed run
    starts its epoch over (the Zarr datamodule resumes mid-epoch exactly).
    Validation streams the *val_split* shards when given.

    .. versionadded:: 0.2
    """

    def __init__(
        self,
        batch_size: int = 256,
        num_workers: int = 0,
        patch_size: int = 224,
        root: str = 'data',
        modalities: Sequence[str] = ('S1GRD', 'S2L1C'),
        split: str = 'train',
        shards: str | Sequence[str] | None = None,
        val_split: str | None = None,
        val_shards: str | Sequence[str] | None = None,
        max_cloud: float | None = None,
        seed: int | None = None,
        **kwargs: Any,
    ) -> None:
        """Initialize a new SSL4EOS12V11ShardsDataModule instance.

        Args:
            batch_size: Size of each mini-batch (per process).
            num_workers: Number of workers for parallel data loading.
            patch_size: Size of the augmented patches (random resized crops).
            root: Folder or fsspec URL of the shards.
            modalities: The modality folders of ``image1``, ``image2``, ...
                (two or more of ``S1GRD``, ``S2L1C``, ``S2L2A``, ``DEM``; e.g.
                ``[S1GRD, S2L2A, DEM]`` for three-modality DeCUR).
            split: The split streamed for training.
            shards: The training shard names (a list, or a pattern with a
                brace range); None lists the folder.
            val_split: The split streamed for validation; None for none.
            val_shards: Its shard names; None lists the folder.
            max_cloud: Largest share of cloud, cloud shadow and no-data pixels
                of a drawn Sentinel-2 timestamp; None ignores the cloud mask.
            seed: Seed of the shard order and timestamp draws; None draws one.
            **kwargs: Additional keyword arguments passed to
                :class:`~torchgeo_decur.datasets.SSL4EOS12V11Shards`.

        Raises:
            ValueError: If *modalities* are not two or more shard folders
                with a registered preprocessing.
        """
        names = _registered(modalities, SHARD_MODALITIES, 'shard folders')
        kwargs.setdefault('finish', 'batch')
        super().__init__(
            SSL4EOS12V11Shards,
            names,
            batch_size,
            num_workers,
            patch_size,
            0.0,
            seed,
            root=root,
            max_cloud=max_cloud,
            **kwargs,
        )
        self.kwargs['modalities'] = tuple(modalities)
        self.split, self.shards = split, shards
        self.val_split, self.val_shards = val_split, val_shards
        self.epoch = 0

    def setup(self, stage: str) -> None:
        """Open the training (and validation) shards.

        Args:
            stage: Either 'fit', 'validate', 'test', or 'predict'.
        """
        if stage not in ('fit', 'validate'):
            return
        self.dataset = SSL4EOS12V11Shards(
            split=self.split, shards=self.shards, seed=self.seed, **self.kwargs
        )
        self.train_dataset = self.dataset
        self.preprocess = ModalityPreprocessing(
            self.modality_of, self.dataset, standardize=False
        )
        self.val_dataset = None
        if self.val_split is not None:
            self.val_dataset = SSL4EOS12V11Shards(
                split=self.val_split, shards=self.val_shards, seed=self.seed,
                **self.kwargs,
            )  # fmt: skip

    def _dataloader_factory(self, split: str) -> DataLoader[Any]:
        """A loader of the streamed shards of *split* ('train' or 'val').

        Args:
            split: Either 'train' or 'val'.

        Returns:
            The data loader.
        """
        dataset = self._valid_attribute(f'{split}_dataset')
        return _EpochLoader(
            dataset,
            self.epoch if split == 'train' else 0,
            batch_size=self.batch_size,
            num_workers=self.num_workers,
            collate_fn=self.collate_fn,
            drop_last=split == 'train',  # DeCUR normalises along the batch
        )

    def state_dict(self) -> dict[str, Any]:
        """The seed and the epoch the training stream reached.

        Returns:
            ``{'seed': int, 'epoch': int}``.
        """
        loader = (
            getattr(self.trainer, 'train_dataloader', None) if self.trainer else None
        )
        epoch = loader.epoch if isinstance(loader, _EpochLoader) else self.epoch
        return {'seed': self.seed, 'epoch': epoch}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Continue a checkpoint's run: its seed, from the start of its epoch.

        Args:
            state_dict: A :meth:`state_dict`.
        """
        self.seed = int(state_dict['seed'])
        self.epoch = int(state_dict.get('epoch', 0))
