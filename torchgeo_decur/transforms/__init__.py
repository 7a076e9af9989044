"""Transforms of torchgeo-decur: per-modality Kornia augmentation pipelines."""

from .augmentation import (
    AUGMENTATIONS,
    MultiViewAugmentation,
    augmentation_for,
    dem_augmentation,
    hha_augmentation,
    optical_augmentation,
    rgb_augmentation,
    sar_augmentation,
)
from .intensity import RandomBrightnessContrast

__all__ = (
    'AUGMENTATIONS',
    'MultiViewAugmentation',
    'RandomBrightnessContrast',
    'augmentation_for',
    'dem_augmentation',
    'hha_augmentation',
    'optical_augmentation',
    'rgb_augmentation',
    'sar_augmentation',
)
