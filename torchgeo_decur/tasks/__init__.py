"""TorchGeo tasks (LightningModules) of torchgeo-decur."""

from .classification import (
    MultimodalClassificationTask,
    MultimodalMultiLabelClassificationTask,
)
from .decur import DeCURTask
from .segmentation import MultimodalSemanticSegmentationTask

__all__ = (
    'DeCURTask',
    'MultimodalClassificationTask',
    'MultimodalMultiLabelClassificationTask',
    'MultimodalSemanticSegmentationTask',
)
