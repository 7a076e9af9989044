"""The base of DeCUR weight enums: joint and per-modality entries.

DeCUR pre-trains one encoder per modality, so a DeCUR checkpoint holds two
backbones. The enums offer them in two ways:

* **Joint** entries (e.g. ``ResNet50_Weights.DECUR_S1S2``) describe both
  encoders. Their ``get_state_dict()`` returns ``{modality: state_dict}`` and
  :meth:`DeCURWeightsEnum.modality` picks one encoder.
* **Per-modality** entries (e.g. ``ResNet50_Weights.DECUR_S1S2_S1``) look like
  TorchGeo's single-modality entries (``meta['in_chans']``, ``meta['bands']``)
  and their ``get_state_dict()`` returns one timm state dict, so TorchGeo's
  own tasks accept them by name::

      Classification(
          model='resnet50', weights='ResNet50_Weights.DECUR_S1S2_S1',
          in_channels=2, num_classes=10,
      )

  (in YAML: ``weights: ResNet50_Weights.DECUR_S1S2_S1``; the YAML must also
  make LightningCLI import :mod:`torchgeo_decur`, e.g. through a
  ``class_path`` of this package, for the name to be registered).

TorchGeo's tasks and these entries:

* ``Classification`` (any *task*): ResNet-50 and ViT-S/16 per-modality entries.
* ``SemanticSegmentation``: ResNet-50 per-modality entries with smp's
  ``resnet50`` encoder (``unet``, ``deeplabv3+``, ``upernet``, ``segformer``
  models), whose keys equal timm's. Not the ViT-S/16 entries: smp's
  ``tu-vit_small_patch16_224`` encoder (``dpt``) expects keys prefixed with
  ``model.`` and a ``head``, and TorchGeo loads encoder weights strictly.
* Joint entries are for this package (e.g. ``create_encoder(..., modality=)``);
  TorchGeo's tasks would receive ``{modality: state_dict}`` and fail.

The transforms and metadata of every entry come from its modalities
(:mod:`torchgeo_decur.modalities`).

.. versionadded:: 0.1
"""

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn
from torchvision.models._api import Weights, WeightsEnum

from ...modalities import get_modality
from ..checkpoints import (
    NotDeCURCheckpointError,
    _backbone_state_dict,
    _is_tensor_dict,
    _joint_model,
    _prefixes,
    convert_input_layer,
    split_joint_state_dict,
)

__all__ = ('DeCURTransforms', 'DeCURWeightsEnum', 'modality_transforms')

_HF = 'https://huggingface.co/wangyi111/DeCUR/resolve/main/'
_PUBLICATION = 'https://arxiv.org/abs/2309.05300'
_REPO = 'https://github.com/zhu-xlab/DeCUR'


def modality_transforms(name: str, size: int = 224) -> nn.Module:
    """Evaluation transforms of a registered modality, from raw input.

    The modality's preprocessing (as the DeCUR encoders were trained with it;
    see :mod:`torchgeo_decur.transforms.normalize`), applied to the raw image
    as the authors applied it to whole tiles, then ``Resize(size * 8 / 7)``
    and ``CenterCrop(size)`` as TorchGeo's SSL4EO entries; a tensor that does
    not look like the raw input gets a :class:`UserWarning` naming the
    expected range. See :meth:`torchgeo_decur.modalities.Modality.eval_transforms`.

    Args:
        name: Modality name.
        size: Side length of the centre crop.

    Returns:
        A module transforming tensors of shape ``(C, H, W)`` or
        ``(N, C, H, W)``.

    Raises:
        ValueError: If *name* is not a registered modality.

    .. versionadded:: 0.1
    """
    return get_modality(name).eval_transforms(size)


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
    modality = get_modality(name)
    meta: dict[str, Any] = {
        'bands': list(modality.bands),
        'in_chans': modality.in_channels,
        'raw': modality.raw,
        'preprocessing': modality.description,
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
    extra: Mapping[str, Any] | None = None,
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
        extra: Further metadata (e.g. ``deformable_attention``).

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
        **(extra or {}),
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
    joint_file: str | None = None,
    extra: Mapping[str, Any] | None = None,
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
        joint_file: Name of the joint file, if not
            ``<stem>_joint_decur_ep<epochs>.pth``.
        extra: Further metadata of every member.

    Returns:
        ``{member name: Weights}``.
    """
    joint_file = joint_file or f'{stem}_joint_decur_ep{epochs}.pth'
    members = {
        name: _weights(
            joint_file, dataset, model, modalities, None, None, file_bands, extra
        )
    }
    for modality in modalities:
        file = (backbone_files or {}).get(modality, joint_file)
        members[f'{name}_{modality.upper()}'] = _weights(
            file, dataset, model, modalities, modality, name, file_bands, extra
        )
    return members


#: Channel order of the authors' GeoNRW files: OpenCV reads the orthophotos as
#: B, G, R; the DEM is repeated on three channels.
_GEONRW_FILE_BANDS = {'rgb': ('B', 'G', 'R'), 'dem': ('DEM', 'DEM', 'DEM')}

#: Channel order of the authors' SUN RGB-D files: OpenCV reads the RGB images
#: as B, G, R and the HHA images as angle, height, disparity.
_SUNRGBD_FILE_BANDS = {
    'rgb_indoor': ('B', 'G', 'R'),
    'hha': ('angle', 'height', 'disparity'),
}


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
