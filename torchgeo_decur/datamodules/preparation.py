"""The one preparation of raw batches, for every consumer.

The pretraining and transfer datamodules, explain, the probes and the demo
all turn a collated batch of raw samples into encoder inputs with
:class:`ModalityPreprocessing`, so that each gets the same device-side
finishing, band matching and normalisation.

.. versionadded:: 0.2
"""

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.data import Dataset

from ..datasets.multimodal import multimodal_dataset
from ..modalities import Modality, get_modality
from .utils import match_bands

__all__ = ('ModalityPreprocessing',)


class ModalityPreprocessing(nn.Module):
    """Put each image key of a raw batch into its modality's bands and range.

    1. The dataset's finishing step
       (:meth:`~torchgeo_decur.datasets.MultimodalDataset.on_device`).
    2. Per key: float, the channels matched to the modality's bands by name
       (:func:`~torchgeo_decur.datamodules.utils.match_bands`) where the
       dataset returns others
       (:attr:`~torchgeo_decur.datasets.MultimodalDataset.input_bands`), and
       the modality's normalisation.

    A dataset that declares only part of a modality's bands gets the others
    filled with zeros (BigEarthNet's Sentinel-2 L2A lacks B10 of the L1C
    encoder, as in the DeCUR paper). More than ``max_zero_filled`` (half) of
    a modality's channels filled is refused when the preparation is built:
    the encoder would see mostly empty channels, a different input from the
    one it was trained on, and features that mean little.

    Works on whole batches (``[B, C, H, W]`` or views ``[B, V, C, H, W]``) on
    the device they live on; other keys pass through. With
    ``standardize=False`` a modality's
    :attr:`~torchgeo_decur.modalities.Modality.standardization` is left to its
    augmentation (pretraining).

    .. versionadded:: 0.1
    """

    def __init__(
        self,
        modalities: Mapping[str, Modality | str],
        source: Dataset[Any] | Mapping[str, Sequence[str]] | None = None,
        standardize: bool = True,
        max_zero_filled: float = 0.5,
    ) -> None:
        """Initialize a new ModalityPreprocessing instance.

        Args:
            modalities: Modality (or its name) of each batch key.
            source: The dataset the batches come from (a
                :class:`~torchgeo_decur.datasets.MultimodalDataset`, possibly in
                a :class:`~torch.utils.data.Subset`), or the bands of each key
                as returned; None if they are the modalities' own.
            standardize: Whether to apply the modalities' standardization.
            max_zero_filled: Largest share of a modality's channels that may be
                filled with zeros because the dataset lacks their bands;
                ``1.0`` accepts any share. Bands given as a mapping are taken
                as the caller states them, unchecked.

        Raises:
            TypeError: If *source* declares ``input_bands`` or ``on_device``
                without being a :class:`~torchgeo_decur.datasets.MultimodalDataset`.
            ValueError: If a modality name is not registered,
                *max_zero_filled* is not in [0, 1], or a dataset lacks more than
                *max_zero_filled* of a modality's bands.

        .. versionchanged:: 0.2
           *max_zero_filled*.
        """
        super().__init__()
        if not 0 <= max_zero_filled <= 1:
            msg = f'max_zero_filled must be in [0, 1], got {max_zero_filled}'
            raise ValueError(msg)
        #: What the preparation was built from.
        self.source = source
        self.modalities = {
            k: m if isinstance(m, Modality) else get_modality(m)
            for k, m in modalities.items()
        }
        if isinstance(source, Mapping):
            self.dataset, input_bands = None, source
        else:
            self.dataset = multimodal_dataset(source)
            input_bands = self.dataset.input_bands if self.dataset is not None else {}
        self.input_bands = {k: tuple(v) for k, v in input_bands.items()}
        if self.dataset is not None:
            self._check_zero_fill(max_zero_filled)
        self.normalize = nn.ModuleDict(
            {key: m.normalizer(standardize) for key, m in self.modalities.items()}
        )

    def _check_zero_fill(self, max_zero_filled: float) -> None:
        """Refuse a dataset that lacks most of a modality's bands.

        Args:
            max_zero_filled: Largest share of a modality's channels that may be
                filled with zeros.

        Raises:
            ValueError: If more than that share of a modality's bands is missing
                from the dataset's.
        """
        for key, modality in self.modalities.items():
            bands = self.input_bands.get(key, modality.bands)
            missing = [b for b in modality.bands if b not in bands]
            if len(missing) > max_zero_filled * len(modality.bands):
                msg = (
                    f"{key} ({modality.name}): {len(missing)} of the modality's "
                    f'{len(modality.bands)} bands are not in the data '
                    f'({", ".join(bands)}) and would be filled with zeros: '
                    f'{", ".join(missing)}. That is more than max_zero_filled='
                    f'{max_zero_filled:g} of its channels: the encoder would see '
                    'mostly empty input. Pass ModalityPreprocessing(..., '
                    'max_zero_filled=1.0) to accept it, or choose the modality '
                    'of the data'
                )
                raise ValueError(msg)

    def forward(self, batch: Mapping[str, Any]) -> dict[str, Any]:
        """Prepare a batch.

        Args:
            batch: A collated batch of raw samples.

        Returns:
            A new dict with the prepared images.

        Raises:
            KeyError: If the batch lacks a configured key.
            ValueError: If an image has another number of channels than its
                bands (the declared ones, else the modality's), or none of the
                modality's bands.
        """
        out = dict(batch)
        if self.dataset is not None:
            out = self.dataset.on_device(out)
        for key, modality in self.modalities.items():
            if key not in out:
                msg = f'batch has no {key!r} ({modality.name}); keys: {sorted(out)}'
                raise KeyError(msg)
            x: Tensor = out[key]
            x = x if torch.is_floating_point(x) else x.float()
            name = f'{key} ({modality.name})'
            bands = self.input_bands.get(key, modality.bands)
            if bands != modality.bands or x.shape[-3] != len(bands):
                x = match_bands(x, bands, modality.bands, name)
            out[key] = self.normalize[key].to(x.device)(x)
        return out
