"""Pre-trained DeCUR weights: enums per encoder family, registered with TorchGeo.

See :mod:`torchgeo_decur.models.weights.base` for how joint and per-modality
entries work, and :mod:`torchgeo_decur.models.checkpoints` for the file
formats they read.
"""

from .base import DeCURTransforms, DeCURWeightsEnum, modality_transforms
from .mit import MiTB2_Weights, MiTB5_Weights
from .registry import REGISTRY, published_entry, register_weights
from .resnet import ResNet50_Weights
from .vit import ViTSmall16_Weights

__all__ = (
    'REGISTRY',
    'DeCURTransforms',
    'DeCURWeightsEnum',
    'MiTB2_Weights',
    'MiTB5_Weights',
    'ResNet50_Weights',
    'ViTSmall16_Weights',
    'modality_transforms',
    'published_entry',
    'register_weights',
)
