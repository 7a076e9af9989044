from types import MappingProxyType

import kornia.augmentation as K
import pytest
import torch
from torch import nn
from torchgeo.transforms import RandomGrayscale

from torchgeo_decur.modalities import (
    S2_L1C_BANDS,
    Modality,
    get_modality,
    in_channels_for,
    modalities,
    modality_record,
    register_modality,
)
from torchgeo_decur.transforms import (
    RandomBrightnessContrast,
    Scale,
    SigmaStretch,
    Standardize,
    dem_augmentation,
    normalize_dem,
    normalize_s1,
)


def ops(module: nn.Module) -> set[type[nn.Module]]:
    return {type(m) for m in module.modules()}


def thermal(**kwargs: object) -> Modality:
    defaults: dict[str, object] = {
        'name': 'test_thermal',
        'bands': ('LWIR1', 'LWIR2'),
        'normalization': lambda: Scale(330.0, clip=True),
        'augmentation': dem_augmentation,
        'description': 'Kelvin / 330',
        'raw': 'brightness temperature in Kelvin',
    }
    defaults.update(kwargs)
    return Modality(**defaults)  # type: ignore[arg-type]


@pytest.fixture
def registered() -> Modality:
    modality = register_modality(thermal())
    yield modality
    from torchgeo_decur import modalities as module

    module._REGISTRY.pop(modality.name, None)


def test_builtin_modalities() -> None:
    assert {'s1', 's2c', 's2a', 'rgb', 'dem', 'rgb_indoor', 'hha'} <= set(modalities())
    assert isinstance(modalities(), MappingProxyType)
    assert get_modality('s2c').bands == S2_L1C_BANDS
    assert get_modality('s2a').in_channels == 12
    assert get_modality('s2c').rgb_indices == (3, 2, 1)
    assert get_modality('s1').rgb_indices == (0, 1)
    assert get_modality('dem').rgb_indices == (0,)
    assert get_modality('rgb').bands == ('R', 'G', 'B')


def test_builtin_normalization_on_batches_of_views() -> None:
    # [B, V, C, H, W] batches, as the datamodules preprocess them
    s1 = torch.randn(3, 2, 2, 16, 16) * 5 - 15
    torch.testing.assert_close(get_modality('s1').normalizer()(s1), normalize_s1(s1))
    s2 = torch.rand(3, 2, 13, 16, 16) * 12000
    torch.testing.assert_close(
        get_modality('s2c').normalizer()(s2), (s2 / 10000).clamp(0, 1)
    )
    dem = torch.rand(3, 1, 16, 16) * 300
    torch.testing.assert_close(
        get_modality('dem').normalizer()(dem), normalize_dem(dem)
    )
    rgb = torch.rand(2, 3, 8, 8) * 255
    torch.testing.assert_close(get_modality('rgb').normalizer()(rgb), rgb / 255)
    assert isinstance(get_modality('s1').normalizer(), SigmaStretch)
    # a new module each time
    assert get_modality('s1').normalizer() is not get_modality('s1').normalizer()


@pytest.mark.parametrize(
    'name', ['s1', 's2c', 's2a', 'rgb', 'dem', 'rgb_indoor', 'hha']
)
def test_builtin_augmentation(name: str) -> None:
    modality = get_modality(name)
    aug = modality.augmenter(16)
    x = torch.rand(2, modality.in_channels, 24, 24)
    assert aug(x).shape == (2, modality.in_channels, 16, 16)
    colour = RandomBrightnessContrast in ops(aug)
    assert colour == (name in ('s2c', 's2a', 'rgb', 'rgb_indoor'))
    indoor = name in ('rgb_indoor', 'hha')
    assert (K.RandomVerticalFlip in ops(aug)) == (not indoor)
    if name in ('s2c', 's2a'):
        gray = next(m for m in aug.modules() if isinstance(m, RandomGrayscale))
        assert gray.flags['weights'].shape == (modality.in_channels,)


def test_standardization_as_the_sun_rgbd_weights_saw_it() -> None:
    """ImageNet's constants applied to OpenCV's reversed channel order.

    The authors read SUN RGB-D's RGB and HHA images with cv2.imread (B, G, R
    and angle, height, disparity), divided by 255 and standardised with
    ImageNet's mean and std by position; in the modalities' own order the
    constants are therefore reversed.
    """
    raw = torch.rand(2, 3, 8, 8) * 255
    mean = torch.tensor([0.485, 0.456, 0.406])[:, None, None]
    std = torch.tensor([0.229, 0.224, 0.225])[:, None, None]
    for name in ('rgb_indoor', 'hha'):
        modality = get_modality(name)
        as_read = raw.flip(1)  # what OpenCV gives
        authors = (as_read / 255 - mean) / std
        ours = modality.normalizer()(raw)
        torch.testing.assert_close(ours, authors.flip(1))
        # pretraining: [0, 1] for the augmentation, standardised after it
        torch.testing.assert_close(
            modality.normalizer(standardize=False)(raw), raw / 255
        )
        aug = modality.augmenter(8)
        assert isinstance(aug[-1], Standardize)
        assert 'ImageNet' in modality.description
    assert get_modality('hha').bands == ('disparity', 'height', 'angle')
    assert get_modality('rgb').standardization is None
    with pytest.raises(ValueError, match='one mean and one std per band'):
        Modality(
            'bad',
            ('a', 'b'),
            lambda: Scale(1.0),
            dem_augmentation,
            standardization=((0.5,), (0.2,)),
        )


def test_register_and_get(registered: Modality) -> None:
    assert get_modality('test_thermal') is registered
    assert modalities()['test_thermal'] is registered
    assert registered.in_channels == 2
    # registering the same object again is harmless; another one is an error
    assert register_modality(registered) is registered
    with pytest.raises(ValueError, match="different modality 'test_thermal'"):
        register_modality(thermal(bands=('LWIR',)))
    other = register_modality(thermal(bands=('LWIR',)), replace=True)
    assert get_modality('test_thermal') is other
    with pytest.raises(TypeError, match='takes a Modality'):
        register_modality('thermal')  # type: ignore[arg-type]


def test_get_unknown_names_registered() -> None:
    with pytest.raises(
        ValueError, match=r"unknown modality 'lidar'.*s1.*register_modality"
    ):
        get_modality('lidar')


def test_modality_validation() -> None:
    with pytest.raises(ValueError, match='non-empty name'):
        thermal(name='')
    with pytest.raises(ValueError, match='at least one band'):
        thermal(bands=())
    with pytest.raises(ValueError, match=r"rgb_bands \['R'\] are not among"):
        thermal(rgb_bands=('R',))
    modality = thermal(bands=['A', 'B'], rgb_bands=['B', 'A', 'A'])
    assert modality.bands == ('A', 'B')
    assert modality.rgb_indices == (1, 0, 0)


def test_eval_transforms(registered: Modality) -> None:
    t = registered.eval_transforms(32)
    out = t(torch.full((2, 50, 50), 300.0))
    assert out.shape == (2, 32, 32)
    torch.testing.assert_close(out, torch.full_like(out, 300 / 330))
    # integer input is converted
    assert t(torch.full((2, 40, 40), 33, dtype=torch.int16)).dtype == torch.float32


def test_eval_transforms_warn_on_raw_check() -> None:
    modality = thermal(raw_check=lambda x: 'not Kelvin' if x.max() < 100 else None)
    with pytest.warns(UserWarning, match="not Kelvin.*'test_thermal': Kelvin / 330"):
        modality.eval_transforms(8)(torch.rand(2, 16, 16))


def test_in_channels_for(registered: Modality) -> None:
    assert in_channels_for('test_thermal') == 2
    assert in_channels_for('test_thermal', 2) == 2
    with pytest.raises(ValueError, match="'not_registered' is not registered"):
        in_channels_for('not_registered')
    # a typo with in_channels given trained and exported encoders without bands
    with pytest.raises(ValueError, match="'not_registered' is not registered"):
        in_channels_for('not_registered', 5)
    typo = r"'s2' is not registered \(did you mean 's2c'"
    with pytest.raises(ValueError, match=typo):
        in_channels_for('s2', 13)
    with pytest.raises(
        ValueError, match=r"'s1' has 2 bands \(VV, VH\), but in_channels gives 3"
    ):
        in_channels_for('s1', 3)
    with pytest.raises(ValueError, match='in_channels must be >= 1'):
        in_channels_for('s1', 0)


def test_modality_record(registered: Modality) -> None:
    assert modality_record('test_thermal') == {
        'name': 'test_thermal',
        'bands': ['LWIR1', 'LWIR2'],
        'normalisation': 'Kelvin / 330',
    }
    assert modality_record('unknown') == {
        'name': 'unknown',
        'bands': None,
        'normalisation': None,
    }
