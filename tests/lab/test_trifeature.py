import math
from typing import Any

import kornia.augmentation as K
import matplotlib
import pytest
import torch
import torchvision.transforms.v2.functional as TF
from matplotlib import pyplot as plt
from torch import Tensor

from torchgeo_decur.lab import BimodalTrifeature
from torchgeo_decur.lab.trifeature import (
    BACKGROUND,
    COLOURS,
    SHAPE_RADIUS,
    SHAPES,
    TEXTURES,
    combination_split,
    render,
    shape_mask,
    synergy_map,
    texture_mask,
)
from torchgeo_decur.modalities import get_modality
from torchgeo_decur.transforms import (
    KeepBackground,
    Scale,
    simclr_augmentation,
    trifeature_augmentation,
)

matplotlib.use('Agg')

GREY = 128  # floor(0.5 * 255 + 0.5)
PALETTE = torch.tensor(
    [[math.floor(255 * v + 0.5) for v in rgb] for rgb in COLOURS.values()]
)

#: Areas of the shapes in units of the radius squared (see SHAPES' comment).
AREAS = {
    'triangle': 3 * math.sqrt(3) / 4,
    'square': 1.4**2,
    'plus': 2 * 0.6 * 1.9 - 0.6**2,
    'circle': math.pi * 0.8**2,
    'tee': 1.2 * 0.6 + 0.6 * 1.15,
    'rhombus': 2 * 0.62,
    'pentagon': 2.5 * 0.9**2 * math.sin(math.radians(72)),
    'star': 5 * 1.0 * 0.45 * math.sin(math.radians(36)),
    'fivesquare': 5 / 9 * 1.4**2,
    'trapezoid': (0.8 + 1.66) / 2 * 1.1,
}


def generator(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.fixture(scope='module')
def train() -> BimodalTrifeature:
    return BimodalTrifeature('train', num_pairs=400, size=16, seed=3)


def test_constants() -> None:
    assert len(SHAPES) == len(TEXTURES) == len(COLOURS) == 10
    assert SHAPES[1] == 'square' and TEXTURES[0] == 'solid'
    assert next(iter(COLOURS)) == 'red' and COLOURS['red'] == (1.0, 0.0, 0.0)
    assert COLOURS['pink'] == (1.0, 0.4, 1.0)
    assert COLOURS['purple'] == (0.3, 0.0, 0.5)
    assert COLOURS['ocean'] == (0.1, 0.4, 0.5)
    assert COLOURS['orange'] == (1.0, 0.6, 0.0)
    assert BACKGROUND == (0.5, 0.5, 0.5)
    # every colour differs from the background in 8 bits
    assert not (PALETTE == GREY).all(dim=1).any()


def test_solid_red_square() -> None:
    size = 32
    image = render(
        torch.tensor([1]),  # square
        torch.tensor([0]),  # solid
        torch.tensor([0]),  # red
        size,
        generator(),
        angle=torch.tensor([0.0]),
        centre=torch.tensor([[16.0, 16.0]]),
    )
    assert image.shape == (1, 3, size, size) and image.dtype == torch.uint8
    # half-side 0.7 * 0.35 * 32 = 7.84 px around 16: pixel centres 8.5 .. 23.5
    inside = torch.zeros(size, size, dtype=torch.bool)
    inside[8:24, 8:24] = True
    red = torch.tensor([255, 0, 0], dtype=torch.uint8).view(3, 1)
    assert (image[0][:, inside] == red).all()
    assert (image[0][:, ~inside] == GREY).all()


def test_rotated_square_is_a_diamond() -> None:
    size = 64
    image = render(
        torch.tensor([1]),
        torch.tensor([0]),
        torch.tensor([2]),  # blue
        size,
        angle=torch.tensor([45.0]),
        centre=torch.tensor([[32.0, 32.0]]),
    )
    on = (image[0] != GREY).any(0)
    c = torch.arange(size) + 0.5 - 32
    dy, dx = torch.meshgrid(c, c, indexing='ij')
    half = 0.7 * SHAPE_RADIUS * size * math.sqrt(2)  # centre to corner
    assert on[32, 32] and on[32, 32 + int(half) - 1] and not on[32, 32 + int(half) + 1]
    # inside the rotated square iff |dx + dy| and |dx - dy| <= half * sqrt(2)
    expected = ((dx + dy).abs() <= half) & ((dx - dy).abs() <= half)
    assert (on ^ expected).sum() <= 4  # pixel centres on the edge


def test_pixels_are_colour_or_grey() -> None:
    s, t, c = torch.meshgrid(
        torch.arange(10), torch.arange(10), torch.arange(10), indexing='ij'
    )
    s, t, c = s.flatten(), t.flatten(), c.flatten()
    images = render(s, t, c, 16, generator())
    pixels = images.flatten(2)  # [N, 3, P]
    grey = (pixels == GREY).all(1)
    coloured = (pixels == PALETTE[c].to(torch.uint8)[:, :, None]).all(1)
    assert (grey | coloured).all()
    assert coloured.any(1).all()  # every image shows some of its colour
    assert grey.any(1).all()
    # the 1-px border is always background (shapes stay inside the image)
    border = torch.ones(16, 16, dtype=torch.bool)
    border[1:-1, 1:-1] = False
    assert (images[:, :, border] == GREY).all()


@pytest.mark.parametrize('name', SHAPES)
def test_shape_area_and_extent(name: str) -> None:
    size, n = 64, 24
    radius = SHAPE_RADIUS * size
    kind = SHAPES.index(name)
    g = generator(kind)
    angle = torch.rand(n, generator=g) * 90 - 45
    centre = radius + 1 + torch.rand(n, 2, generator=g) * (size - 2 * radius - 2)
    mask = shape_mask(torch.full((n,), kind), size, angle=angle, centre=centre)
    area = mask.flatten(1).sum(1).float() / radius**2
    torch.testing.assert_close(area, torch.full((n,), AREAS[name]), rtol=0.05, atol=0)
    # every pixel of the shape lies within the radius of its centre
    c = torch.arange(size) + 0.5
    y, x = torch.meshgrid(c, c, indexing='ij')
    dist = torch.hypot(x - centre[:, :1, None], y - centre[:, 1:, None])
    assert (dist[mask] <= radius).all()


def test_shapes_render_differently() -> None:
    n = len(SHAPES)
    mask = shape_mask(
        torch.arange(n), 32, angle=torch.zeros(n), centre=torch.full((n, 2), 16.0)
    ).flatten(1)
    differ = (mask[:, None] != mask[None]).sum(-1)  # [n, n] pixels that differ
    assert (differ + torch.eye(n, dtype=torch.long) * 1000 >= 10).all()


def test_textures_render_differently() -> None:
    n = len(TEXTURES)
    mask = texture_mask(
        torch.arange(n), 32, generator(), angle=torch.zeros(n), offset=torch.zeros(n, 2)
    ).flatten(1)
    differ = (mask[:, None] != mask[None]).sum(-1)
    assert (differ + torch.eye(n, dtype=torch.long) * 1000 >= 50).all()
    fraction = mask.float().mean(1)
    assert fraction[TEXTURES.index('solid')] == 1
    assert 0.4 < fraction[TEXTURES.index('noise')] < 0.6
    assert 0.25 < fraction[TEXTURES.index('stripes')] < 0.42
    assert (fraction > 0.1).all()


def spectrum(mask: Tensor) -> Tensor:
    """Magnitude spectrum (shift invariant) and fraction on, per image."""
    f = torch.fft.rfft2(mask.double() * 2 - 1).abs().flatten(1)
    f = f / f.norm(dim=1, keepdim=True)
    return torch.cat([f, mask.double().mean((1, 2))[:, None], torch.ones(len(f), 1)], 1)


def test_textures_distinguishable_at_32px() -> None:
    # a ridge-regression classifier on the magnitude spectrum of the texture
    # masks, randomly rotated and shifted, tells the 10 textures apart
    labels = torch.arange(len(TEXTURES)).repeat_interleave(60)
    g = generator(1)
    x_train = spectrum(texture_mask(labels, 32, g))
    x_test = spectrum(texture_mask(labels, 32, g))
    y = torch.nn.functional.one_hot(labels).double()
    eye = torch.eye(x_train.shape[1], dtype=torch.double)
    weights = torch.linalg.solve(x_train.T @ x_train + 1e-2 * eye, x_train.T @ y)
    accuracy = ((x_test @ weights).argmax(1) == labels).double().mean()
    assert accuracy > 0.9, accuracy


def test_render_deterministic() -> None:
    s, t, c = torch.arange(10), torch.arange(10), torch.arange(10).flip(0)
    a = render(s, t, c, 32, generator(5))
    assert torch.equal(a, render(s, t, c, 32, generator(5)))
    assert not torch.equal(a, render(s, t, c, 32, generator(6)))


def test_render_errors() -> None:
    one = torch.tensor([0])
    with pytest.raises(ValueError, match='texture must have 1 elements'):
        render(one, torch.tensor([0, 1]), one, 32)
    with pytest.raises(ValueError, match=r'colour must be in \[0, 10\)'):
        render(one, one, torch.tensor([10]), 32)
    with pytest.raises(ValueError, match='shape must be a 1-D integer tensor'):
        render(torch.tensor([0.0]), one, one, 32)
    with pytest.raises(ValueError, match='size must be >= 8'):
        render(one, one, one, 4)
    with pytest.raises(ValueError, match=r'centre must have shape \(1, 2\)'):
        render(one, one, one, 32, centre=torch.zeros(2))


def test_combination_split() -> None:
    train, test = combination_split()
    assert len(train) == 800 and len(test) == 200
    assert not set(train) & set(test)
    everything = {(s, t, c) for s in range(10) for t in range(10) for c in range(10)}
    assert set(train) | set(test) == everything
    assert combination_split(0) == (train, test)
    assert combination_split(1) != (train, test)
    # every shape, texture and colour occurs in both splits
    for part in (train, test):
        for k in range(3):
            assert {combo[k] for combo in part} == set(range(10))
    with pytest.raises(ValueError, match='seed must be an integer >= 0'):
        combination_split(-1)


def test_synergy_map() -> None:
    m = synergy_map()
    assert m.dtype == torch.int64
    assert sorted(m.tolist()) == list(range(10))  # a bijection
    # independent of the global generator and of anything generated before
    torch.manual_seed(123)
    torch.rand(1000)
    BimodalTrifeature(num_pairs=7, size=8, seed=9)
    assert torch.equal(synergy_map(0), m)
    assert any(not torch.equal(synergy_map(s), m) for s in range(1, 4))


def test_sample_contract(train: BimodalTrifeature) -> None:
    assert len(train) == 400
    assert BimodalTrifeature.input_bands == {
        'image1': ('R', 'G', 'B'),
        'image2': ('R', 'G', 'B'),
    }
    sample = train[0]
    assert set(sample) == {
        'image1',
        'image2',
        'shape',
        'texture1',
        'texture2',
        'colour1',
        'colour2',
        'synergy',
    }
    for key in ('image1', 'image2'):
        assert sample[key].shape == (3, 16, 16) and sample[key].dtype == torch.uint8
    for key in BimodalTrifeature.label_keys:
        assert sample[key].shape == () and sample[key].dtype == torch.int64
        assert sample[key] == train.labels[key][0]
    assert train[-1]['shape'] == train.labels['shape'][-1]
    with pytest.raises(IndexError, match='out of range'):
        train[400]


def test_labels_match_pixels(train: BimodalTrifeature) -> None:
    labels = train.labels
    for view in (1, 2):
        pixels = getattr(train, f'image{view}').flatten(2)
        colour = PALETTE[labels[f'colour{view}']].to(torch.uint8)[:, :, None]
        grey = (pixels == GREY).all(1)
        assert (grey | (pixels == colour).all(1)).all()
        assert (~grey).any(1).all()
    synergy = (synergy_map()[labels['texture1']] == labels['colour2']).long()
    assert torch.equal(labels['synergy'], synergy)


def test_splits_use_their_combinations(train: BimodalTrifeature) -> None:
    test = BimodalTrifeature('test', num_pairs=400, size=16, seed=3)
    combos = dict(zip(('train', 'test'), combination_split(), strict=True))
    for ds in (train, test):
        labels = ds.labels
        for view in (1, 2):
            used = set(
                zip(
                    labels['shape'].tolist(),
                    labels[f'texture{view}'].tolist(),
                    labels[f'colour{view}'].tolist(),
                    strict=True,
                )
            )
            assert used <= set(combos[ds.split])
    assert not torch.equal(train.image1, test.image1)


def test_pairs_share_shape_and_vary_otherwise(train: BimodalTrifeature) -> None:
    labels = train.labels
    # one shape label per pair; both images drawn from that shape's combinations
    assert set(labels['shape'].tolist()) == set(range(10))
    assert (labels['texture1'] != labels['texture2']).float().mean() > 0.7
    assert (labels['colour1'] != labels['colour2']).float().mean() > 0.7


def test_biased() -> None:
    ds = BimodalTrifeature(num_pairs=500, size=8, biased=True, seed=1)
    labels = ds.labels
    assert torch.equal(labels['colour2'], synergy_map()[labels['texture1']])
    assert (labels['synergy'] == 1).all()
    assert len(set(labels['texture1'].tolist())) == 10
    other = BimodalTrifeature(num_pairs=5, size=8, biased=True, synergy_seed=1)
    assert torch.equal(
        other.labels['colour2'], synergy_map(1)[other.labels['texture1']]
    )


def test_unbiased_synergy_rate() -> None:
    ds = BimodalTrifeature('test', num_pairs=5000, size=8, seed=2)
    rate = ds.labels['synergy'].double().mean()
    assert 0.08 < rate < 0.12, rate


def test_synergy_map_same_for_every_dataset() -> None:
    a = BimodalTrifeature(num_pairs=3, size=8, seed=0)
    b = BimodalTrifeature('test', num_pairs=50, size=8, seed=7, biased=True)
    assert torch.equal(a.synergy_map, b.synergy_map)
    assert torch.equal(a.synergy_map, synergy_map(0))


def test_deterministic(train: BimodalTrifeature) -> None:
    again = BimodalTrifeature('train', num_pairs=400, size=16, seed=3)
    assert torch.equal(train.image1, again.image1)
    assert torch.equal(train.image2, again.image2)
    for key, value in train.labels.items():
        assert torch.equal(value, again.labels[key])
    other = BimodalTrifeature('train', num_pairs=400, size=16, seed=4)
    assert not torch.equal(train.image1, other.image1)
    assert not torch.equal(train.labels['texture1'], other.labels['texture1'])


def test_transforms() -> None:
    def halve(sample: dict) -> dict:
        return {**sample, 'image1': sample['image1'] // 2}

    plain = BimodalTrifeature(num_pairs=2, size=8)
    ds = BimodalTrifeature(num_pairs=2, size=8, transforms=halve)
    assert torch.equal(ds[0]['image1'], plain[0]['image1'] // 2)


@pytest.mark.parametrize(
    ('kwargs', 'match'),
    [
        ({'split': 'val'}, "split must be 'train' or 'test'"),
        ({'num_pairs': 0}, 'num_pairs must be an integer >= 1'),
        ({'size': 4}, 'size must be >= 8'),
        ({'seed': -1}, 'seed must be an integer >= 0'),
        ({'split_seed': -1}, 'split_seed must be an integer >= 0'),
        ({'synergy_seed': 1.5}, 'synergy_seed must be an integer >= 0'),
    ],
)
def test_errors(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        BimodalTrifeature(**{'num_pairs': 2, 'size': 8, **kwargs})


def test_plot(train: BimodalTrifeature) -> None:
    fig = train.plot(train[0], suptitle='test')
    assert fig.get_suptitle() == f'test (synergy {int(train[0]["synergy"])})'
    titles = [ax.get_title() for ax in fig.axes]
    assert titles[0].startswith(f'image 1: {SHAPES[int(train[0]["shape"])]}')
    plt.close(fig)
    sample = {**train[1], 'image1': train[1]['image1'].float() / 255}
    fig = train.plot(sample, show_titles=False)
    plt.close(fig)


def test_modalities_registered() -> None:
    for name in ('trifeature1', 'trifeature2'):
        modality = get_modality(name)
        assert modality.bands == ('R', 'G', 'B')
        assert modality.rgb_bands == ('R', 'G', 'B')
        normalize = modality.normalization()
        assert isinstance(normalize, Scale) and normalize.divisor == 255
        assert modality.augmentation is trifeature_augmentation
        assert modality.standardization is None


def test_simclr_augmentation_contents() -> None:
    aug = simclr_augmentation(32)
    ops = list(aug.children())
    assert [type(op) for op in ops] == [
        K.RandomResizedCrop,
        K.ColorJitter,
        K.RandomGrayscale,
        K.RandomGaussianBlur,
        K.RandomHorizontalFlip,
    ]
    crop, jitter, gray, blur, flip = ops
    assert isinstance(crop, K.RandomResizedCrop)
    assert tuple(crop._param_generator.scale) == (0.2, 1.0)  # type: ignore[union-attr,arg-type]
    assert (jitter.brightness, jitter.contrast, jitter.saturation, jitter.hue) == (
        0.4,
        0.4,
        0.4,
        0.1,
    )
    assert jitter.p == 0.8 and gray.p == 0.2 and blur.p == 0.5 and flip.p == 0.5
    wider = next(simclr_augmentation(32, scale=(0.08, 1.0)).children())
    assert isinstance(wider, K.RandomResizedCrop)
    assert tuple(wider._param_generator.scale) == (0.08, 1.0)  # type: ignore[union-attr,arg-type]
    assert crop.flags['size'] == (32, 32)
    with pytest.raises(ValueError, match='in_channels=3'):
        simclr_augmentation(32, in_channels=4)


def test_trifeature_augmentation_contents() -> None:
    ops = list(trifeature_augmentation(64).children())
    assert [type(op) for op in ops] == [
        K.RandomResizedCrop,
        KeepBackground,
        K.RandomHorizontalFlip,
    ]
    crop, keep, flip = ops
    assert tuple(crop._param_generator.scale) == (0.2, 1.0)  # type: ignore[union-attr,arg-type]
    assert crop.flags['size'] == (64, 64)
    jitter, gray = keep.augmentation.children()  # type: ignore[union-attr]
    assert isinstance(jitter, K.ColorJitter) and jitter.p == 0.8
    assert isinstance(gray, K.RandomGrayscale) and gray.p == 0.2
    assert flip.p == 0.5
    with pytest.raises(ValueError, match='size'):
        trifeature_augmentation(0)
    with pytest.raises(ValueError, match='3 channels'):
        trifeature_augmentation(64, in_channels=4)


def test_keep_background_jitters_the_foreground_multiplicatively() -> None:
    """Brightness x1.5 (torchvision's formula: a factor, not an offset) on
    the foreground; the 8-bit grey background stays exactly."""
    grey = 128 / 255
    x = torch.full((2, 3, 8, 8), grey)
    x[:, :, 2:6, 2:6] = torch.tensor([0.2, 0.4, 0.6]).view(1, 3, 1, 1)
    brighter = K.ColorJitter(brightness=(1.5, 1.5), p=1.0)
    y = KeepBackground(brighter, (grey,) * 3)(x)
    torch.testing.assert_close(y[:, :, 2:6, 2:6], x[:, :, 2:6, 2:6] * 1.5)
    assert torch.equal(y[:, :, :2], x[:, :, :2])  # background untouched


def test_trifeature_augmentation_keeps_background_and_moves_colour() -> None:
    """Real pairs: the grey background stays in every view, the shape stays
    the pixels that differ from it, and its colour moves between views."""
    torch.manual_seed(0)
    data = BimodalTrifeature('train', num_pairs=16, size=64, seed=0)
    x = torch.stack([data[i]['image1'] for i in range(16)]).float() / 255
    background = 128 / 255  # the 8-bit grey of 0.5
    assert (x[..., 0, 0] == background).all()
    augment = trifeature_augmentation(64)
    y1, y2 = augment(x), augment(x)
    assert y1.shape == (16, 3, 64, 64)
    for y in (y1, y2):
        corners = torch.cat(
            [y[..., :2, :2].flatten(-2), y[..., -2:, -2:].flatten(-2)], -1
        )
        grey = (corners - background).abs().amax(dim=(1, 2)) < 1e-6
        assert grey.float().mean() > 0.5  # most crops leave a corner grey
        shape = (y - background).abs().amax(1) > 2 / 255
        assert shape.float().mean(dim=(1, 2)).gt(0.02).float().mean() > 0.8

    # mean foreground colour differs between the two views of most images
    def mean_colour(y: torch.Tensor) -> torch.Tensor:
        fg = ((y - background).abs().amax(1, keepdim=True) > 2 / 255).float()
        return (y * fg).sum(dim=(2, 3)) / fg.sum(dim=(2, 3)).clamp(min=1)

    moved = (mean_colour(y1) - mean_colour(y2)).abs().amax(1) > 0.05
    assert moved.float().mean() > 0.5


def test_simclr_augmentation_output() -> None:
    torch.manual_seed(0)
    x = torch.rand(8, 3, 40, 40)
    y = simclr_augmentation(32)(x)
    assert y.shape == (8, 3, 32, 32)
    assert y.min() >= 0 and y.max() <= 1
    assert not torch.equal(y[0], y[1])


@pytest.mark.parametrize(
    ('name', 'reference'),
    [
        ('brightness', TF.adjust_brightness),  # multiplicative, as torchvision
        ('contrast', TF.adjust_contrast),  # blend with the grayscale mean
        ('saturation', TF.adjust_saturation),  # blend with the grayscale image
    ],
)
def test_kornia_colour_jitter_is_torchvision(name: str, reference: object) -> None:
    torch.manual_seed(0)
    x = torch.rand(2, 3, 16, 16)
    factors: dict[str, Any] = {name: (1.3, 1.3)}
    jitter = K.ColorJitter(**factors, p=1.0)
    expected = reference(x, 1.3)  # type: ignore[operator]
    # the grayscale weights differ in the 4th digit (0.299 vs 0.2989)
    torch.testing.assert_close(jitter(x), expected, atol=1e-4, rtol=0)
    # Kornia's other brightness adds instead
    if name == 'brightness':
        jiggle = K.ColorJiggle(brightness=(1.3, 1.3), p=1.0)
        assert not torch.allclose(jiggle(x), expected, atol=1e-2)
