"""Datamodules of torchgeo-decur."""

from .bigearthnet_mm import BigEarthNetMMDataModule
from .geonrw import GeoNRWDataModule
from .paired import ModalityPreprocessing, PairedDataModule
from .ssl4eo_s12 import SSL4EOS12PairDataModule
from .transfer import TransferDataModule

__all__ = (
    'BigEarthNetMMDataModule',
    'GeoNRWDataModule',
    'ModalityPreprocessing',
    'PairedDataModule',
    'SSL4EOS12PairDataModule',
    'TransferDataModule',
)
