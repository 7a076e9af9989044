"""TorchGeo tasks (LightningModules) of torchgeo-decur."""

from .baselines import MultimodalSSLTask
from .classification import (
    MultimodalClassificationTask,
    MultimodalMultiLabelClassificationTask,
)
from .comm import CoMMTask
from .decur import DeCURTask
from .segmentation import MultimodalSemanticSegmentationTask
from .ssl import EncoderSettings, SSLTask

__all__ = (
    'CoMMTask',
    'DeCURTask',
    'EncoderSettings',
    'MultimodalClassificationTask',
    'MultimodalMultiLabelClassificationTask',
    'MultimodalSSLTask',
    'MultimodalSemanticSegmentationTask',
    'SSLTask',
)
