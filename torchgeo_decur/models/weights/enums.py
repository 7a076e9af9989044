"""DeCUR weight enums, built from the table of published files.

Each :data:`~torchgeo_decur.models.weights.table.RELEASES` row gives a
**joint** member (``ResNet50_Weights.DECUR_S1S2``: all encoders,
``{modality: state_dict}``) and one member per modality
(``ResNet50_Weights.DECUR_S1S2_S1``: one encoder with TorchGeo's metadata, so
TorchGeo's own tasks take it by name). Transforms and metadata come from the
modalities (:mod:`torchgeo_decur.modalities`); the user guide's weights page
lists every entry.

.. versionadded:: 0.1
"""

from typing import Any, cast

from torch import nn
from torchgeo.models import api as torchgeo_api
from torchvision.models._api import Weights, WeightsEnum

from ...modalities import get_modality, modality_transforms
from ...transforms.evaluation import DeCURTransforms, ModalityTransforms
from ...trust import load_file
from .files import DABlocks, read_release
from .table import BASE_URL, PUBLICATION, RELEASES, REPO, SHA256, Release, find_release
from .verify import cached_file

__all__ = (
    'REGISTRY',
    'DeCURWeightsEnum',
    'MiTB2_Weights',
    'MiTB5_Weights',
    'ResNet50_Weights',
    'ViTSmall16_Weights',
    'published_entry',
    'register_weights',
)


def _weights(release: Release, modality: str | None) -> Weights:
    """The Weights of a release's joint member (None) or of one modality."""
    described = {}
    for name, m in ((n, get_modality(n)) for n in release.modalities):
        described[name] = {'bands': list(m.bands), 'in_chans': m.in_channels}
        described[name] |= {'raw': m.raw, 'preprocessing': m.description}
        if name in release.file_bands:
            described[name]['file_bands'] = list(release.file_bands[name])
    file = release.backbone_files.get(modality or '', release.joint_file)
    meta: dict[str, Any] = {'dataset': release.dataset, 'model': release.model}
    meta |= {'modalities': described, 'publication': PUBLICATION, 'repo': REPO}
    meta |= {'ssl_method': 'decur', 'file': file, 'sha256': SHA256.get(file)}
    if release.deformable_attention:
        meta['deformable_attention'] = True
    if modality is None:
        transforms: nn.Module = DeCURTransforms(
            {m: modality_transforms(m) for m in release.modalities}
        )
    else:
        meta.update(modality=modality, joint=release.member, **described[modality])
        transforms = ModalityTransforms(modality, modality_transforms(modality))
    return Weights(url=BASE_URL + meta['file'], transforms=transforms, meta=meta)


def _members(enum: str) -> dict[str, Weights]:
    """Every member of one enum: each release's joint and per-modality members."""
    members = {}
    for release in (r for r in RELEASES if r.enum == enum):
        members[release.member] = _weights(release, None)
        for m in release.modalities:
            members[f'{release.member}_{m.upper()}'] = _weights(release, m)
    return members


class DeCURWeightsEnum(WeightsEnum):
    """Base class of DeCUR weight enums.

    ``meta['modalities']`` gives per modality, in backbone order, the served
    ``bands`` and ``in_chans``, the ``raw`` input and ``preprocessing`` of
    ``transforms``, and ``file_bands`` where the file stores another channel
    order (converted at load: :func:`~torchgeo_decur.models.convert_input_layer`).
    Per-modality entries repeat theirs at the top of ``meta``, as TorchGeo's
    entries do, and name their ``joint`` member.

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
        if not self.is_joint and name == self.meta['modality']:
            return self
        if self.is_joint and name in self.modalities:
            return cast(DeCURWeightsEnum, type(self)[f'{self.name}_{name.upper()}'])
        valid = self.modalities if self.is_joint else (self.meta['modality'],)
        msg = f'{self} has no modality {name!r}; valid: {", ".join(valid)}'
        raise ValueError(msg)

    def get_state_dict(
        self,
        model_dir: str | None = None,
        map_location: Any = 'cpu',
        progress: bool = True,
        da_blocks: DABlocks = 'trained',
        **kwargs: Any,
    ) -> dict[str, Any]:
        """Download (or read from the hub cache), verify and convert the weights.

        The file is cached as ``<torch hub dir>/checkpoints/<file>``, checked
        against ``meta['sha256']`` (or the hash recorded at its first use:
        :mod:`~torchgeo_decur.models.weights.verify`) and read without running
        code (:func:`~torchgeo_decur.trust.load_file`).

        Deformable attention (``_RDA`` entries): with *da_blocks*
        ``'trained'`` every modality gets the ``da1_*`` blocks, the only ones
        the authors' pretraining trained, so the entry of the second modality
        reads the joint file (its backbone-only file holds only ``da2_*``);
        ``'authors'`` gives modality 2 the ``da2_*`` blocks, as the authors'
        transfer code did (:func:`~torchgeo_decur.models.weights.files.read_release`).

        Args:
            model_dir: Cache folder instead of the hub's.
            map_location: Where to load the tensors.
            progress: Whether to show a download progress bar.
            da_blocks: ``'trained'`` or ``'authors'`` (see above).
            **kwargs: Other arguments of
                :func:`torch.hub.load_state_dict_from_url`, accepted for
                TorchGeo's callers and ignored (``weights_only`` is always on).

        Returns:
            ``{modality: state_dict}`` (joint entry) or the encoder's state dict,
            first layers converted to ``bands``; each loads strictly into
            ``timm.create_model(meta['model'], in_chans=..., num_classes=0)``.

        Raises:
            OSError: If the file is neither cached nor downloadable (names
                where to put it).
            HashMismatchError: If the file is not the published one.

        .. versionchanged:: 0.2
           Verified by hash and read safely; *da_blocks* added.
        """
        release, modality = cast(tuple[Release, str | None], find_release(self.url))
        url, file, sha256 = self.url, self.meta['file'], self.meta['sha256']
        first = modality in (None, release.modalities[0])
        if da_blocks == 'trained' and release.deformable_attention and not first:
            # the trained blocks are in the joint file only
            file, modality = release.joint_file, None
            url, sha256 = BASE_URL + file, SHA256.get(file)
        path = cached_file(url, sha256, progress, model_dir)
        checkpoint = load_file(path, map_location=map_location)
        source = f'{self} ({file})'
        state_dicts = read_release(checkpoint, release, modality, source, da_blocks)
        return state_dicts if self.is_joint else state_dicts[self.meta['modality']]


_RN50 = _members('ResNet50_Weights')
_VITS16 = _members('ViTSmall16_Weights')
_MITB2 = _members('MiTB2_Weights')
_MITB5 = _members('MiTB5_Weights')


class ResNet50_Weights(DeCURWeightsEnum):
    """DeCUR ResNet-50 weights (timm ``resnet50``), as the authors published them.

    ``DECUR_S1S2`` (SSL4EO-S12), ``DECUR_RGB_DEM`` (GeoNRW) and their ``_RDA``
    versions with deformable attention
    (:mod:`torchgeo_decur.models.deformable`), with per-modality entries.

    .. versionadded:: 0.1
    """

    DECUR_S1S2 = _RN50['DECUR_S1S2']
    DECUR_S1S2_S1 = _RN50['DECUR_S1S2_S1']
    DECUR_S1S2_S2C = _RN50['DECUR_S1S2_S2C']
    DECUR_RGB_DEM = _RN50['DECUR_RGB_DEM']
    DECUR_RGB_DEM_RGB = _RN50['DECUR_RGB_DEM_RGB']
    DECUR_RGB_DEM_DEM = _RN50['DECUR_RGB_DEM_DEM']
    DECUR_S1S2_RDA = _RN50['DECUR_S1S2_RDA']
    DECUR_S1S2_RDA_S1 = _RN50['DECUR_S1S2_RDA_S1']
    DECUR_S1S2_RDA_S2C = _RN50['DECUR_S1S2_RDA_S2C']
    DECUR_RGB_DEM_RDA = _RN50['DECUR_RGB_DEM_RDA']
    DECUR_RGB_DEM_RDA_RGB = _RN50['DECUR_RGB_DEM_RDA_RGB']
    DECUR_RGB_DEM_RDA_DEM = _RN50['DECUR_RGB_DEM_RDA_DEM']


class ViTSmall16_Weights(DeCURWeightsEnum):
    """DeCUR ViT-S/16 weights (``vit_small_patch16_224``), as for ResNet-50.

    .. versionadded:: 0.1
    """

    DECUR_S1S2 = _VITS16['DECUR_S1S2']
    DECUR_S1S2_S1 = _VITS16['DECUR_S1S2_S1']
    DECUR_S1S2_S2C = _VITS16['DECUR_S1S2_S2C']
    DECUR_RGB_DEM = _VITS16['DECUR_RGB_DEM']
    DECUR_RGB_DEM_RGB = _VITS16['DECUR_RGB_DEM_RGB']
    DECUR_RGB_DEM_DEM = _VITS16['DECUR_RGB_DEM_DEM']


class MiTB2_Weights(DeCURWeightsEnum):
    """DeCUR MiT-B2 weights (``mit_b2``), ``DECUR_RGB_HHA`` on SUN RGB-D.

    .. versionadded:: 0.1
    """

    DECUR_RGB_HHA = _MITB2['DECUR_RGB_HHA']
    DECUR_RGB_HHA_RGB_INDOOR = _MITB2['DECUR_RGB_HHA_RGB_INDOOR']
    DECUR_RGB_HHA_HHA = _MITB2['DECUR_RGB_HHA_HHA']


class MiTB5_Weights(DeCURWeightsEnum):
    """DeCUR MiT-B5 weights (``mit_b5``), ``DECUR_RGB_HHA`` on SUN RGB-D.

    .. versionadded:: 0.1
    """

    DECUR_RGB_HHA = _MITB5['DECUR_RGB_HHA']
    DECUR_RGB_HHA_RGB_INDOOR = _MITB5['DECUR_RGB_HHA_RGB_INDOOR']
    DECUR_RGB_HHA_HHA = _MITB5['DECUR_RGB_HHA_HHA']


#: Keys under which the enums are added to TorchGeo's weight registry.
REGISTRY: dict[str, type[DeCURWeightsEnum]] = {
    'decur_resnet50': ResNet50_Weights,
    'decur_vit_small_patch16_224': ViTSmall16_Weights,
    'decur_mit_b2': MiTB2_Weights,
    'decur_mit_b5': MiTB5_Weights,
}


def register_weights() -> None:
    """Add the enums to TorchGeo's registry (when :mod:`torchgeo_decur` is imported).

    Then :func:`torchgeo.models.get_weight` resolves names such as
    ``'ResNet50_Weights.DECUR_S1S2'`` and
    :func:`torchgeo.models.get_model_weights` the keys of :data:`REGISTRY`.

    .. versionadded:: 0.1
    """
    registry = cast(dict[Any, type[WeightsEnum]], torchgeo_api._model_weights)
    registry.update(REGISTRY)


def published_entry(file_name: str) -> DeCURWeightsEnum | None:
    """The weight entry of one of the authors' published files, by file name.

    Args:
        file_name: As for :func:`~torchgeo_decur.models.weights.table.find_release`.

    Returns:
        The joint entry of a joint file, the per-modality entry of a
        backbone-only file, or None.

    .. versionadded:: 0.1
    """
    found = find_release(file_name)
    if found is None:
        return None
    release, modality = found
    enum = next(e for e in REGISTRY.values() if e.__name__ == release.enum)
    joint = cast(DeCURWeightsEnum, enum[release.member])
    return joint if modality is None else joint.modality(modality)
