"""Transforms of torchgeo-decur: preprocessing and Kornia augmentation pipelines."""

from .augmentation import (
    KeepBackground,
    MultiViewAugmentation,
    dem_augmentation,
    hha_augmentation,
    indoor_rgb_augmentation,
    optical_augmentation,
    rgb_augmentation,
    sar_augmentation,
    simclr_augmentation,
    trifeature_augmentation,
)
from .evaluation import DeCURTransforms, ModalityTransforms
from .geometry import CMX_SCALES, RandomScaleCropPad
from .hha import (
    NYU_DEPTH_V2_INTRINSICS,
    convert_depth_folder,
    decode_depth_png,
    depth_to_hha,
    estimate_gravity,
    surface_normals,
)
from .intensity import RandomBrightnessContrast
from .normalize import (
    PercentileStretch,
    Scale,
    SigmaStretch,
    Standardize,
    image_quantiles,
    normalize_dem,
    normalize_rgb,
    normalize_s1,
    normalize_s2,
)

__all__ = (
    'CMX_SCALES',
    'NYU_DEPTH_V2_INTRINSICS',
    'DeCURTransforms',
    'KeepBackground',
    'ModalityTransforms',
    'MultiViewAugmentation',
    'PercentileStretch',
    'RandomBrightnessContrast',
    'RandomScaleCropPad',
    'Scale',
    'SigmaStretch',
    'Standardize',
    'convert_depth_folder',
    'decode_depth_png',
    'dem_augmentation',
    'depth_to_hha',
    'estimate_gravity',
    'hha_augmentation',
    'image_quantiles',
    'indoor_rgb_augmentation',
    'normalize_dem',
    'normalize_rgb',
    'normalize_s1',
    'normalize_s2',
    'optical_augmentation',
    'rgb_augmentation',
    'sar_augmentation',
    'simclr_augmentation',
    'surface_normals',
    'trifeature_augmentation',
)
