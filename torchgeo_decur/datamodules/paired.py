"""A datamodule for paired multimodal self-supervised pretraining."""

import warnings
from collections.abc import Sequence
from typing import Any

import torch
from torch.utils.data import DataLoader, Subset
from torchgeo.datamodules import NonGeoDataModule
from torchgeo.datasets import NonGeoDataset
from torchgeo.datasets.utils import Sample

from ..modalities import get_modality
from ..transforms import MultiViewAugmentation
from .preparation import ModalityPreprocessing
from .sampling import SeededDataLoader, SeededDataset, SeededSampler, derive_seed

__all__ = ('PairedDataModule',)


class PairedDataModule(NonGeoDataModule):
    """LightningDataModule for paired multimodal self-supervised pretraining.

    Works with any dataset whose samples hold two views of each of two
    modalities, ``{'image1': [2, C1, H, W], 'image2': [2, C2, H, W]}``, or
    one image of each (``[C, H, W]``, augmented twice, e.g. an RGB tile and
    its DEM), in **raw** values (dB, digital numbers, metres, ...), and any
    two registered modalities
    (:func:`~torchgeo_decur.modalities.register_modality`). After transfer to
    the device (the GPU when there is one), each batch is

    1. prepared by :class:`~torchgeo_decur.datamodules.ModalityPreprocessing`:
       the dataset's finishing step, if it is a
       :class:`~torchgeo_decur.datasets.MultimodalDataset` (e.g.
       :class:`~torchgeo_decur.datasets.SSL4EOS12Pair` resamples its coarser
       bands there), then each modality's bands (by name) and its
       ``normalization``;
    2. augmented view by view with the modality's ``augmentation``, each of
       the four views of a sample with its own random draws.

    Batches are then ``{'image1': [B, 2, C1, P, P], 'image2': [B, 2, C2, P,
    P]}`` with P = *patch_size*. Validation batches are augmented the same way,
    so that the validation loss compares augmented views as in training.

    A fraction of the samples (*val_fraction*) is held out for validation with
    a fixed random split (seed 0), the same in every process.

    Batch statistics: DeCUR, like Barlow Twins, normalises embeddings along
    the batch, so every batch needs at least 2 samples. Training batches are
    therefore all full (``drop_last=True``) when the training set has at least
    *batch_size* samples; a smaller training set gives a single batch. The
    validation loader keeps every sample, except that it drops a last batch of
    a single sample. A validation split of fewer than 2 samples (say 1 of a
    2-location dataset) is not used: one warning says so, and every sample
    trains.

    Reproducible and resumable (see :mod:`torchgeo_decur.datamodules.sampling`):
    the order of the samples of each epoch, the random draws of each sample
    (e.g. its seasons) and the augmentation of each batch are functions of
    *seed* (recorded in checkpoints), the epoch and the position in it, and
    the training loader tells Lightning how far into the epoch the run got.
    So ``torchgeo fit --ckpt_path last.ckpt`` after an interruption reads and
    augments the very views the uninterrupted run would have. Under DDP each
    process reads its own share of each epoch.

    Subclasses (e.g. :class:`~torchgeo_decur.datamodules.SSL4EOS12PairDataModule`)
    only fix the dataset class and the modalities.

    .. versionadded:: 0.1
    """

    #: Seed of the train/validation split.
    split_seed = 0

    #: Batch keys of the modalities: ``image1``, ``image2``, ... (set per
    #: instance from *modalities*).
    keys: tuple[str, ...] = ('image1', 'image2')

    def __init__(
        self,
        dataset_class: type[NonGeoDataset],
        modalities: Sequence[str] = ('s1', 's2c'),
        batch_size: int = 256,
        num_workers: int = 0,
        patch_size: int = 224,
        val_fraction: float = 0.05,
        seed: int | None = None,
        **kwargs: Any,
    ) -> None:
        """Initialize a new PairedDataModule instance.

        Args:
            dataset_class: Class of the dataset; instantiated with *kwargs*.
            modalities: Registered modality names of ``image1``, ``image2``,
                ... (two or more; the dataset gives one key per modality).
            batch_size: Size of each mini-batch (per process).
            num_workers: Number of workers for parallel data loading.
            patch_size: Size of the augmented patches (random resized crops).
            val_fraction: Fraction of the samples held out for validation, in
                ``[0, 1)``; 0 disables validation.
            seed: Seed of the sample order, draws and augmentation; None draws
                one from torch's generator (so ``seed_everything`` fixes it).
                A resumed run takes the seed from the checkpoint.
            **kwargs: Additional keyword arguments passed to *dataset_class*.

        Raises:
            ValueError: If *val_fraction* is not in ``[0, 1)``, *batch_size* is
                smaller than 2, or *modalities* does not name two or more
                registered modalities.
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
        if len(modalities) < 2:
            msg = f'modalities must name two or more modalities, got {list(modalities)}'
            raise ValueError(msg)
        super().__init__(dataset_class, batch_size, num_workers, **kwargs)
        self.modalities = tuple(modalities)
        self.keys = tuple(f'image{i}' for i in range(1, len(modalities) + 1))
        self.patch_size = patch_size
        self.val_fraction = val_fraction
        if seed is None:
            seed = int(torch.empty((), dtype=torch.int64).random_(2**62))
        self.seed = seed
        self.train_sampler: SeededSampler | None = None
        self._resume_position: dict[str, int] | None = None
        self.modality_of = {
            key: get_modality(name)
            for key, name in zip(self.keys, self.modalities, strict=True)
        }
        self.preprocess: ModalityPreprocessing | None = None
        augment = MultiViewAugmentation(
            {key: m.augmenter(patch_size) for key, m in self.modality_of.items()}
        )
        # TorchGeo applies self.aug / train_aug / val_aug after the transfer;
        # the preprocessing runs first (see on_after_batch_transfer)
        self.aug = self.train_aug = self.val_aug = augment

    def setup(self, stage: str) -> None:
        """Set up the datasets and the preprocessing.

        Args:
            stage: Either 'fit', 'validate', 'test', or 'predict'.

        Raises:
            ValueError: If the dataset is empty.
        """
        if stage not in ('fit', 'validate'):
            return
        self.dataset = self.dataset_class(**self.kwargs)
        # the augmentation standardizes last
        self.preprocess = ModalityPreprocessing(
            self.modality_of, self.dataset, standardize=False
        )
        n = len(self.dataset)  # type: ignore[arg-type]
        if n == 0:
            msg = f'{type(self.dataset).__name__} of {self.kwargs} holds no sample'
            raise ValueError(msg)
        n_val = round(n * self.val_fraction) if self.val_fraction > 0 else 0
        if self.val_fraction > 0:
            # keep at least one sample on each side when there are two or more
            n_val = min(max(n_val, 1), n - 1)
        if 0 < n_val < 2:
            msg = (
                f'val_fraction={self.val_fraction} of {n} samples gives a validation '
                f'split of {n_val}: DeCUR normalises along the batch and needs at '
                f'least 2 samples per batch, so there is no validation and all {n} '
                'samples train'
            )
            warnings.warn(msg, UserWarning, stacklevel=2)
            n_val = 0
        generator = torch.Generator().manual_seed(self.split_seed)
        order = torch.randperm(n, generator=generator).tolist()
        self.train_dataset = Subset(self.dataset, sorted(order[: n - n_val]))
        self.val_dataset = (
            Subset(self.dataset, sorted(order[n - n_val :])) if n_val else None
        )

    def state_dict(self) -> dict[str, Any]:
        """What a checkpoint records of the datamodule: seed and position.

        The position in the training epoch is kept here rather than in the
        loader's own state, which Lightning restores only to loaders created
        after its loops are restored, while a task that asks for
        ``trainer.estimated_stepping_batches`` creates the loader before.

        Returns:
            ``{'seed': int, 'train_position': dict or None}`` (see
            :meth:`~torchgeo_decur.datamodules.sampling.SeededSampler.state_dict`).
        """
        position = None
        if self.train_sampler is not None:
            position = self.train_sampler.state_dict(self.batch_size)
        return {'seed': self.seed, 'train_position': position}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Continue a checkpoint's run: its seed, and its place in the epoch.

        Args:
            state_dict: A :meth:`state_dict`.
        """
        self.seed = int(state_dict['seed'])
        self._resume_position = state_dict.get('train_position')

    def on_before_batch_transfer(self, batch: Sample, dataloader_idx: int) -> Sample:
        """Derive the augmentation seed of a batch; count the batches trained on.

        Args:
            batch: A batch of raw samples, with their ``sample_seed``.
            dataloader_idx: Index of the dataloader the batch comes from.

        Returns:
            The batch, with ``augmentation_seed`` (a Python int) in place of
            the sample seeds.
        """
        batch = dict(batch)
        seeds = batch.pop('sample_seed', None)
        if seeds is not None:
            batch['augmentation_seed'] = derive_seed(*seeds.tolist())
        trainer = self.trainer
        if trainer is not None and trainer.training and self.train_sampler is not None:
            self.train_sampler.consumed_batches += 1
        return batch

    def on_after_batch_transfer(self, batch: Sample, dataloader_idx: int) -> Sample:
        """Finish, preprocess and augment a batch on the device.

        Args:
            batch: A batch of raw samples.
            dataloader_idx: Index of the dataloader the batch comes from.

        Returns:
            The augmented batch.
        """
        batch = dict(batch)
        seed = batch.pop('augmentation_seed', None)
        if self.preprocess is None:
            self.preprocess = ModalityPreprocessing(self.modality_of, standardize=False)
        batch = self.preprocess(batch)
        for key in self.keys:  # one image per modality: two views of it
            if key in batch and batch[key].ndim == 4:
                batch[key] = batch[key].unsqueeze(1).expand(-1, 2, -1, -1, -1)
        if seed is None:
            return super().on_after_batch_transfer(batch, dataloader_idx)
        image = batch[self.keys[0]]
        devices = [image.device] if image.device.type == 'cuda' else []
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(seed)
            return super().on_after_batch_transfer(batch, dataloader_idx)

    def _dataloader_factory(self, split: str) -> DataLoader[Sample]:
        """Build a loader of seeded samples (resumable for training).

        Args:
            split: Either 'train' or 'val'.

        Returns:
            The data loader.
        """
        subset: Subset[Sample] = self._valid_attribute(f'{split}_dataset')
        train = split == 'train'
        sampler = SeededSampler(subset.indices, self.seed, shuffle=train)
        n = len(sampler)  # this process's share
        if train and n < 2:
            msg = (
                f'the training set has {n} sample(s): DeCUR normalises along '
                'the batch and needs at least 2 samples per batch'
            )
            warnings.warn(msg, UserWarning, stacklevel=2)
        if train:
            drop_last = n >= self.batch_size
        else:  # drop a last batch of one sample, unless it is the only one
            drop_last = n > self.batch_size and n % self.batch_size == 1
        if train and self._resume_position is not None:
            sampler.load_state_dict(self._resume_position)
            self._resume_position = None
        loader = SeededDataLoader(
            SeededDataset(self.dataset),
            batch_size=self.batch_size,
            sampler=sampler,
            num_workers=self.num_workers,
            collate_fn=self.collate_fn,
            drop_last=drop_last,
            persistent_workers=self.num_workers > 0,
            generator=torch.Generator().manual_seed(derive_seed(self.seed, 1)),
        )
        if train:
            self.train_sampler = sampler
        return loader

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
