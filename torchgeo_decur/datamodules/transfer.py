"""Base of the multimodal transfer (downstream) datamodules."""

from collections.abc import Sequence
from typing import Any, Literal

from torch.utils.data import DataLoader
from torchgeo.datamodules import NonGeoDataModule
from torchgeo.datasets import NonGeoDataset
from torchgeo.datasets.utils import Sample

from ..modalities import get_modality
from .preparation import ModalityPreprocessing
from .utils import check_fraction, small_split_dataloader

__all__ = ('TransferDataModule',)


class TransferDataModule(NonGeoDataModule):
    """Base of datamodules for downstream tasks with one image per modality.

    Datasets (:class:`~torchgeo_decur.datasets.MultimodalDataset`) return raw
    values, one key per modality (``image1``, ``image2``). After transfer to
    the device each batch is prepared as the pretrained encoders saw it
    (:class:`~torchgeo_decur.datamodules.ModalityPreprocessing`: the
    dataset's finishing step, its bands matched by name to the modality's,
    missing ones filled with zeros, the normalisation), then augmented by
    ``train_aug`` / ``aug`` as TorchGeo does.

    Also: a training split cut to a fraction (``train_fraction``, ``seed``;
    subclasses apply :func:`~torchgeo_decur.datamodules.utils.subset_fraction`
    in ``setup``), loaders that keep splits smaller than one batch, and
    ``as_image`` to feed TorchGeo's own single-input tasks.

    .. versionadded:: 0.1
    """

    #: Batch keys of the modalities.
    keys = ('image1', 'image2')

    def __init__(
        self,
        dataset_class: type[NonGeoDataset],
        modalities: Sequence[str],
        batch_size: int = 1,
        num_workers: int = 0,
        train_fraction: float = 1.0,
        seed: int = 0,
        as_image: Literal['image1', 'image2'] | None = None,
        **kwargs: Any,
    ) -> None:
        """Initialize a new TransferDataModule instance.

        Args:
            dataset_class: Class used to instantiate a new dataset (a
                :class:`~torchgeo_decur.datasets.MultimodalDataset`).
            modalities: Registered modality of ``image1`` and ``image2``, as
                the encoders were pretrained.
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
            ValueError: If *train_fraction* is not in (0, 1], *as_image* is
                not ``image1``, ``image2`` or None, or a modality is unknown.
        """
        check_fraction(train_fraction)
        if as_image not in (None, *self.keys):
            msg = f"as_image must be 'image1', 'image2' or None, got {as_image!r}"
            raise ValueError(msg)
        super().__init__(dataset_class, batch_size, num_workers, **kwargs)
        self.train_fraction = train_fraction
        self.seed = seed
        self.as_image = as_image
        self.modalities = tuple(modalities)
        self.modality_of = {
            k: get_modality(m) for k, m in zip(self.keys, modalities, strict=True)
        }
        self.preprocess = ModalityPreprocessing(self.modality_of)

    def plot(self, *args: Any, **kwargs: Any) -> None:
        """Plot nothing: the wrapped TorchGeo dataset cannot draw these samples.

        Batches here are split into modalities and preprocessed on the device,
        so they no longer match what the TorchGeo dataset's ``plot`` expects;
        TorchGeo's tasks skip logging a figure when this returns None.

        Args:
            *args: Ignored.
            **kwargs: Ignored.
        """
        return None

    def on_after_batch_transfer(self, batch: Sample, dataloader_idx: int) -> Sample:
        """Preprocess and augment a batch on the device; keep one modality if asked.

        Args:
            batch: A batch with ``image1`` and ``image2`` in raw values.
            dataloader_idx: Index of the dataloader the batch comes from.

        Returns:
            The batch, with ``image`` in place of both images if *as_image*.
        """
        splits = (self.train_dataset, self.val_dataset, self.test_dataset)
        splits += (self.predict_dataset,)
        dataset = next((d for d in splits if d is not None), None)
        if dataset is not None and self.preprocess.source is not dataset:
            # every split is of one dataset class and configuration
            self.preprocess = ModalityPreprocessing(self.modality_of, dataset)
        batch = self.preprocess(batch)
        batch = super().on_after_batch_transfer(batch, dataloader_idx)
        if self.as_image is not None:
            batch = dict(batch)
            batch['image'] = batch.pop(self.as_image)
            for key in self.keys:
                batch.pop(key, None)
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
