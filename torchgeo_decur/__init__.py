"""torchgeo-decur: multimodal self-supervised learning (DeCUR) for TorchGeo."""

from . import models  # registers DeCUR weights with TorchGeo
from .modalities import Modality, get_modality, register_modality

__version__ = '0.2.0'

__all__ = ('Modality', '__version__', 'get_modality', 'models', 'register_modality')
