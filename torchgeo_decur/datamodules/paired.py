"""A datamodule for paired multimodal self-supervised pretraining."""

import warnings
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset, random_split
from torchgeo.datamodules import NonGeoDataModule
from torchgeo.datasets import NonGeoDataset
from torchgeo.datasets.utils import Sample

from ..modalities import Modality, get_modality
from ..transforms import MultiViewAugmentation
from .utils import match_bands, small_split_dataloader

__all__ = ('ModalityPreprocessing', 'PairedDataModule')


class ModalityPreprocessing(nn.Module):
    """Put each image key of a batch into its modality's bands and value range.

    For each key, the channels are matched to the modality's bands by name
    (:func:`~torchgeo_decur.datamodules.utils.match_bands`, if the dataset
    says which bands it returns) and the modality's preprocessing is applied,
    on the whole batch (``[B, C, H, W]`` or views ``[B, V, C, H, W]``) on the
    device it lives on. Other keys pass through.

    .. versionadded:: 0.1
    """

    def __init__(
        self,
        modalities: dict[str, Modality],
        input_bands: dict[str, Sequence[str]] | None = None,
    ) -> None:
        """Initialize a new ModalityPreprocessing instance.

        Args:
            modalities: Modality of each batch key.
            input_bands: Bands of each batch key as the dataset returns them;
                None (or a missing key) if they are the modality's already.
        """
        super().__init__()
        self.modalities = dict(modalities)
        self.input_bands = {k: tuple(v) for k, v in (input_bands or {}).items()}
        self.normalize = nn.ModuleDict(
            {key: m.normalizer() for key, m in self.modalities.items()}
        )

    def forward(self, batch: dict[str, Any]) -> dict[str, Any]:
        """Preprocess a batch.

        Args:
            batch: A batch with an image tensor for each configured key.

        Returns:
            A new dict with the preprocessed images.

        Raises:
            KeyError: If the batch lacks a configured key.
        """
        out = dict(batch)
        for key, modality in self.modalities.items():
            if key not in batch:
                msg = f'batch has no {key!r} ({modality.name}); keys: {sorted(batch)}'
                raise KeyError(msg)
            x: Tensor = batch[key]
            x = x if torch.is_floating_point(x) else x.float()
            bands = self.input_bands.get(key)
            if bands is not None and bands != modality.bands:
                x = match_bands(x, bands, modality.bands, f'{key} ({modality.name})')
            out[key] = self.normalize[key](x)
        return out


class PairedDataModule(NonGeoDataModule):
    """LightningDataModule for paired multimodal self-supervised pretraining.

    Works with any dataset whose samples hold two views of each of two
    modalities, ``{'image1': [2, C1, H, W], 'image2': [2, C2, H, W]}``, in
    **raw** values (dB, digital numbers, metres, ...), and any two registered
    modalities (:func:`~torchgeo_decur.modalities.register_modality`). After
    transfer to the device (the GPU when there is one), each batch is

    1. finished by the dataset, if it defines ``on_device(batch)`` (e.g.
       :class:`~torchgeo_decur.datasets.SSL4EOS12Pair` resamples its coarser
       bands there);
    2. put into each modality's bands (by name, if the dataset has an
       ``input_bands`` mapping) and preprocessed by its ``normalization``;
    3. augmented view by view with the modality's ``augmentation``, each of
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
    a single sample.

    Subclasses (e.g. :class:`~torchgeo_decur.datamodules.SSL4EOS12PairDataModule`)
    only fix the dataset class and the modalities.

    .. versionadded:: 0.1
    """

    #: Seed of the train/validation split.
    split_seed = 0

    #: Batch keys of modality 1 and modality 2.
    keys = ('image1', 'image2')

    def __init__(
        self,
        dataset_class: type[NonGeoDataset],
        modalities: Sequence[str] = ('s1', 's2c'),
        batch_size: int = 256,
        num_workers: int = 0,
        patch_size: int = 224,
        val_fraction: float = 0.05,
        **kwargs: Any,
    ) -> None:
        """Initialize a new PairedDataModule instance.

        Args:
            dataset_class: Class of the dataset; instantiated with *kwargs*.
            modalities: Registered modality names of ``image1`` and ``image2``.
            batch_size: Size of each mini-batch (per process).
            num_workers: Number of workers for parallel data loading.
            patch_size: Size of the augmented patches (random resized crops).
            val_fraction: Fraction of the samples held out for validation, in
                ``[0, 1)``; 0 disables validation.
            **kwargs: Additional keyword arguments passed to *dataset_class*.

        Raises:
            ValueError: If *val_fraction* is not in ``[0, 1)``, *batch_size* is
                smaller than 2, or *modalities* does not name two registered
                modalities.
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
        if len(modalities) != 2:
            msg = f'modalities must name two modalities, got {list(modalities)}'
            raise ValueError(msg)
        super().__init__(dataset_class, batch_size, num_workers, **kwargs)
        self.modalities = tuple(modalities)
        self.patch_size = patch_size
        self.val_fraction = val_fraction
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
        """
        if stage not in ('fit', 'validate'):
            return
        self.dataset = self.dataset_class(**self.kwargs)
        self.preprocess = ModalityPreprocessing(
            self.modality_of, getattr(self.dataset, 'input_bands', None)
        )
        n = len(self.dataset)  # type: ignore[arg-type]
        n_val = round(n * self.val_fraction)
        if self.val_fraction > 0:
            # keep at least one sample on each side when there are two or more
            n_val = min(max(n_val, 1), n - 1)
        if n_val > 0:
            generator = torch.Generator().manual_seed(self.split_seed)
            self.train_dataset, self.val_dataset = random_split(
                self.dataset, [n - n_val, n_val], generator
            )
        else:
            self.train_dataset = self.dataset
            self.val_dataset = None

    def on_after_batch_transfer(self, batch: Sample, dataloader_idx: int) -> Sample:
        """Finish, preprocess and augment a batch on the device.

        Args:
            batch: A batch of raw samples.
            dataloader_idx: Index of the dataloader the batch comes from.

        Returns:
            The augmented batch.
        """
        finish = getattr(getattr(self, 'dataset', None), 'on_device', None)
        if finish is not None:
            batch = finish(batch)
        if self.preprocess is None:
            self.preprocess = ModalityPreprocessing(self.modality_of)
        batch = self.preprocess(batch)
        return super().on_after_batch_transfer(batch, dataloader_idx)

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
