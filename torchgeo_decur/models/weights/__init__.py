"""DeCUR weights, in three layers, each importing only those before it.

* :mod:`~torchgeo_decur.models.weights.table`: every published file, as data;
* :mod:`~torchgeo_decur.models.weights.verify`: published files cached and
  checked by SHA-256;
* :mod:`~torchgeo_decur.models.weights.files`: the file layouts DeCUR
  encoders come in (the authors', this package's checkpoints and exports);
* :mod:`~torchgeo_decur.models.weights.enums`: the weight enums, built from
  the table and registered with TorchGeo.
"""

from .enums import (
    REGISTRY,
    DeCURWeightsEnum,
    MiTB2_Weights,
    MiTB5_Weights,
    ResNet50_Weights,
    ViTSmall16_Weights,
    published_entry,
    register_weights,
)
from .files import (
    DA_BLOCKS,
    DABlocks,
    NotDeCURCheckpointError,
    convert_input_layer,
    read_decur_checkpoint,
    split_joint_state_dict,
)
from .verify import HashMismatchError

__all__ = (
    'DA_BLOCKS',
    'REGISTRY',
    'DABlocks',
    'DeCURWeightsEnum',
    'HashMismatchError',
    'MiTB2_Weights',
    'MiTB5_Weights',
    'NotDeCURCheckpointError',
    'ResNet50_Weights',
    'ViTSmall16_Weights',
    'convert_input_layer',
    'published_entry',
    'read_decur_checkpoint',
    'register_weights',
    'split_joint_state_dict',
)
