"""DeCUR weights of Mix Transformer (MiT-B2, MiT-B5) encoders."""

from .base import _SUNRGBD_FILE_BANDS, DeCURWeightsEnum, _family

__all__ = ('MiTB2_Weights', 'MiTB5_Weights')


def _sunrgbd(variant: str) -> dict[str, object]:
    return _family(
        f'{variant}_sunrgbd',
        'DECUR_RGB_HHA',
        'SUN RGB-D',
        variant.replace('mitb', 'mit_b'),
        ('rgb_indoor', 'hha'),
        backbone_files={
            'rgb_indoor': f'{variant}_sunrgbd_backbone_rgb_decur_ep200.pth',
            'hha': f'{variant}_sunrgbd_backbone_hha_decur_ep200.pth',
        },
        file_bands=_SUNRGBD_FILE_BANDS,
        joint_file=f'{variant}_sunrgbd_rgb_hha_decur_ep200.pth',
    )


_B2 = _sunrgbd('mitb2')
_B5 = _sunrgbd('mitb5')


class MiTB2_Weights(DeCURWeightsEnum):
    """DeCUR MiT-B2 weights, as published by the DeCUR authors.

    For :class:`~torchgeo_decur.models.mit.MixTransformer` (``mit_b2``,
    registered with timm when :mod:`torchgeo_decur` is imported).

    * ``DECUR_RGB_HHA``: SUN RGB-D, modality 1 ``rgb_indoor`` (camera RGB),
      modality 2 ``hha`` (depth encoded as disparity, height, angle), 200
      epochs, joint file ``mitb2_sunrgbd_rgb_hha_decur_ep200.pth``;
      ``DECUR_RGB_HHA_RGB_INDOOR`` / ``DECUR_RGB_HHA_HHA``: the backbone-only
      files ``mitb2_sunrgbd_backbone_{rgb,hha}_decur_ep200.pth``.

    The authors read RGB and HHA images with OpenCV (channels B, G, R and
    angle, height, disparity) and standardised them with ImageNet's
    constants in that order; the served encoders take R, G, B and disparity,
    height, angle (first layer permuted, which gives identical features), and
    the modalities standardise each band with the constant its channel got.

    .. versionadded:: 0.1
    """

    DECUR_RGB_HHA = _B2['DECUR_RGB_HHA']
    DECUR_RGB_HHA_RGB_INDOOR = _B2['DECUR_RGB_HHA_RGB_INDOOR']
    DECUR_RGB_HHA_HHA = _B2['DECUR_RGB_HHA_HHA']


class MiTB5_Weights(DeCURWeightsEnum):
    """DeCUR MiT-B5 weights, as published by the DeCUR authors.

    As :class:`MiTB2_Weights`, for ``mit_b5``: joint file
    ``mitb5_sunrgbd_rgb_hha_decur_ep200.pth``, backbone-only files
    ``mitb5_sunrgbd_backbone_{rgb,hha}_decur_ep200.pth``.

    .. versionadded:: 0.1
    """

    DECUR_RGB_HHA = _B5['DECUR_RGB_HHA']
    DECUR_RGB_HHA_RGB_INDOOR = _B5['DECUR_RGB_HHA_RGB_INDOOR']
    DECUR_RGB_HHA_HHA = _B5['DECUR_RGB_HHA_HHA']
