"""Datasets of torchgeo-decur: readers that return raw values per modality."""

from .bigearthnet import BigEarthNetMM
from .geonrw import GeoNRWCities, GeoNRWTiles
from .multimodal import MultimodalDataset
from .rgbd import SUNRGBD, NYUDepthV2, RGBDFolderDataset
from .ssl4eo_s12 import SSL4EOS12Pair, band_resolution
from .ssl4eo_s12_v11 import SSL4EOS12V11
from .ssl4eo_s12_v11_shards import SSL4EOS12V11Shards

__all__ = (
    'SSL4EOS12V11',
    'SUNRGBD',
    'BigEarthNetMM',
    'GeoNRWCities',
    'GeoNRWTiles',
    'MultimodalDataset',
    'NYUDepthV2',
    'RGBDFolderDataset',
    'SSL4EOS12Pair',
    'SSL4EOS12V11Shards',
    'band_resolution',
)
