"""Encoders, projection heads and DeCUR weights."""

from .encoders import (
    create_encoder,
    create_modality_encoder,
    create_projector,
    is_decur_source,
)
from .heads import (
    DECODERS,
    FCNHead,
    LateFusionClassifier,
    MultimodalSegmentationModel,
    create_encoders,
    encoder_feature_maps,
)
from .weights import (
    DeCURTransforms,
    DeCURWeightsEnum,
    NotDeCURCheckpointError,
    ResNet50_Weights,
    ViTSmall16_Weights,
    load_decur_state_dict,
    load_decur_state_dicts,
    modality_transforms,
    read_decur_checkpoint,
    register_weights,
)

register_weights()

__all__ = (
    'DECODERS',
    'DeCURTransforms',
    'DeCURWeightsEnum',
    'FCNHead',
    'LateFusionClassifier',
    'MultimodalSegmentationModel',
    'NotDeCURCheckpointError',
    'ResNet50_Weights',
    'ViTSmall16_Weights',
    'create_encoder',
    'create_encoders',
    'create_modality_encoder',
    'create_projector',
    'encoder_feature_maps',
    'is_decur_source',
    'load_decur_state_dict',
    'load_decur_state_dicts',
    'modality_transforms',
    'read_decur_checkpoint',
    'register_weights',
)
