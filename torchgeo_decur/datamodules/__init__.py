"""Datamodules of torchgeo-decur."""

from .bigearthnet_mm import BigEarthNetMMDataModule
from .geonrw import GeoNRWDataModule
from .ssl4eo_s12 import SSL4EOS12PairDataModule

__all__ = ('BigEarthNetMMDataModule', 'GeoNRWDataModule', 'SSL4EOS12PairDataModule')
