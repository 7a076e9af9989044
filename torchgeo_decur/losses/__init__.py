"""Losses of torchgeo-decur."""

from .baselines import (
    CLIPLoss,
    CrossModalBarlowTwinsLoss,
    CrossModalNTXentLoss,
    CrossModalVICRegLoss,
    CrossSelfLoss,
)
from .decur import WEIGHTINGS, DeCURLoss

__all__ = (
    'WEIGHTINGS',
    'CLIPLoss',
    'CrossModalBarlowTwinsLoss',
    'CrossModalNTXentLoss',
    'CrossModalVICRegLoss',
    'CrossSelfLoss',
    'DeCURLoss',
)
