"""Datamodules of torchgeo-decur."""

from .bigearthnet_mm import BigEarthNetMMDataModule
from .geonrw import GeoNRWDataModule, GeoNRWPairDataModule
from .paired import PairedDataModule
from .preparation import ModalityPreprocessing
from .rgbd import (
    NYUDepthV2DataModule,
    NYUDepthV2PairDataModule,
    SUNRGBDDataModule,
    SUNRGBDPairDataModule,
)
from .ssl4eo_s12 import SSL4EOS12PairDataModule
from .ssl4eo_s12_v11 import SSL4EOS12V11DataModule, SSL4EOS12V11ShardsDataModule
from .transfer import TransferDataModule

__all__ = (
    'BigEarthNetMMDataModule',
    'GeoNRWDataModule',
    'GeoNRWPairDataModule',
    'ModalityPreprocessing',
    'NYUDepthV2DataModule',
    'NYUDepthV2PairDataModule',
    'PairedDataModule',
    'SSL4EOS12PairDataModule',
    'SSL4EOS12V11DataModule',
    'SSL4EOS12V11ShardsDataModule',
    'SUNRGBDDataModule',
    'SUNRGBDPairDataModule',
    'TransferDataModule',
)
