"""The contract of the plugin's datasets: raw samples, one key per modality.

.. versionadded:: 0.2
"""

from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Any

from torch.utils.data import Subset
from torchgeo.datasets import NonGeoDataset

__all__ = ('MultimodalDataset', 'multimodal_dataset')


class MultimodalDataset(NonGeoDataset):
    """Base class of datasets whose samples hold raw images, one key per modality.

    Samples hold each modality's image (``[C, H, W]``) or views of it
    (``[V, C, H, W]``) in raw values (dB, digital numbers, metres, ...) under
    its batch key (``image1``, ``image2``). Every consumer of a batch (the
    datamodules, explain, the probes) prepares it the same way,
    :class:`~torchgeo_decur.datamodules.ModalityPreprocessing`: first the
    dataset's own finishing step :meth:`on_device`, then per key the bands
    matched by name (:attr:`input_bands`) and the modality's normalisation.

    .. versionadded:: 0.2
    """

    #: Bands of each key in channel order, where they are not the modality's
    #: own (matched by name: reordered, missing ones filled with zeros).
    input_bands: Mapping[str, Sequence[str]] = MappingProxyType({})

    def on_device(self, batch: dict[str, Any]) -> dict[str, Any]:
        """Finish a collated batch of raw samples on its device.

        For work that is cheaper on whole batches than in the workers (e.g.
        :class:`~torchgeo_decur.datasets.SSL4EOS12Pair` resamples its coarser
        bands here). The default does nothing.

        Args:
            batch: A collated batch, on the device.

        Returns:
            The batch, with one raw image (or views) per modality key.
        """
        return batch


def multimodal_dataset(dataset: object) -> MultimodalDataset | None:
    """The :class:`MultimodalDataset` under any :class:`~torch.utils.data.Subset`.

    Args:
        dataset: A dataset, possibly wrapped in subsets, or None.

    Returns:
        The multimodal dataset, or None for a dataset without the contract.

    Raises:
        TypeError: If the dataset declares ``input_bands`` or ``on_device``
            without subclassing :class:`MultimodalDataset` (as datasets of 0.1
            did): they would be ignored.

    .. versionadded:: 0.2
    """
    while isinstance(dataset, Subset):
        dataset = dataset.dataset
    if isinstance(dataset, MultimodalDataset) or dataset is None:
        return dataset
    declared = [a for a in ('input_bands', 'on_device') if hasattr(dataset, a)]
    if declared:
        msg = (
            f'{type(dataset).__name__} declares {" and ".join(declared)} but is not '
            'a torchgeo_decur.datasets.MultimodalDataset: subclass it so that '
            'they are used'
        )
        raise TypeError(msg)
    return None
