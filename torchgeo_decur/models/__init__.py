"""Encoders, projection heads, DeCUR weights and the files they come in."""

from ..modalities import modality_transforms  # also here, as in 0.1
from ..transforms.evaluation import DeCURTransforms  # also here, as in 0.1
from .cmx import CMXSegmentationModel
from .encoders import (
    create_encoder,
    create_modality_encoder,
    create_projector,
    is_decur_source,
    load_decur_state_dict,
    load_decur_state_dicts,
    output_size,
    resolve_weights,
    select_state_dict,
    state_dict_mismatches,
)
from .fusion import FusionTransformer, LatentConverter, sincos_position_embedding_2d
from .heads import (
    DECODERS,
    FCNHead,
    LateFusionClassifier,
    MultimodalSegmentationModel,
    create_encoders,
    encoder_feature_maps,
)
from .imagenet import IMAGENET, IMAGENET_TAGS, imagenet_backbone, imagenet_model_name
from .mit import MixTransformer, register_mit
from .weights import (
    DeCURWeightsEnum,
    MiTB2_Weights,
    MiTB5_Weights,
    NotDeCURCheckpointError,
    ResNet50_Weights,
    ViTSmall16_Weights,
    convert_input_layer,
    read_decur_checkpoint,
    register_weights,
)

register_weights()
register_mit()

__all__ = (
    'DECODERS',
    'IMAGENET',
    'IMAGENET_TAGS',
    'CMXSegmentationModel',
    'DeCURTransforms',
    'DeCURWeightsEnum',
    'FCNHead',
    'FusionTransformer',
    'LateFusionClassifier',
    'LatentConverter',
    'MiTB2_Weights',
    'MiTB5_Weights',
    'MixTransformer',
    'MultimodalSegmentationModel',
    'NotDeCURCheckpointError',
    'ResNet50_Weights',
    'ViTSmall16_Weights',
    'convert_input_layer',
    'create_encoder',
    'create_encoders',
    'create_modality_encoder',
    'create_projector',
    'encoder_feature_maps',
    'imagenet_backbone',
    'imagenet_model_name',
    'is_decur_source',
    'load_decur_state_dict',
    'load_decur_state_dicts',
    'modality_transforms',
    'output_size',
    'read_decur_checkpoint',
    'register_mit',
    'register_weights',
    'resolve_weights',
    'select_state_dict',
    'sincos_position_embedding_2d',
    'state_dict_mismatches',
)
