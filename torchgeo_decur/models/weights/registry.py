"""Registration of the DeCUR weight enums, in one place.

:func:`register_weights` (called when :mod:`torchgeo_decur` is imported) adds
the enums to TorchGeo's registry, so that :func:`torchgeo.models.get_weight`
finds them by name; :func:`published_entry` finds the entry of a published
file by its name.

.. versionadded:: 0.1
"""

import os
import re
from typing import Any, cast

from torchgeo.models import api as _torchgeo_api
from torchvision.models._api import WeightsEnum

from .base import DeCURWeightsEnum
from .mit import MiTB2_Weights, MiTB5_Weights
from .resnet import ResNet50_Weights
from .vit import ViTSmall16_Weights

__all__ = ('REGISTRY', 'published_entry', 'register_weights')

#: Keys under which the enums are added to TorchGeo's weight registry.
REGISTRY: dict[str, type[DeCURWeightsEnum]] = {
    'decur_resnet50': ResNet50_Weights,
    'decur_vit_small_patch16_224': ViTSmall16_Weights,
    'decur_mit_b2': MiTB2_Weights,
    'decur_mit_b5': MiTB5_Weights,
}


def register_weights() -> None:
    """Add the DeCUR weight enums to TorchGeo's registry.

    Afterwards :func:`torchgeo.models.get_weight` resolves names such as
    ``'ResNet50_Weights.DECUR_S1S2'`` and
    :func:`torchgeo.models.get_model_weights` returns the enums for
    ``'decur_resnet50'``, ``'decur_vit_small_patch16_224'``,
    ``'decur_mit_b2'`` and ``'decur_mit_b5'``. Called when :mod:`torchgeo_decur` is
    imported; calling it again is harmless.

    .. versionadded:: 0.1
    """
    registry = cast(dict[Any, type[WeightsEnum]], _torchgeo_api._model_weights)
    registry.update(REGISTRY)


#: Hash suffix of TorchGeo's pinned copies of published files.
_HASH_SUFFIX = re.compile(r'-[0-9a-f]{8,}$')


def published_entry(file_name: str) -> 'DeCURWeightsEnum | None':
    """The weight entry of one of the authors' published files, by file name.

    Args:
        file_name: A file name such as ``rn50_geonrw_rgb_decur_ep100.pth``, or
            TorchGeo's pinned copy of one, with a hash suffix before
            ``.pth`` (``rn50_ssl4eo-s12_sar_decur_ep100-f0e69ba2.pth``).

    Returns:
        The entry serving that file (the joint entry for a joint file, the
        per-modality entry for a backbone-only file), or None.

    .. versionadded:: 0.1
    """
    stem, suffix = os.path.splitext(os.path.basename(file_name))
    name = _HASH_SUFFIX.sub('', stem) + suffix
    for enum in REGISTRY.values():
        for member in enum:  # joint members come before their modalities
            if member.meta['file'] == name:
                return member
    return None
