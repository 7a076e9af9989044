"""Datasets of torchgeo-decur: readers that return raw values per modality."""

from .bigearthnet import BigEarthNetMM
from .demo import make_ssl4eo_s12_demo
from .geonrw import GeoNRWCities, GeoNRWTiles
from .multimodal import MultimodalDataset
from .rgbd import SUNRGBD, NYUDepthV2, RGBDFolderDataset
from .ssl4eo_s12 import SSL4EOS12Pair, band_resolution
from .trifeature import BimodalTrifeature

__all__ = (
    'SUNRGBD',
    'BigEarthNetMM',
    'BimodalTrifeature',
    'GeoNRWCities',
    'GeoNRWTiles',
    'MultimodalDataset',
    'NYUDepthV2',
    'RGBDFolderDataset',
    'SSL4EOS12Pair',
    'band_resolution',
    'make_ssl4eo_s12_demo',
)
