"""torchgeo-decur: multimodal self-supervised learning (DeCUR) for TorchGeo."""

from . import models  # registers DeCUR weights with TorchGeo

__version__ = '0.1.0'

__all__ = ('__version__', 'models')
