"""Losses of torchgeo-decur: DeCUR's, and those of its baselines and CoMM."""

from .baselines import CLIPLoss, CrossModalBarlowTwinsLoss, CrossSelfLoss
from .comm import CoMMLoss
from .decur import WEIGHTINGS, DeCURLoss

__all__ = (
    'WEIGHTINGS',
    'CLIPLoss',
    'CoMMLoss',
    'CrossModalBarlowTwinsLoss',
    'CrossSelfLoss',
    'DeCURLoss',
)
