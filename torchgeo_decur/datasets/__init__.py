"""Datasets of torchgeo-decur."""

from .demo import make_ssl4eo_s12_demo
from .modalities import MODALITIES, Modality, get_modality
from .ssl4eo_s12 import SSL4EOS12Pair, band_resolution

__all__ = (
    'MODALITIES',
    'Modality',
    'SSL4EOS12Pair',
    'band_resolution',
    'get_modality',
    'make_ssl4eo_s12_demo',
)
