"""Every DeCUR checkpoint the authors published, as data.

One :class:`Release` per pretraining run. The weight enums
(:mod:`~torchgeo_decur.models.weights.enums`) are built from these rows and
the file reader (:mod:`~torchgeo_decur.models.weights.files`) looks files up
here by name; this module imports neither.

.. versionadded:: 0.2
"""

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

__all__ = ('BASE_URL', 'RELEASES', 'SHA256', 'Release', 'find_release')

#: Where the authors publish their files (Hugging Face ``wangyi111/DeCUR``).
#: The branch, not a commit: no commit of that repository could be looked up
#: when the table was written (docs: trust.md); files are checked by hash.
BASE_URL = 'https://huggingface.co/wangyi111/DeCUR/resolve/main/'

#: SHA-256 of published files, by file name, where known. None is known yet:
#: files without one are checked against the hash recorded at their first use
#: (:mod:`~torchgeo_decur.models.weights.verify`).
SHA256: Mapping[str, str] = {}

#: The paper and the authors' code, in every entry's metadata.
PUBLICATION = 'https://arxiv.org/abs/2309.05300'
REPO = 'https://github.com/zhu-xlab/DeCUR'

#: GeoNRW: OpenCV read the orthophotos as B, G, R; the DEM on three channels.
GEONRW_BANDS = {'rgb': ('B', 'G', 'R'), 'dem': ('DEM', 'DEM', 'DEM')}

#: SUN RGB-D: OpenCV read RGB as B, G, R and HHA as angle, height, disparity.
SUNRGBD_BANDS = {'rgb_indoor': ('B', 'G', 'R'), 'hha': ('angle', 'height', 'disparity')}


@dataclass(frozen=True)
class Release:
    """One published DeCUR pretraining run and its files.

    Attributes:
        enum: Name of the weight enum that serves it.
        member: Its joint member; each modality's is ``<member>_<MODALITY>``.
        model: timm model name of the encoders.
        dataset: Pretraining dataset.
        modalities: Modality names in backbone order (``backbone_1`` first).
        joint_file: File holding all encoders.
        backbone_files: Backbone-only file of each modality, where published.
        file_bands: Channel order stored in the files, where not the modality's.
        deformable_attention: Whether the ResNets have deformable attention.
        former_joint_files: Names under which the authors' first README
            (2023) linked the joint file; files of those names are read as
            this release's.

    .. versionadded:: 0.2
    """

    enum: str
    member: str
    model: str
    dataset: str
    modalities: tuple[str, ...]
    joint_file: str
    backbone_files: Mapping[str, str] = field(default_factory=dict)
    file_bands: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    deformable_attention: bool = False
    former_joint_files: tuple[str, ...] = ()


def _ssl4eo(
    enum: str, model: str, stem: str, rda: bool = False, former: tuple[str, ...] = ()
) -> Release:
    files = {'s1': f'{stem}_sar_decur_ep100.pth', 's2c': f'{stem}_ms_decur_ep100.pth'}
    member = 'DECUR_S1S2_RDA' if rda else 'DECUR_S1S2'
    joint = f'{stem}_joint_decur_ep100.pth'
    return Release(
        enum, member, model, 'SSL4EO-S12', ('s1', 's2c'), joint, files, {}, rda, former
    )


def _geonrw(
    enum: str, model: str, stem: str, rda: bool = False, former: tuple[str, ...] = ()
) -> Release:
    files = {m: f'{stem}_{m}_decur_ep100.pth' for m in ('rgb', 'dem')}
    member = 'DECUR_RGB_DEM_RDA' if rda else 'DECUR_RGB_DEM'
    joint = f'{stem}_joint_decur_ep100.pth'
    return Release(
        enum,
        member,
        model,
        'GeoNRW',
        ('rgb', 'dem'),
        joint,
        files,
        GEONRW_BANDS,
        rda,
        former,
    )


def _sunrgbd(enum: str, variant: str) -> Release:
    stem = f'{variant}_sunrgbd'
    files = {
        'rgb_indoor': f'{stem}_backbone_rgb_decur_ep200.pth',
        'hha': f'{stem}_backbone_hha_decur_ep200.pth',
    }
    model, joint = variant.replace('mitb', 'mit_b'), f'{stem}_rgb_hha_decur_ep200.pth'
    modalities = ('rgb_indoor', 'hha')
    return Release(
        enum,
        'DECUR_RGB_HHA',
        model,
        'SUN RGB-D',
        modalities,
        joint,
        files,
        SUNRGBD_BANDS,
    )


#: Every published release, grouped by enum, in member order.
RELEASES: tuple[Release, ...] = (
    _ssl4eo(
        'ResNet50_Weights',
        'resnet50',
        'rn50_ssl4eo-s12',
        former=('rn50_ssl4eo-s12_s1_s2c_decur_ep100.pth',),  # README until 9a8dbab
    ),
    _geonrw(
        'ResNet50_Weights',
        'resnet50',
        'rn50_geonrw',
        former=('rn50_geonrw_rgb_dem_decur_ep100.pth',),  # README until 9a8dbab
    ),
    _ssl4eo('ResNet50_Weights', 'resnet50', 'rn50_rda_ssl4eo-s12', rda=True),
    _geonrw('ResNet50_Weights', 'resnet50', 'rn50_rda_geonrw', rda=True),
    _ssl4eo('ViTSmall16_Weights', 'vit_small_patch16_224', 'vits16_ssl4eo-s12'),
    _geonrw('ViTSmall16_Weights', 'vit_small_patch16_224', 'vits16_geonrw'),
    _sunrgbd('MiTB2_Weights', 'mitb2'),
    _sunrgbd('MiTB5_Weights', 'mitb5'),
)

#: Hash suffix of TorchGeo's pinned copies of published files.
_HASH_SUFFIX = re.compile(r'-[0-9a-f]{8,}$')


def find_release(file_name: str) -> tuple[Release, str | None] | None:
    """The release a published file belongs to, by the file's name.

    Args:
        file_name: A file name or URL (``rn50_geonrw_rgb_decur_ep100.pth``), or
            TorchGeo's hash-suffixed copy of one
            (``rn50_ssl4eo-s12_sar_decur_ep100-f0e69ba2.pth``).

    Returns:
        ``(release, None)`` for a joint file, ``(release, modality)`` for a
        backbone-only file, or None for a file that is not published.

    .. versionadded:: 0.2
    """
    stem, suffix = os.path.splitext(os.path.basename(file_name))
    name = _HASH_SUFFIX.sub('', stem) + suffix
    for release in RELEASES:
        if name == release.joint_file or name in release.former_joint_files:
            return release, None
        for modality, file in release.backbone_files.items():
            if name == file:
                return release, modality
    return None
