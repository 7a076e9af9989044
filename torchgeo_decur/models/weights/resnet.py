"""DeCUR weights of ResNet-50 encoders."""

from .base import _GEONRW_FILE_BANDS, DeCURWeightsEnum, _family

__all__ = ('ResNet50_Weights',)

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
    **_family(
        'rn50_rda_ssl4eo-s12',
        'DECUR_S1S2_RDA',
        'SSL4EO-S12',
        'resnet50',
        ('s1', 's2c'),
        backbone_files={
            's1': 'rn50_rda_ssl4eo-s12_sar_decur_ep100.pth',
            's2c': 'rn50_rda_ssl4eo-s12_ms_decur_ep100.pth',
        },
        extra={'deformable_attention': True},
    ),
    **_family(
        'rn50_rda_geonrw',
        'DECUR_RGB_DEM_RDA',
        'GeoNRW',
        'resnet50',
        ('rgb', 'dem'),
        backbone_files={
            'rgb': 'rn50_rda_geonrw_rgb_decur_ep100.pth',
            'dem': 'rn50_rda_geonrw_dem_decur_ep100.pth',
        },
        file_bands=_GEONRW_FILE_BANDS,
        extra={'deformable_attention': True},
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
    * ``DECUR_S1S2_RDA``, ``DECUR_RGB_DEM_RDA`` (and their per-modality
      entries ``..._RDA_S1``, ``..._RDA_S2C``, ``..._RDA_RGB``,
      ``..._RDA_DEM``): the ECCV version with deformable attention after
      stages 3 and 4 (``meta['deformable_attention']``), files
      ``rn50_rda_*``. They load into
      ``create_encoder('resnet50', ..., deformable_attention=True)`` (None
      follows the entry), not into a plain timm ResNet-50 (see
      :mod:`torchgeo_decur.models.deformable`).

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
