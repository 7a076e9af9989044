"""Pre-trained DeCUR weights and one loader for every DeCUR weight file format.

DeCUR pre-trains one encoder per modality, so a DeCUR checkpoint holds two
backbones. This module offers them in two ways:

* **Joint** weight entries (e.g. :attr:`ResNet50_Weights.DECUR_S1S2`) describe
  both encoders. Their ``get_state_dict()`` returns ``{modality: state_dict}``
  and :meth:`DeCURWeightsEnum.modality` picks one encoder.
* **Per-modality** entries (e.g. :attr:`ResNet50_Weights.DECUR_S1S2_S1`) look
  like TorchGeo's single-modality entries (``meta['in_chans']``,
  ``meta['bands']``) and their ``get_state_dict()`` returns one timm state
  dict, so TorchGeo's own tasks accept them by name::

      Classification(
          model='resnet50', weights='ResNet50_Weights.DECUR_S1S2_S1',
          in_channels=2, num_classes=10,
      )

  (in YAML: ``weights: ResNet50_Weights.DECUR_S1S2_S1``; the YAML must also
  make LightningCLI import :mod:`torchgeo_decur`, e.g. through a
  ``class_path`` of this package, for the name to be registered).

Importing :mod:`torchgeo_decur` adds the enums to TorchGeo's registry, so that
:func:`torchgeo.models.get_weight` finds them by name.

TorchGeo's tasks and these entries:

* ``Classification`` (any *task*): ResNet-50 and ViT-S/16 per-modality entries.
* ``SemanticSegmentation``: ResNet-50 per-modality entries with smp's
  ``resnet50`` encoder (``unet``, ``deeplabv3+``, ``upernet``, ``segformer``
  models), whose keys equal timm's. Not the ViT-S/16 entries: smp's
  ``tu-vit_small_patch16_224`` encoder (``dpt``) expects keys prefixed with
  ``model.`` and a ``head``, and TorchGeo loads encoder weights strictly.
* Joint entries are for this package (e.g. ``create_encoder(..., modality=)``);
  TorchGeo's tasks would receive ``{modality: state_dict}`` and fail.

:func:`load_decur_state_dicts` reads every format a DeCUR encoder can come in
(weight entries, their names, the authors' joint files, files written by
:func:`torchgeo_decur.export.export_checkpoint` and DeCUR Lightning
checkpoints) and returns one timm state dict per modality.
"""

import json
import os
import re
import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, cast

import torch
import torchvision.transforms.v2 as T
from torch import Tensor, nn
from torchgeo.models import api as _torchgeo_api
from torchgeo.models import get_weight
from torchvision.models._api import Weights, WeightsEnum

from ..datasets.modalities import MODALITIES
from ..datasets.normalize import (
    normalize_dem,
    normalize_rgb,
    normalize_s1,
    normalize_s2,
)

__all__ = (
    'DeCURTransforms',
    'DeCURWeightsEnum',
    'NotDeCURCheckpointError',
    'ResNet50_Weights',
    'ViTSmall16_Weights',
    'convert_input_layer',
    'load_decur_state_dict',
    'load_decur_state_dicts',
    'modality_transforms',
    'parse_decur_lightning_checkpoint',
    'published_entry',
    'read_decur_checkpoint',
    'register_weights',
    'select_state_dict',
    'source_bands',
    'split_joint_state_dict',
    'state_dict_mismatches',
)

_HF = 'https://huggingface.co/wangyi111/DeCUR/resolve/main/'
_PUBLICATION = 'https://arxiv.org/abs/2309.05300'
_REPO = 'https://github.com/zhu-xlab/DeCUR'

#: Classifier keys dropped from the authors' backbones (``fc`` / ``head``);
#: timm models created with ``num_classes=0`` have none.
_CLASSIFIER_KEYS = frozenset({'fc.weight', 'fc.bias', 'head.weight', 'head.bias'})

#: First-layer weights of the backbones the weight entries describe.
_INPUT_CONV_KEYS = ('conv1.weight', 'patch_embed.proj.weight')

#: Default modality names of joint files that do not name their modalities.
DEFAULT_MODALITY_NAMES = ('modality1', 'modality2')

#: ``format`` field of the metadata written by the export.
EXPORT_FORMAT = 'torchgeo-decur-export'


class NotDeCURCheckpointError(ValueError):
    """A file is not a DeCUR checkpoint (for example one of another method).

    .. versionadded:: 0.1
    """


# --------------------------------------------------------------------------- #
# Transforms
# --------------------------------------------------------------------------- #

#: Preprocessing function of each modality with a known normalisation.
_NORMALISE: dict[str, Callable[[Tensor], Tensor]] = {
    's1': normalize_s1,
    's2c': normalize_s2,
    's2a': normalize_s2,
    'rgb': normalize_rgb,
    'hha': normalize_rgb,
    'dem': normalize_dem,
}


class _Normalise(nn.Module):
    """Preprocess raw inputs of one modality, warning on implausible ranges."""

    def __init__(self, name: str) -> None:
        super().__init__()
        self.name = name
        self.fn = _NORMALISE[name]
        self.check = MODALITIES[name].raw_check

    def forward(self, x: Tensor) -> Tensor:
        """Preprocess *x* of shape ``(..., C, H, W)``."""
        x = x.float() if not torch.is_floating_point(x) else x
        if self.check is not None:
            problem = self.check(x)
            if problem is not None:
                warnings.warn(
                    f'{problem} (modality {self.name!r}: '
                    f'{MODALITIES[self.name].normalisation})',
                    UserWarning,
                    stacklevel=2,
                )
        return self.fn(x)

    def extra_repr(self) -> str:
        return f'{self.name!r}, {self.fn.__name__}'


def modality_transforms(name: str, size: int = 224) -> nn.Module:
    """Evaluation transforms of one modality, from raw input to the encoder's.

    The preprocessing the DeCUR encoders were trained with (see
    :mod:`torchgeo_decur.datasets.normalize`), applied to the raw image as the
    authors applied it to whole tiles, then ``Resize(size * 8 / 7)`` and
    ``CenterCrop(size)`` as TorchGeo's SSL4EO entries:

    * ``s1``: dB, per-image 1 %/99 % clip, then the ``mean +- 2 std`` stretch
      to [0, 1] (:func:`~torchgeo_decur.datasets.normalize.normalize_s1`);
    * ``s2c`` / ``s2a``: digital numbers, ``clip(x / 10000, 0, 1)``;
    * ``rgb`` / ``hha``: 8-bit, ``x / 255``;
    * ``dem``: metres, per-image 1 %/99 % clip and min-max stretch.

    A tensor that does not look like the raw input (e.g. Sentinel-2 already
    divided by 10000) gets a :class:`UserWarning` naming the expected range.

    Args:
        name: Modality name.
        size: Side length of the centre crop.

    Returns:
        A module transforming tensors of shape ``(C, H, W)`` or
        ``(N, C, H, W)``.

    Raises:
        ValueError: If *name* is not a modality with known preprocessing.

    .. versionadded:: 0.1
    """
    if name not in _NORMALISE:
        known = ', '.join(sorted(_NORMALISE))
        msg = f'no transforms for modality {name!r}; known modalities: {known}'
        raise ValueError(msg)
    return nn.Sequential(
        _Normalise(name),
        T.Resize((round(size * 8 / 7),) * 2, antialias=True),
        T.CenterCrop(size),
    )


class DeCURTransforms(nn.Module):
    """Per-modality transforms of a joint DeCUR weight entry.

    Called with a mapping, it transforms the values whose key is a modality
    name and passes other keys through; called with a sequence of two tensors,
    it transforms them in modality order::

        t = ResNet50_Weights.DECUR_S1S2.transforms
        out = t({'s1': sar, 's2c': optical})
        sar, optical = t((sar, optical))

    .. versionadded:: 0.1
    """

    def __init__(self, transforms: Mapping[str, nn.Module]) -> None:
        """Initialise a new DeCURTransforms instance.

        Args:
            transforms: Transform per modality name, in modality order.
        """
        super().__init__()
        self.names = tuple(transforms)
        self.transforms = nn.ModuleDict(dict(transforms))

    def forward(
        self, x: Mapping[str, Any] | Sequence[Tensor]
    ) -> dict[str, Any] | tuple[Tensor, ...]:
        """Transform the inputs of every modality.

        Args:
            x: Mapping from modality name to tensor, or the tensors in modality
                order.

        Returns:
            The transformed inputs, of the same kind as *x*.

        Raises:
            ValueError: If a sequence does not hold one tensor per modality.
        """
        if isinstance(x, Mapping):
            return {
                k: self.transforms[k](v) if k in self.transforms else v
                for k, v in x.items()
            }
        if len(x) != len(self.names):
            msg = (
                f'expected {len(self.names)} inputs ({", ".join(self.names)}), '
                f'got {len(x)}'
            )
            raise ValueError(msg)
        return tuple(self.transforms[n](v) for n, v in zip(self.names, x, strict=True))


# --------------------------------------------------------------------------- #
# Weight enums
# --------------------------------------------------------------------------- #


def _modality_meta(name: str, file_bands: Sequence[str] | None) -> dict[str, Any]:
    """Describe one encoder of a weight entry.

    Args:
        name: Modality name.
        file_bands: Input channels of the encoder as stored in the file, if
            they differ from the modality's bands (converted at load).

    Returns:
        ``bands`` and ``in_chans`` of the served encoder, its ``raw`` input
        and ``preprocessing``, and ``file_bands`` if given.
    """
    modality = MODALITIES[name]
    meta: dict[str, Any] = {
        'bands': list(modality.bands),
        'in_chans': modality.in_channels,
        'raw': modality.raw,
        'preprocessing': modality.normalisation,
    }
    if file_bands is not None:
        meta['file_bands'] = list(file_bands)
    return meta


def _weights(
    file: str,
    dataset: str,
    model: str,
    modalities: Sequence[str],
    modality: str | None = None,
    joint: str | None = None,
    file_bands: Mapping[str, Sequence[str]] | None = None,
) -> Weights:
    """Build the Weights of a joint entry (modality None) or of one modality.

    Args:
        file: File name on the authors' Hugging Face repository.
        dataset: Pretraining dataset.
        model: timm model name.
        modalities: Modality names in backbone order.
        modality: The modality of a per-modality entry, None for a joint one.
        joint: Name of the joint member a per-modality entry belongs to.
        file_bands: Channel order stored in the files, per modality, where it
            is not the modality's.

    Returns:
        The weights.
    """
    file_bands = file_bands or {}
    meta: dict[str, Any] = {
        'dataset': dataset,
        'model': model,
        'modalities': {m: _modality_meta(m, file_bands.get(m)) for m in modalities},
        'publication': _PUBLICATION,
        'repo': _REPO,
        'ssl_method': 'decur',
        'file': file,
    }
    transforms: nn.Module
    if modality is None:
        transforms = DeCURTransforms({m: modality_transforms(m) for m in modalities})
    else:
        meta['modality'] = modality
        meta['joint'] = joint
        meta.update(meta['modalities'][modality])
        transforms = modality_transforms(modality)
    return Weights(url=_HF + file, transforms=transforms, meta=meta)


def _family(
    stem: str,
    name: str,
    dataset: str,
    model: str,
    modalities: tuple[str, str],
    backbone_files: Mapping[str, str] | None = None,
    file_bands: Mapping[str, Sequence[str]] | None = None,
    epochs: int = 100,
) -> dict[str, Weights]:
    """Build a joint entry and its per-modality entries.

    Args:
        stem: Prefix of the authors' file names, e.g. ``'rn50_ssl4eo-s12'``.
        name: Name of the joint member, e.g. ``'DECUR_S1S2'``.
        dataset: Pretraining dataset.
        model: timm model name.
        modalities: Modality names in backbone order.
        backbone_files: The authors' backbone-only file of each modality
            (served by the per-modality entries); the joint file otherwise.
        file_bands: Channel order stored in the files, per modality, where it
            is not the modality's.
        epochs: Pretraining epochs in the file names.

    Returns:
        ``{member name: Weights}``.
    """
    joint_file = f'{stem}_joint_decur_ep{epochs}.pth'
    members = {
        name: _weights(joint_file, dataset, model, modalities, None, None, file_bands)
    }
    for modality in modalities:
        file = (backbone_files or {}).get(modality, joint_file)
        members[f'{name}_{modality.upper()}'] = _weights(
            file, dataset, model, modalities, modality, name, file_bands
        )
    return members


#: Channel order of the authors' GeoNRW files: OpenCV reads the orthophotos as
#: B, G, R; the DEM is repeated on three channels.
_GEONRW_FILE_BANDS = {'rgb': ('B', 'G', 'R'), 'dem': ('DEM', 'DEM', 'DEM')}


class DeCURWeightsEnum(WeightsEnum):
    """Base class of DeCUR weight enums.

    Joint entries point at a checkpoint holding both encoders in the authors'
    layout (``{'epoch': ..., 'model': {'module.backbone_1.<key>': ...,
    'module.backbone_2.<key>': ...}}``); per-modality entries at the authors'
    backbone-only file of that encoder where one is published (a plain state
    dict), else at the joint file. ``meta['modalities']`` maps the modality
    names, in backbone order, to the ``bands`` and ``in_chans`` of the served
    encoders, their ``raw`` input and ``preprocessing`` (what ``transforms``
    does), and ``file_bands`` where the file stores the input channels in
    another order (converted at load, exactly: see
    :func:`convert_input_layer`). Per-modality entries repeat their
    modality's description at the top level of ``meta`` (``bands``,
    ``in_chans``, ...), as TorchGeo's entries do, and name their ``joint``
    member.

    .. versionadded:: 0.1
    """

    @property
    def modalities(self) -> tuple[str, ...]:
        """Names of the modalities of the checkpoint, in backbone order."""
        return tuple(self.meta['modalities'])

    @property
    def is_joint(self) -> bool:
        """Whether the entry describes both encoders rather than one."""
        return 'modality' not in self.meta

    def modality(self, name: str) -> 'DeCURWeightsEnum':
        """Return the per-modality entry of one encoder.

        Args:
            name: Modality name, one of :attr:`modalities`.

        Returns:
            The entry whose ``get_state_dict()`` returns that encoder alone.

        Raises:
            ValueError: If *name* is not a modality of this entry.
        """
        if not self.is_joint:
            if name == self.meta['modality']:
                return self
        elif name in self.modalities:
            for member in type(self).__members__.values():
                if (
                    member.meta.get('joint') == self.name
                    and member.meta.get('modality') == name
                ):
                    return member
        valid = self.modalities if self.is_joint else (self.meta['modality'],)
        msg = f'{self} has no modality {name!r}; valid: {", ".join(valid)}'
        raise ValueError(msg)

    def get_state_dict(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        """Download (or read from the hub cache) and convert the weights.

        The file is fetched with :func:`torch.hub.load_state_dict_from_url`, so
        it is cached as ``torch.hub.get_dir()/checkpoints/<file name>``. The
        first layer is converted from the file's channel order to the served
        one (``meta['modalities'][name]['file_bands']`` to ``bands``).

        Args:
            *args: Positional arguments of
                :func:`~torch.hub.load_state_dict_from_url` after the URL.
            **kwargs: Keyword arguments of
                :func:`~torch.hub.load_state_dict_from_url`; ``map_location``
                defaults to the CPU.

        Returns:
            For a joint entry ``{modality: state_dict}``; for a per-modality
            entry the state dict of that encoder. State dicts load with
            ``strict=True`` into ``timm.create_model(meta['model'],
            in_chans=meta[...]['in_chans'], num_classes=0)``.
        """
        if len(args) < 2:
            kwargs.setdefault('map_location', 'cpu')
        checkpoint = torch.hub.load_state_dict_from_url(self.url, *args, **kwargs)
        source = f'{self} ({self.meta["file"]})'
        if _joint_model(checkpoint) is not None:
            state_dicts = split_joint_state_dict(checkpoint, self.modalities, source)
        elif not self.is_joint and _is_tensor_dict(checkpoint):
            state_dicts = {self.meta['modality']: _backbone_state_dict(checkpoint)}
        else:
            msg = (
                f'{source} holds neither a joint DeCUR checkpoint nor an encoder '
                f'state dict: found {_prefixes(list(checkpoint))}'
            )
            raise NotDeCURCheckpointError(msg)
        for name, state_dict in state_dicts.items():
            spec = self.meta['modalities'][name]
            state_dicts[name] = convert_input_layer(
                state_dict,
                spec.get('file_bands', spec['bands']),
                spec['bands'],
                f'{source} ({name})',
            )
        if self.is_joint:
            return state_dicts
        return state_dicts[self.meta['modality']]


_RN50 = {
    **_family(
        'rn50_ssl4eo-s12',
        'DECUR_S1S2',
        'SSL4EO-S12',
        'resnet50',
        ('s1', 's2c'),
        backbone_files={
            's1': 'rn50_ssl4eo-s12_sar_decur_ep100.pth',
            's2c': 'rn50_ssl4eo-s12_ms_decur_ep100.pth',
        },
    ),
    **_family(
        'rn50_geonrw',
        'DECUR_RGB_DEM',
        'GeoNRW',
        'resnet50',
        ('rgb', 'dem'),
        backbone_files={
            'rgb': 'rn50_geonrw_rgb_decur_ep100.pth',
            'dem': 'rn50_geonrw_dem_decur_ep100.pth',
        },
        file_bands=_GEONRW_FILE_BANDS,
    ),
}

_VITS16 = {
    **_family(
        'vits16_ssl4eo-s12',
        'DECUR_S1S2',
        'SSL4EO-S12',
        'vit_small_patch16_224',
        ('s1', 's2c'),
        backbone_files={
            's1': 'vits16_ssl4eo-s12_sar_decur_ep100.pth',
            's2c': 'vits16_ssl4eo-s12_ms_decur_ep100.pth',
        },
    ),
    **_family(
        'vits16_geonrw',
        'DECUR_RGB_DEM',
        'GeoNRW',
        'vit_small_patch16_224',
        ('rgb', 'dem'),
        file_bands=_GEONRW_FILE_BANDS,
    ),
}


class ResNet50_Weights(DeCURWeightsEnum):
    """DeCUR ResNet-50 weights, as published by the DeCUR authors.

    For the `timm <https://github.com/huggingface/pytorch-image-models>`__
    *resnet50* implementation (whose keys equal torchvision's).

    * ``DECUR_S1S2``: SSL4EO-S12, modality 1 ``s1`` (Sentinel-1 GRD, VV/VH),
      modality 2 ``s2c`` (Sentinel-2 L1C, 13 bands), joint file
      ``rn50_ssl4eo-s12_joint_decur_ep100.pth``. ``DECUR_S1S2_S1`` /
      ``DECUR_S1S2_S2C``: the backbone-only files
      ``rn50_ssl4eo-s12_sar_decur_ep100.pth`` / ``..._ms_...`` (the same
      encoders; TorchGeo ships pinned copies of these two as
      ``SENTINEL1_GRD_DECUR`` / ``SENTINEL2_ALL_DECUR``).
    * ``DECUR_RGB_DEM``: GeoNRW, modality 1 ``rgb`` (aerial RGB), modality 2
      ``dem`` (1 band), joint file ``rn50_geonrw_joint_decur_ep100.pth``.
      ``DECUR_RGB_DEM_RGB`` / ``DECUR_RGB_DEM_DEM``: the backbone-only files.
      The authors read the orthophotos with OpenCV (channels B, G, R) and
      repeat the DEM on three channels; the served encoders take R, G, B and
      one DEM channel (first layer permuted, and summed over the repeats),
      which gives identical features.

    .. versionadded:: 0.1
    """

    DECUR_S1S2 = _RN50['DECUR_S1S2']
    DECUR_S1S2_S1 = _RN50['DECUR_S1S2_S1']
    DECUR_S1S2_S2C = _RN50['DECUR_S1S2_S2C']
    DECUR_RGB_DEM = _RN50['DECUR_RGB_DEM']
    DECUR_RGB_DEM_RGB = _RN50['DECUR_RGB_DEM_RGB']
    DECUR_RGB_DEM_DEM = _RN50['DECUR_RGB_DEM_DEM']


class ViTSmall16_Weights(DeCURWeightsEnum):
    """DeCUR ViT-S/16 weights, as published by the DeCUR authors.

    For the `timm <https://github.com/huggingface/pytorch-image-models>`__
    *vit_small_patch16_224* implementation (224 x 224 inputs).

    * ``DECUR_S1S2``: SSL4EO-S12, modality 1 ``s1``, modality 2 ``s2c``, joint
      file ``vits16_ssl4eo-s12_joint_decur_ep100.pth``; ``DECUR_S1S2_S1`` /
      ``DECUR_S1S2_S2C``: the backbone-only files.
    * ``DECUR_RGB_DEM``: GeoNRW, modality 1 ``rgb``, modality 2 ``dem``, joint
      file ``vits16_geonrw_joint_decur_ep100.pth``; ``DECUR_RGB_DEM_RGB`` /
      ``DECUR_RGB_DEM_DEM`` take their encoder out of it. Channels as for
      ResNet-50's ``DECUR_RGB_DEM``.

    .. versionadded:: 0.1
    """

    DECUR_S1S2 = _VITS16['DECUR_S1S2']
    DECUR_S1S2_S1 = _VITS16['DECUR_S1S2_S1']
    DECUR_S1S2_S2C = _VITS16['DECUR_S1S2_S2C']
    DECUR_RGB_DEM = _VITS16['DECUR_RGB_DEM']
    DECUR_RGB_DEM_RGB = _VITS16['DECUR_RGB_DEM_RGB']
    DECUR_RGB_DEM_DEM = _VITS16['DECUR_RGB_DEM_DEM']


#: Keys under which the enums are added to TorchGeo's weight registry.
REGISTRY: dict[str, type[DeCURWeightsEnum]] = {
    'decur_resnet50': ResNet50_Weights,
    'decur_vit_small_patch16_224': ViTSmall16_Weights,
}


def register_weights() -> None:
    """Add the DeCUR weight enums to TorchGeo's registry.

    Afterwards :func:`torchgeo.models.get_weight` resolves names such as
    ``'ResNet50_Weights.DECUR_S1S2'`` and :func:`torchgeo.models.get_model_weights`
    returns the enums for ``'decur_resnet50'`` and
    ``'decur_vit_small_patch16_224'``. Called when :mod:`torchgeo_decur` is
    imported; calling it again is harmless.

    .. versionadded:: 0.1
    """
    registry = cast(dict[Any, type[WeightsEnum]], _torchgeo_api._model_weights)
    registry.update(REGISTRY)


# --------------------------------------------------------------------------- #
# Conversion and loading
# --------------------------------------------------------------------------- #


def _is_tensor_dict(obj: object) -> bool:
    return (
        isinstance(obj, Mapping)
        and len(obj) > 0
        and all(isinstance(v, Tensor) for v in obj.values())
    )


def _prefixes(keys: Sequence[str] | Mapping[str, Any], limit: int = 8) -> str:
    """Summarise keys by their first component (``backbone.*, head.*``)."""
    seen: dict[str, None] = {}
    for key in keys:
        seen[key.split('.', 1)[0] + '.*' if '.' in key else key] = None
    names = list(seen)
    more = f', ... ({len(names) - limit} more)' if len(names) > limit else ''
    return ', '.join(names[:limit]) + more


def _list(keys: Sequence[str], limit: int = 5) -> str:
    more = f', ... ({len(keys) - limit} more)' if len(keys) > limit else ''
    return ', '.join(keys[:limit]) + more


def state_dict_mismatches(
    expected: Mapping[str, Tensor], state_dict: Mapping[str, Tensor]
) -> list[str]:
    """Describe how a state dict differs from the one a model expects.

    Args:
        expected: The model's own ``state_dict()`` (may live on the meta device).
        state_dict: The state dict to load.

    Returns:
        One line per kind of problem (missing keys, unexpected keys, shape
        mismatches), each naming up to five keys; empty if it fits.

    .. versionadded:: 0.1
    """
    missing = [k for k in expected if k not in state_dict]
    unexpected = [k for k in state_dict if k not in expected]
    shapes = [
        f'{k} {tuple(state_dict[k].shape)} != {tuple(v.shape)}'
        for k, v in expected.items()
        if k in state_dict and state_dict[k].shape != v.shape
    ]
    return [
        f'{what} {_list(keys)}'
        for what, keys in (
            ('missing keys', missing),
            ('unexpected keys', unexpected),
            ('shape mismatches', shapes),
        )
        if keys
    ]


def _joint_model(obj: object) -> Mapping[str, Tensor] | None:
    """Return the joint state dict of an authors'-layout object, else None."""
    if isinstance(obj, Mapping) and isinstance(obj.get('model'), Mapping):
        obj = obj['model']
    if not isinstance(obj, Mapping):
        return None
    for key in obj:
        if isinstance(key, str) and key.removeprefix('module.').startswith(
            'backbone_1.'
        ):
            return cast(Mapping[str, Tensor], obj)
    return None


def split_joint_state_dict(
    checkpoint: Mapping[str, Any], names: Sequence[str], source: str = 'checkpoint'
) -> dict[str, dict[str, Tensor]]:
    """Split a joint checkpoint in the authors' layout into timm state dicts.

    Accepts ``{'model': joint, ...}`` (the authors' files, with or without
    ``epoch`` / ``optimizer``) or the joint state dict itself, whose keys are
    ``module.backbone_<i>.<key>`` (``module.`` optional). Projector
    (``projector1.*``, ``projector_1.*``), ``bn.*`` and deformable-attention
    keys and the backbones' ``fc`` / ``head`` classifier weights are dropped.

    Args:
        checkpoint: The loaded file.
        names: Modality names of backbone 1 and backbone 2.
        source: Name of the checkpoint for error messages.

    Returns:
        ``{name: state_dict}`` in backbone order.

    Raises:
        NotDeCURCheckpointError: If there are no ``backbone_1`` keys.
        ValueError: If one backbone has no keys.

    .. versionadded:: 0.1
    """
    joint = _joint_model(checkpoint)
    if joint is None:
        msg = (
            f'{source} is not a DeCUR checkpoint: expected keys '
            f"'module.backbone_1.*' and 'module.backbone_2.*' (optionally under "
            f"'model'), found {_prefixes(list(checkpoint))}"
        )
        raise NotDeCURCheckpointError(msg)
    state_dicts: dict[str, dict[str, Tensor]] = {}
    dropped_da: list[str] = []
    for i, name in enumerate(names, start=1):
        prefix = f'backbone_{i}.'
        state_dict: dict[str, Tensor] = {}
        for key, value in joint.items():
            key = key.removeprefix('module.')
            if key.startswith(prefix):
                key = key[len(prefix) :]
                if key not in _CLASSIFIER_KEYS:
                    state_dict[key] = value
            elif key.startswith(f'da{i}_'):
                dropped_da.append(key)
        if not state_dict:
            msg = (
                f"{source}: missing backbone keys 'module.backbone_{i}.*' of "
                f'modality {name!r}; found {_prefixes(list(joint))}'
            )
            raise ValueError(msg)
        state_dicts[name] = state_dict
    if dropped_da:
        warnings.warn(
            f'{source}: deformable-attention weights ({_list(dropped_da, 3)}) are '
            'not part of the backbones and were dropped',
            UserWarning,
            stacklevel=2,
        )
    return state_dicts


def _backbone_state_dict(state_dict: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Drop the classifier keys of an encoder state dict.

    Args:
        state_dict: A plain state dict of one backbone.

    Returns:
        The state dict without ``fc.*`` / ``head.*`` classifier weights.
    """
    return {k: v for k, v in state_dict.items() if k not in _CLASSIFIER_KEYS}


def convert_input_layer(
    state_dict: Mapping[str, Tensor],
    from_bands: Sequence[str],
    to_bands: Sequence[str],
    source: str = 'weights',
) -> dict[str, Tensor]:
    """Convert the first layer of an encoder from one channel order to another.

    Output channel ``j`` of the new first layer (``conv1`` of a ResNet,
    ``patch_embed.proj`` of a ViT) gets the sum of the kernels of every input
    channel ``i`` with ``from_bands[i] == to_bands[j]``. This is exact: a
    permutation of the bands (e.g. the authors' B, G, R to R, G, B) permutes
    the kernels, and a band repeated on several channels (the authors' DEM on
    three) folds into one kernel, since the repeated input gives the same sum.

    Args:
        state_dict: The encoder state dict.
        from_bands: Band of each input channel in *state_dict*.
        to_bands: Band of each input channel wanted.
        source: Name of the weights for error messages.

    Returns:
        A new state dict (tensors shared except the converted one). Unchanged if
        the bands are equal, or if the first layer already has
        ``len(to_bands)`` channels while *from_bands* describes another count
        (the file is in the wanted layout already).

    Raises:
        ValueError: If a band of one side is missing on the other, or the first
            layer has neither ``len(from_bands)`` nor ``len(to_bands)`` channels.

    .. versionadded:: 0.1
    """
    out = dict(state_dict)
    for key in _INPUT_CONV_KEYS:
        weight = state_dict.get(key)
        if weight is not None and weight.ndim == 4:
            break
    else:
        return out
    found = weight.shape[1]
    if list(from_bands) == list(to_bands) and found == len(to_bands):
        return out
    if found != len(from_bands):
        if found == len(to_bands):
            return out
        msg = (
            f'{source}: {key} has {found} input channels, but the weights '
            f'declare bands {list(from_bands)} and {list(to_bands)} are wanted'
        )
        raise ValueError(msg)
    missing = sorted(set(to_bands) - set(from_bands))
    extra = sorted(set(from_bands) - set(to_bands))
    if missing or extra:
        msg = (
            f'{source}: cannot convert the input channels {list(from_bands)} to '
            f'{list(to_bands)} (missing {missing or "none"}, unused {extra or "none"})'
        )
        raise ValueError(msg)
    out[key] = torch.stack(
        [
            weight[:, [i for i, b in enumerate(from_bands) if b == band]].sum(dim=1)
            for band in to_bands
        ],
        dim=1,
    )
    return out


def _find_sidecar(path: Path) -> tuple[dict[str, Any], str | None] | None:
    """Find the export metadata of *path* and the part after ``<stem>_``."""
    stem = path.stem
    for i in range(len(stem) - 1, 0, -1):
        if stem[i] != '_':
            continue
        sidecar = path.with_name(stem[:i] + '.json')
        if not sidecar.is_file():
            continue
        try:
            meta = json.loads(sidecar.read_text())
        except (OSError, ValueError):
            continue
        if isinstance(meta, dict) and meta.get('format') == EXPORT_FORMAT:
            return meta, stem[i + 1 :]
    return None


def _meta_names(meta: Mapping[str, Any]) -> list[str]:
    return [m['name'] for m in meta['modalities']]


def parse_decur_lightning_checkpoint(
    checkpoint: Mapping[str, Any], source: str
) -> tuple[dict[str, dict[str, Tensor]], dict[str, Any]]:
    """Extract both backbones and their description from a DeCURTask checkpoint.

    Args:
        checkpoint: The loaded Lightning checkpoint.
        source: Name of the checkpoint for error messages.

    Returns:
        ``({modality: state_dict}, metadata)``: the timm state dicts of
        ``backbone1`` and ``backbone2`` and the export metadata (``format``,
        ``epoch``, ``global_step`` and per modality ``name``, ``index``,
        ``model``, ``in_chans``, ``model_kwargs``, ``bands``,
        ``normalisation``). Bands and normalisation are those the checkpoint
        recorded (:meth:`~torchgeo_decur.tasks.DeCURTask.on_save_checkpoint`),
        else those of the registered modality.

    Raises:
        NotDeCURCheckpointError: If the checkpoint is from another task.
        ValueError: If a backbone's keys are missing.

    .. versionadded:: 0.1
    """
    hparams = checkpoint.get('hyper_parameters') or {}
    state_dict = checkpoint.get('state_dict') or {}
    if not (
        'model1' in hparams
        and 'model2' in hparams
        and any(k.startswith(('backbone1.', 'backbone2.')) for k in state_dict)
    ):
        what = f'hyper_parameters {_list(sorted(hparams), 8) or "none"}'
        if 'model' in hparams or 'backbone' in hparams:
            model = hparams.get('model', hparams.get('backbone'))
            what = f'a single-model checkpoint (model={model!r}); {what}'
        msg = (
            f'{source} is not a DeCUR checkpoint: expected hyper_parameters '
            "model1/model2 and state_dict keys 'backbone1.*'/'backbone2.*'; found "
            f'{what} and state_dict keys {_prefixes(list(state_dict)) or "none"}'
        )
        raise NotDeCURCheckpointError(msg)
    names = list(hparams.get('modalities') or DEFAULT_MODALITY_NAMES)
    if len(names) != 2 or names[0] == names[1]:
        msg = f'{source}: expected two distinct modalities, got {names}'
        raise ValueError(msg)
    # bands and preprocessing as the task recorded them when it saved (older
    # checkpoints: as the modality registry says now)
    record = checkpoint.get('torchgeo_decur') or {}
    recorded = {m['name']: m for m in record.get('modalities') or []}
    state_dicts: dict[str, dict[str, Tensor]] = {}
    modalities: list[dict[str, Any]] = []
    for i, name in enumerate(names, start=1):
        prefix = f'backbone{i}.'
        sub = {
            k[len(prefix) :]: v for k, v in state_dict.items() if k.startswith(prefix)
        }
        if not sub:
            msg = (
                f"{source}: missing backbone keys '{prefix}*' of modality {name!r}; "
                f'found state_dict keys {_prefixes(list(state_dict))}'
            )
            raise ValueError(msg)
        state_dicts[name] = sub
        record = recorded.get(name) or {}
        known = MODALITIES.get(name)
        bands = record.get('bands') or (list(known.bands) if known else None)
        normalisation = record.get('normalisation') or (
            known.normalisation if known else None
        )
        modalities.append(
            {
                'name': name,
                'index': i,
                'model': hparams[f'model{i}'],
                'in_chans': hparams.get(f'in_channels{i}'),
                'model_kwargs': dict(hparams.get(f'model_kwargs{i}') or {}),
                'bands': bands,
                'normalisation': normalisation,
            }
        )
    meta = {
        'format': EXPORT_FORMAT,
        'format_version': 1,
        'ssl_method': 'decur',
        'source': source,
        'epoch': checkpoint.get('epoch'),
        'global_step': checkpoint.get('global_step'),
        'modalities': modalities,
    }
    return state_dicts, meta


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


def _read_published(
    checkpoint: Mapping[str, Any], entry: 'DeCURWeightsEnum', source: str
) -> tuple[dict[str, dict[str, Tensor]], dict[str, Any]]:
    """Read a published file with its entry's names and channel order.

    Args:
        checkpoint: The loaded file.
        entry: Its entry (see :func:`published_entry`).
        source: Name of the file for error messages.

    Returns:
        ``({modality: state_dict}, description)`` as
        :func:`read_decur_checkpoint`; state dicts as stored in the file.

    Raises:
        NotDeCURCheckpointError: If the content does not fit the entry.
    """
    names = list(entry.modalities if entry.is_joint else (entry.meta['modality'],))
    if entry.is_joint:
        state_dicts = split_joint_state_dict(checkpoint, names, source)
    elif _is_tensor_dict(checkpoint):
        state_dicts = {names[0]: _backbone_state_dict(checkpoint)}
    else:
        msg = (
            f'{source} has the name of the published backbone-only file of '
            f'{entry} but holds {_prefixes(list(checkpoint))}, not a state dict'
        )
        raise NotDeCURCheckpointError(msg)
    described = {
        'source': str(entry),
        'modalities': [
            {
                'name': name,
                'bands': entry.meta['modalities'][name].get(
                    'file_bands', entry.meta['modalities'][name]['bands']
                ),
            }
            for name in names
        ],
    }
    return state_dicts, described


def source_bands(meta: Mapping[str, Any] | None, name: str) -> list[str] | None:
    """Channel order of one encoder, from what :func:`read_decur_checkpoint` says.

    Args:
        meta: The metadata returned with the state dicts (or None).
        name: Modality name.

    Returns:
        The band of each input channel stored in the file, or None if unknown.

    .. versionadded:: 0.1
    """
    for spec in (meta or {}).get('modalities') or []:
        if spec.get('name') == name and spec.get('bands'):
            return list(spec['bands'])
    return None


def read_decur_checkpoint(
    path: str | os.PathLike[str],
) -> tuple[dict[str, dict[str, Tensor]], dict[str, Any] | None]:
    """Read any DeCUR weight file into per-modality timm state dicts.

    Recognised formats (detected from the content, not the file name):

    1. A DeCUR Lightning checkpoint (``hyper_parameters`` with ``model1`` /
       ``model2``, ``state_dict`` keys ``backbone1.*`` / ``backbone2.*``);
       modality names from ``hyper_parameters['modalities']``.
    2. A joint file in the authors' layout (``{'epoch': ..., 'model':
       {'module.backbone_1.<key>': ...}}`` or the bare joint state dict), the
       authors' published files as well as ``<stem>_joint.pth`` written by
       :func:`~torchgeo_decur.export.export_checkpoint`. Modality names come
       from the file's ``meta`` entry (written by the export), else from the
       export's ``<stem>.json`` beside a ``<stem>_joint.pth``, else they are
       ``'modality1'`` / ``'modality2'``.
    3. A plain state dict of one encoder (e.g. ``<stem>_<modality>.pth`` from
       the export); named by ``<stem>.json`` beside it if there is one, else
       ``'modality1'``.
    4. An encoder checkpoint in TorchGeo's layout written by the export
       (``<stem>_<modality>.ckpt``, ``hyper_parameters`` with ``modality``
       and ``ssl_method='decur'``, keys ``model.<key>``).

    A file that carries the name of one of the authors' published files (see
    :func:`published_entry`; also TorchGeo's hash-suffixed copies such as
    ``rn50_ssl4eo-s12_sar_decur_ep100-f0e69ba2.pth``) gets that entry's
    modality names and channel order.

    Files are read with ``torch.load(weights_only=False)``: only read files
    you trust.

    Args:
        path: Path of the file.

    Returns:
        ``({modality: state_dict}, metadata)`` in backbone order; *metadata*
        is the export metadata (the dict the export writes as JSON), a
        description ``{'modalities': [{'name', 'bands'}, ...]}`` of a
        published file or an exported encoder checkpoint (``bands``: the
        channel order stored in the file), or None. See :func:`source_bands`.

    Raises:
        FileNotFoundError: If *path* does not exist.
        NotDeCURCheckpointError: If the file is not in one of these formats
            (e.g. a MoCo or SimCLR checkpoint of TorchGeo).
        ValueError: If a backbone's keys are missing.

    .. versionadded:: 0.1
    """
    path = Path(path)
    if not path.is_file():
        msg = f'DeCUR checkpoint not found: {path}'
        raise FileNotFoundError(msg)
    source = str(path)
    checkpoint = torch.load(path, map_location='cpu', weights_only=False)
    if not isinstance(checkpoint, Mapping):
        msg = (
            f'{source} is not a DeCUR checkpoint: it holds a '
            f'{type(checkpoint).__name__}, not a dict'
        )
        raise NotDeCURCheckpointError(msg)
    if 'state_dict' in checkpoint and 'hyper_parameters' in checkpoint:
        hparams = checkpoint['hyper_parameters'] or {}
        if hparams.get('ssl_method') == 'decur' and 'modality' in hparams:
            # <stem>_<modality>.ckpt of the export: one encoder, TorchGeo layout
            state_dict = {
                k.removeprefix('model.'): v
                for k, v in checkpoint['state_dict'].items()
                if k.startswith('model.')
            }
            name = hparams['modality']
            bands = hparams.get('bands')
            described = {'modalities': [{'name': name, 'bands': bands}]}
            return {name: state_dict}, described if bands else None
        return parse_decur_lightning_checkpoint(checkpoint, source)
    meta: dict[str, Any] | None = None
    published = published_entry(path.name)
    if published is not None:
        return _read_published(checkpoint, published, source)
    if _joint_model(checkpoint) is not None:
        embedded = checkpoint.get('meta')
        if isinstance(embedded, Mapping) and embedded.get('format') == EXPORT_FORMAT:
            meta = dict(embedded)
        else:
            found = _find_sidecar(path)
            meta = found[0] if found and found[1] == 'joint' else None
        names = _meta_names(meta) if meta else list(DEFAULT_MODALITY_NAMES)
        return split_joint_state_dict(checkpoint, names, source), meta
    if _is_tensor_dict(checkpoint):
        state_dict = {k: v for k, v in checkpoint.items() if k not in _CLASSIFIER_KEYS}
        found = _find_sidecar(path)
        if found and found[1] in _meta_names(found[0]):
            return {cast(str, found[1]): state_dict}, found[0]
        return {DEFAULT_MODALITY_NAMES[0]: state_dict}, None
    hparams = checkpoint.get('hyper_parameters')
    found_what = (
        f'hyper_parameters {_list(sorted(hparams), 8)}'
        if isinstance(hparams, Mapping)
        else f'keys {_prefixes(list(checkpoint))}'
    )
    msg = (
        f'{source} is not a DeCUR checkpoint (Lightning checkpoint of DeCURTask, '
        f'joint file with module.backbone_1/2 keys, or encoder state dict); '
        f'found {found_what}'
    )
    raise NotDeCURCheckpointError(msg)


def _resolve(source: 'DeCURWeightsEnum | str | os.PathLike[str]') -> object:
    """Turn a registered weight name into its enum member; keep paths."""
    if isinstance(source, str) and not os.path.exists(source):
        try:
            return get_weight(source)
        except ValueError:
            msg = (
                f'{source!r} is neither an existing file nor a weight name '
                'registered with torchgeo.models.get_weight'
            )
            raise FileNotFoundError(msg) from None
    return source


def load_decur_state_dicts(
    source: 'DeCURWeightsEnum | str | os.PathLike[str]', progress: bool = True
) -> dict[str, dict[str, Tensor]]:
    """Load the encoders of a DeCUR weight source, one timm state dict each.

    Args:
        source: A DeCUR weight entry, its registered name (e.g.
            ``'ResNet50_Weights.DECUR_S1S2'``), or the path of a file in a
            format of :func:`read_decur_checkpoint`.
        progress: Whether to show download progress for weight entries.

    Returns:
        ``{modality: state_dict}`` in backbone order (one item for a
        per-modality entry or encoder file).

    Raises:
        FileNotFoundError: If *source* is neither a file nor a registered name.
        NotDeCURCheckpointError: If *source* is not a DeCUR weight entry or file.
        ValueError: If a backbone's keys are missing.

    .. versionadded:: 0.1
    """
    resolved = _resolve(source)
    if isinstance(resolved, DeCURWeightsEnum):
        state_dicts = resolved.get_state_dict(progress=progress, weights_only=True)
        if resolved.is_joint:
            return state_dicts
        return {resolved.meta['modality']: state_dicts}
    if isinstance(resolved, WeightsEnum):
        msg = f'{resolved} is not a DeCUR weight entry'
        raise NotDeCURCheckpointError(msg)
    return read_decur_checkpoint(cast(str, resolved))[0]


def select_state_dict(
    state_dicts: Mapping[str, dict[str, Tensor]],
    modality: str | None,
    source: str,
) -> dict[str, Tensor]:
    """Pick one modality's state dict.

    Args:
        state_dicts: ``{modality: state_dict}``.
        modality: Modality name; may be None if there is only one.
        source: Name of the source for error messages.

    Returns:
        The state dict of *modality*.

    Raises:
        ValueError: If *modality* is unknown, or None with several modalities.

    .. versionadded:: 0.1
    """
    valid = ', '.join(state_dicts)
    if modality is None:
        if len(state_dicts) == 1:
            return next(iter(state_dicts.values()))
        msg = f'{source} holds several encoders ({valid}): pass modality=<name>'
        raise ValueError(msg)
    if modality not in state_dicts:
        msg = f'{source} has no modality {modality!r}; valid: {valid}'
        raise ValueError(msg)
    return state_dicts[modality]


def load_decur_state_dict(
    source: 'DeCURWeightsEnum | str | os.PathLike[str]',
    modality: str | None = None,
    progress: bool = True,
) -> dict[str, Tensor]:
    """Load one encoder of a DeCUR weight source as a timm state dict.

    Args:
        source: As for :func:`load_decur_state_dicts`.
        modality: Modality of the encoder; may be None if *source* holds one.
        progress: Whether to show download progress for weight entries.

    Returns:
        The state dict, loadable with ``strict=True`` into the timm model.

    Raises:
        ValueError: If *modality* is unknown or needed (see
            :func:`select_state_dict`), or as :func:`load_decur_state_dicts`.

    .. versionadded:: 0.1
    """
    resolved = _resolve(source)
    if isinstance(resolved, DeCURWeightsEnum) and modality is not None:
        resolved = resolved.modality(modality)
    state_dicts = load_decur_state_dicts(
        cast('DeCURWeightsEnum | str', resolved), progress=progress
    )
    return select_state_dict(state_dicts, modality, str(source))
