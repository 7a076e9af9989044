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

__all__ = (
    'AUGMENTATIONS',
    'MultiViewAugmentation',
    'augmentation_for',
    'dem_augmentation',
    'hha_augmentation',
    'optical_augmentation',
    'rgb_augmentation',
    'sar_augmentation',
)
