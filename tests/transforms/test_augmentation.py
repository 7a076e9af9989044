import kornia.augmentation as K
import pytest
import torch
from torch import nn
from torchgeo.transforms import RandomGrayscale

from torchgeo_decur.transforms import (
    AUGMENTATIONS,
    MultiViewAugmentation,
    augmentation_for,
    dem_augmentation,
    hha_augmentation,
    optical_augmentation,
    rgb_augmentation,
    sar_augmentation,
)

SIZE = 16


def ops(module: nn.Module) -> set[type[nn.Module]]:
    return {type(m) for m in module.modules()}


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


@pytest.mark.parametrize(
    ('factory', 'channels', 'expected', 'absent'),
    [
        (
            lambda: optical_augmentation(SIZE, 13),
            13,
            {
                K.RandomResizedCrop,
                K.RandomBrightness,
                K.RandomContrast,
                RandomGrayscale,
                K.RandomGaussianBlur,
                K.RandomSolarize,
                K.RandomHorizontalFlip,
                K.RandomVerticalFlip,
                K.Normalize,
                K.Denormalize,
            },
            set(),
        ),
        (
            lambda: sar_augmentation(SIZE, 2),
            2,
            {
                K.RandomResizedCrop,
                RandomGrayscale,
                K.RandomGaussianBlur,
                K.RandomHorizontalFlip,
                K.RandomVerticalFlip,
            },
            {K.RandomBrightness, K.RandomContrast, K.RandomSolarize, K.ColorJitter},
        ),
        (
            lambda: dem_augmentation(SIZE),
            1,
            {K.RandomResizedCrop, K.RandomHorizontalFlip, K.RandomVerticalFlip},
            {K.RandomGaussianBlur, K.RandomBrightness, RandomGrayscale},
        ),
        (
            lambda: hha_augmentation(SIZE),
            3,
            {K.RandomResizedCrop, K.RandomHorizontalFlip},
            {K.RandomVerticalFlip, K.ColorJitter, K.RandomGrayscale},
        ),
        (
            lambda: rgb_augmentation(SIZE),
            3,
            {
                K.RandomResizedCrop,
                K.ColorJitter,
                K.RandomGrayscale,
                K.RandomGaussianBlur,
                K.RandomSolarize,
                K.RandomHorizontalFlip,
            },
            {K.RandomVerticalFlip},
        ),
    ],
)
def test_pipelines(factory, channels, expected, absent) -> None:
    aug = factory()
    found = ops(aug)
    assert expected <= found
    assert not absent & found
    x = torch.rand(3, channels, 24, 24)
    y = aug(x)
    assert y.shape == (3, channels, SIZE, SIZE)
    assert y.dtype == torch.float32
    assert torch.isfinite(y).all()


def test_optical_keeps_range() -> None:
    aug = optical_augmentation(SIZE, 13, max_value=255)
    x = torch.rand(16, 13, 24, 24) * 255
    x[:, :, 0, 0], x[:, :, 0, 1] = 0, 255
    y = aug(x)
    assert y.min() >= 0
    assert y.max() <= 255 + 1e-3
    # colour operations act on x / 255: values are not clipped to [0, 1]
    assert y.mean() > 50


def test_optical_max_value() -> None:
    aug = optical_augmentation(SIZE, 4, max_value=1.0)
    y = aug(torch.rand(8, 4, 24, 24))
    assert 0 <= y.min() and y.max() <= 1 + 1e-6


def test_optical_grayscale_weights() -> None:
    weights = torch.tensor([0.0, 1.0, 1.0, 1.0])
    aug = optical_augmentation(SIZE, 4, grayscale_weights=weights)
    assert torch.equal(weights, torch.tensor([0.0, 1.0, 1.0, 1.0]))  # not modified
    gray = next(m for m in aug.modules() if isinstance(m, RandomGrayscale))
    assert torch.allclose(gray.flags['weights'], torch.tensor([0, 1, 1, 1]) / 3)
    default = optical_augmentation(SIZE, 5)
    gray = next(m for m in default.modules() if isinstance(m, RandomGrayscale))
    assert torch.allclose(gray.flags['weights'], torch.full((5,), 0.2))
    with pytest.raises(ValueError, match='in_channels=4'):
        optical_augmentation(SIZE, 4, grayscale_weights=torch.ones(3))


def test_sar_not_clipped() -> None:
    y = sar_augmentation(SIZE)(torch.randn(4, 2, 24, 24) * 3)
    assert y.min() < -1 and y.max() > 1


@pytest.mark.parametrize('channels', [1, 3, 7])
def test_any_channel_count(channels: int) -> None:
    x = torch.rand(2, channels, 20, 20)
    assert optical_augmentation(SIZE, channels)(x * 255).shape[1] == channels
    assert sar_augmentation(SIZE, channels)(x).shape[1] == channels
    assert dem_augmentation(SIZE)(x).shape[1] == channels


def test_blur_kernel_odd() -> None:
    for size in (8, 64, 224):
        blur = next(
            m
            for m in optical_augmentation(size).modules()
            if isinstance(m, K.RandomGaussianBlur)
        )
        k = blur.flags['kernel_size']
        assert k[0] % 2 == 1 and k[0] >= 3
    assert blur.flags['kernel_size'] == (23, 23)  # 224 // 10 rounded to odd


def test_invalid_arguments() -> None:
    with pytest.raises(ValueError, match='size'):
        sar_augmentation(0)
    with pytest.raises(ValueError, match='in_channels'):
        optical_augmentation(SIZE, 0)
    with pytest.raises(ValueError, match='max_value'):
        optical_augmentation(SIZE, max_value=0)


def test_augmentation_for() -> None:
    assert set(AUGMENTATIONS) == {'s1', 's2c', 's2a', 'rgb', 'dem', 'hha'}
    assert augmentation_for('s2a', SIZE)(torch.rand(2, 12, 20, 20)).shape == (
        2,
        12,
        SIZE,
        SIZE,
    )
    gray = next(
        m
        for m in augmentation_for('s2c', SIZE).modules()
        if isinstance(m, RandomGrayscale)
    )
    assert gray.flags['weights'].shape == (13,)
    assert K.RandomBrightness not in ops(augmentation_for('s1', SIZE))
    assert K.ColorJitter in ops(augmentation_for('rgb', SIZE))
    assert K.RandomVerticalFlip not in ops(augmentation_for('hha', SIZE))
    assert K.RandomVerticalFlip in ops(augmentation_for('dem', SIZE))
    with pytest.raises(ValueError, match="'sar'"):
        augmentation_for('sar', SIZE)


def test_multiview() -> None:
    aug = MultiViewAugmentation(
        {'image1': sar_augmentation(SIZE), 'image2': optical_augmentation(SIZE, 13)}
    )
    s1 = torch.randn(1, 2, 24, 24).expand(4, 2, 2, 24, 24).clone()
    s2 = (torch.rand(1, 13, 24, 24) * 255).expand(4, 2, 13, 24, 24).clone()
    label = torch.arange(4)
    batch = {'image1': s1, 'image2': s2, 'label': label}
    out = aug(batch)
    assert out is not batch
    assert out['image1'].shape == (4, 2, 2, SIZE, SIZE)
    assert out['image2'].shape == (4, 2, 13, SIZE, SIZE)
    assert out['label'] is label
    assert batch['image1'] is s1  # input dict untouched
    # identical inputs: every view of every sample gets its own random draw
    for key in ('image1', 'image2'):
        views = out[key].flatten(0, 1)
        for i in range(len(views)):
            for j in range(i):
                assert not torch.allclose(views[i], views[j])


def test_multiview_single_view_and_errors() -> None:
    aug = MultiViewAugmentation({'image': dem_augmentation(SIZE)})
    assert aug({'image': torch.rand(2, 1, 20, 20)})['image'].shape == (2, 1, SIZE, SIZE)
    with pytest.raises(KeyError, match='image'):
        aug({'mask': torch.rand(2, 1, 20, 20)})
    with pytest.raises(ValueError, match=r'\[B, V, C, H, W\]'):
        aug({'image': torch.rand(1, 20, 20)})
