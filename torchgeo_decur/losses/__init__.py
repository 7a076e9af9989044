"""Losses of torchgeo-decur."""

from .decur import DeCURLoss

__all__ = ('DeCURLoss',)
