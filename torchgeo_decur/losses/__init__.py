"""Losses of torchgeo-decur."""

from .decur import WEIGHTINGS, DeCURLoss

__all__ = ('WEIGHTINGS', 'DeCURLoss')
