import kornia.augmentation as K
import pytest
import torch
from torch import nn
from torchgeo.transforms import RandomGrayscale

from torchgeo_decur.transforms import (
    MultiViewAugmentation,
    RandomBrightnessContrast,
    dem_augmentation,
    hha_augmentation,
    indoor_rgb_augmentation,
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
                RandomBrightnessContrast,
                RandomGrayscale,
                K.RandomGaussianBlur,
                K.RandomSolarize,
                K.RandomHorizontalFlip,
                K.RandomVerticalFlip,
            },
            # Kornia's brightness adds and its contrast multiplies
            {K.RandomBrightness, K.RandomContrast, K.ColorJitter, K.Normalize},
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
            {RandomBrightnessContrast, K.RandomSolarize, K.ColorJitter},
        ),
        (
            lambda: dem_augmentation(SIZE),
            1,
            {K.RandomResizedCrop, K.RandomHorizontalFlip, K.RandomVerticalFlip},
            {K.RandomGaussianBlur, RandomBrightnessContrast, RandomGrayscale},
        ),
        (
            lambda: hha_augmentation(SIZE),
            3,
            {K.RandomResizedCrop, K.RandomHorizontalFlip},
            {K.RandomVerticalFlip, RandomBrightnessContrast, RandomGrayscale},
        ),
        (
            lambda: indoor_rgb_augmentation(SIZE),
            3,
            {
                K.RandomResizedCrop,
                RandomBrightnessContrast,
                RandomGrayscale,
                K.RandomGaussianBlur,
                K.RandomHorizontalFlip,
            },
            {K.RandomSolarize, K.RandomVerticalFlip, K.ColorJitter},
        ),
        (
            lambda: rgb_augmentation(SIZE),
            3,
            {
                K.RandomResizedCrop,
                RandomBrightnessContrast,
                RandomGrayscale,
                K.RandomGaussianBlur,
                K.RandomSolarize,
                K.RandomHorizontalFlip,
                K.RandomVerticalFlip,
            },
            {K.ColorJitter, K.RandomBrightness},
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


def s2_like(n: int, size: int = 24, seed: int = 0) -> torch.Tensor:
    """Sentinel-2-like reflectance: smooth spectra, mostly 0.02-0.3, in [0, 1]."""
    g = torch.Generator().manual_seed(seed)
    spectra = 0.02 + 0.28 * torch.rand(n, 13, 1, 1, generator=g)
    texture = 0.03 * torch.randn(n, 1, size, size, generator=g)
    return (spectra * (1 + texture)).clamp(0, 1)


def test_optical_keeps_range() -> None:
    aug = optical_augmentation(SIZE, 13)
    x = torch.rand(16, 13, 24, 24)
    x[:, :, 0, 0], x[:, :, 0, 1] = 0, 1
    y = aug(x)
    assert y.min() >= 0
    assert y.max() <= 1 + 1e-6


def test_optical_views_keep_content_on_reflectance() -> None:
    # Kornia's RandomBrightness subtracts up to 0.4 from reflectances of 0-0.3:
    # about 7-13% of views were entirely zero with it
    aug = optical_augmentation(32, 13)
    x = s2_like(1000, 32)
    y = aug(x)
    all_zero = (y.flatten(1).amax(dim=1) == 0).float().mean().item()
    assert all_zero < 0.01
    # and no view lost most of its signal
    ratio = y.flatten(1).mean(1) / x.flatten(1).mean(1)
    assert (ratio > 0.3).float().mean() > 0.99


def test_brightness_contrast_formula() -> None:
    """The op equals a plain reference of the DeCUR formulas."""
    aug = RandomBrightnessContrast(brightness=0.4, contrast=0.4, p=1.0)
    x = s2_like(6)
    y = aug(x)
    b = aug._params['brightness'].view(-1, 1, 1, 1)
    c = aug._params['contrast'].view(-1, 1, 1, 1)
    assert ((b >= 0.6) & (b <= 1.4)).all() and ((c >= 0.6) & (c <= 1.4)).all()
    bright = (x * b).clamp(0, 1)
    mean = bright.mean(dim=(2, 3), keepdim=True)
    expected = ((bright - mean) * c + mean).clamp(0, 1)
    torch.testing.assert_close(y, expected)


def test_brightness_contrast_keeps_each_mean_within_factor_range() -> None:
    aug = RandomBrightnessContrast(p=1.0)
    x = s2_like(200)
    y = aug(x)
    # per image and band: mean scaled by the brightness factor, contrast keeps it
    ratio = y.mean(dim=(2, 3)) / x.mean(dim=(2, 3))
    assert ratio.min() >= 0.6 - 1e-4 and ratio.max() <= 1.4 + 1e-4
    b = aug._params['brightness'][:, None]
    torch.testing.assert_close(ratio, b.expand_as(ratio), rtol=1e-4, atol=1e-4)
    # the spectral shape survives: band ratios of the image means are kept
    shape_in = x.mean(dim=(2, 3)) / x.mean(dim=(1, 2, 3))[:, None]
    shape_out = y.mean(dim=(2, 3)) / y.mean(dim=(1, 2, 3))[:, None]
    torch.testing.assert_close(shape_out, shape_in, rtol=1e-4, atol=1e-4)


def test_brightness_contrast_probability_and_errors() -> None:
    x = s2_like(400)
    y = RandomBrightnessContrast(p=0.8)(x)
    changed = (y - x).flatten(1).abs().amax(1) > 0
    assert 0.7 < changed.float().mean() < 0.9  # both together, p = 0.8
    identity = RandomBrightnessContrast(brightness=(1, 1), contrast=(1, 1), p=1.0)
    torch.testing.assert_close(identity(x), x)
    with pytest.raises(ValueError, match='brightness'):
        RandomBrightnessContrast(brightness=(1.4, 0.6))
    with pytest.raises(ValueError, match='contrast'):
        RandomBrightnessContrast(contrast=-1.0)


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


def test_grayscale_probability() -> None:
    # the grayscale can be turned off (the demo does: it hides spectral factors)
    for factory, channels in ((optical_augmentation, 13), (sar_augmentation, 2)):
        default = factory(SIZE, channels)
        gray = next(m for m in default.modules() if isinstance(m, RandomGrayscale))
        assert gray.p == pytest.approx(0.2)
        assert RandomGrayscale not in ops(factory(SIZE, channels, grayscale=0))
        gray = next(
            m
            for m in factory(SIZE, channels, grayscale=0.5).modules()
            if isinstance(m, RandomGrayscale)
        )
        assert gray.p == pytest.approx(0.5)
        with pytest.raises(ValueError, match='grayscale'):
            factory(SIZE, channels, grayscale=1.5)
    x = torch.rand(4, 13, 20, 20)
    assert optical_augmentation(SIZE, 13, grayscale=0)(x).shape == (4, 13, SIZE, SIZE)


def test_sar_geometric_and_blur_only() -> None:
    # stretched backscatter in [0, 1] keeps its range: no colour operation
    y = sar_augmentation(SIZE)(torch.rand(32, 2, 24, 24))
    assert 0 <= y.min() and y.max() <= 1
    assert abs(y.mean().item() - 0.5) < 0.05


@pytest.mark.parametrize('channels', [1, 3, 7])
def test_any_channel_count(channels: int) -> None:
    x = torch.rand(2, channels, 20, 20)
    assert optical_augmentation(SIZE, channels)(x).shape[1] == channels
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


def test_multiview() -> None:
    aug = MultiViewAugmentation(
        {'image1': sar_augmentation(SIZE), 'image2': optical_augmentation(SIZE, 13)}
    )
    s1 = torch.randn(1, 2, 24, 24).expand(4, 2, 2, 24, 24).clone()
    s2 = torch.rand(1, 13, 24, 24).expand(4, 2, 13, 24, 24).clone()
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


def test_indoor_rgb_crop_scale() -> None:
    crop = next(
        m
        for m in indoor_rgb_augmentation(SIZE).modules()
        if isinstance(m, K.RandomResizedCrop)
    )
    assert tuple(crop._param_generator.scale) == (0.5, 1.0)
