"""DeCUR weights of ViT-S/16 encoders."""

from .base import _GEONRW_FILE_BANDS, DeCURWeightsEnum, _family

__all__ = ('ViTSmall16_Weights',)

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
