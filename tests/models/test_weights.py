from pathlib import Path

import pytest
import timm
import torch
import torchgeo.models
from torch import Tensor, nn
from torchgeo.models import api, get_model_weights, get_weight
from torchgeo.tasks import Classification, SemanticSegmentation

import torchgeo_decur  # noqa: F401  (registers the weights)
from torchgeo_decur.models import (
    DeCURTransforms,
    DeCURWeightsEnum,
    ResNet50_Weights,
    ViTSmall16_Weights,
    create_encoder,
    load_decur_state_dict,
    load_decur_state_dicts,
    modality_transforms,
)
from torchgeo_decur.models.weights import (
    _adapt_input_channels,
    split_joint_state_dict,
)

JOINT = (ResNet50_Weights.DECUR_S1S2, ResNet50_Weights.DECUR_RGB_DEM)


@pytest.fixture
def hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty torch hub cache that must never download."""

    def no_download(url: str, *args: object, **kwargs: object) -> None:
        raise AssertionError(f'tests must not download {url}')

    monkeypatch.setattr(torch.hub, '_hub_dir', str(tmp_path / 'hub'))
    monkeypatch.setattr(torch.hub, 'download_url_to_file', no_download)
    (tmp_path / 'hub' / 'checkpoints').mkdir(parents=True)
    return tmp_path / 'hub' / 'checkpoints'


def randomise_bn(model: nn.Module) -> nn.Module:
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.9, 1.1)
    return model.eval()


def authors_file(
    path: Path, backbones: list[nn.Module], wrap: bool = True, fc: bool = False
) -> None:
    """Save a joint checkpoint in the layout of the DeCUR authors' files."""
    model: dict[str, Tensor] = {}
    for i, backbone in enumerate(backbones, start=1):
        model.update(
            {f'module.backbone_{i}.{k}': v for k, v in backbone.state_dict().items()}
        )
        if fc:  # torchvision's classifier, if it was not replaced
            model[f'module.backbone_{i}.fc.weight'] = torch.randn(1000, 8)
            model[f'module.backbone_{i}.fc.bias'] = torch.randn(1000)
    # projectors (both spellings) and the loss's batch norm: to be dropped
    model['module.projector1.0.weight'] = torch.randn(16, 8)
    model['module.projector_2.0.weight'] = torch.randn(16, 8)
    model['module.bn.running_mean'] = torch.zeros(16)
    model['module.bn.num_batches_tracked'] = torch.tensor(7)
    torch.save({'epoch': 100, 'model': model} if wrap else model, path)


def features(model: nn.Module, x: Tensor) -> Tensor:
    model.eval()
    with torch.no_grad():
        return model(x)


# --------------------------------------------------------------------------- #
# Registry and enum structure
# --------------------------------------------------------------------------- #


def test_registry() -> None:
    assert torchgeo.models.get_weight is api.get_weight
    assert get_weight('ResNet50_Weights.DECUR_S1S2') is ResNet50_Weights.DECUR_S1S2
    assert (
        get_weight('ViTSmall16_Weights.DECUR_S1S2_S2C')
        is ViTSmall16_Weights.DECUR_S1S2_S2C
    )
    # TorchGeo's own weights still resolve to TorchGeo's enum
    theirs = get_weight('ResNet50_Weights.SENTINEL2_ALL_MOCO')
    assert type(theirs) is torchgeo.models.ResNet50_Weights
    assert get_model_weights('decur_resnet50') is ResNet50_Weights
    assert get_model_weights('decur_vit_small_patch16_224') is ViTSmall16_Weights
    assert get_model_weights('resnet50') is torchgeo.models.ResNet50_Weights


def test_members_are_distinct() -> None:
    # Enum aliases members with equal values: every name must be its own member
    for enum in (ResNet50_Weights, ViTSmall16_Weights):
        assert list(enum.__members__) == [m.name for m in enum]
    assert len(ResNet50_Weights) == 6
    assert len(ViTSmall16_Weights) == 3


@pytest.mark.parametrize('weights', [*ResNet50_Weights, *ViTSmall16_Weights])
def test_meta(weights: DeCURWeightsEnum) -> None:
    meta = weights.meta
    assert weights.url.startswith(
        'https://huggingface.co/wangyi111/DeCUR/resolve/main/'
    )
    assert weights.url.endswith('_joint_decur_ep100.pth')
    assert meta['ssl_method'] == 'decur'
    assert meta['publication'] == 'https://arxiv.org/abs/2309.05300'
    assert meta['repo'] == 'https://github.com/zhu-xlab/DeCUR'
    assert meta['model'] in ('resnet50', 'vit_small_patch16_224')
    for spec in meta['modalities'].values():
        assert spec['in_chans'] == len(spec['bands'])
    if weights.is_joint:
        assert 'in_chans' not in meta
        assert isinstance(weights.transforms, DeCURTransforms)
    else:
        assert meta['in_chans'] == meta['modalities'][meta['modality']]['in_chans']
        assert meta['bands'] == meta['modalities'][meta['modality']]['bands']


def test_meta_values() -> None:
    s1s2 = ResNet50_Weights.DECUR_S1S2
    assert s1s2.modalities == ('s1', 's2c')
    assert s1s2.meta['dataset'] == 'SSL4EO-S12'
    assert s1s2.meta['modalities']['s1'] == {'bands': ['VV', 'VH'], 'in_chans': 2}
    assert s1s2.meta['modalities']['s2c']['in_chans'] == 13
    rgb_dem = ResNet50_Weights.DECUR_RGB_DEM
    assert rgb_dem.modalities == ('rgb', 'dem')
    assert rgb_dem.meta['dataset'] == 'GeoNRW'
    assert rgb_dem.meta['modalities']['dem']['in_chans'] == 1
    assert ResNet50_Weights.DECUR_RGB_DEM_RGB.meta['in_chans'] == 3
    assert ViTSmall16_Weights.DECUR_S1S2_S1.meta['model'] == 'vit_small_patch16_224'


def test_modality() -> None:
    s1s2 = ResNet50_Weights.DECUR_S1S2
    assert s1s2.modality('s1') is ResNet50_Weights.DECUR_S1S2_S1
    assert s1s2.modality('s2c') is ResNet50_Weights.DECUR_S1S2_S2C
    assert ResNet50_Weights.DECUR_RGB_DEM.modality('dem') is (
        ResNet50_Weights.DECUR_RGB_DEM_DEM
    )
    assert ViTSmall16_Weights.DECUR_S1S2.modality('s1') is (
        ViTSmall16_Weights.DECUR_S1S2_S1
    )
    one = ResNet50_Weights.DECUR_S1S2_S1
    assert one.modality('s1') is one
    assert not one.is_joint
    assert s1s2.is_joint
    with pytest.raises(ValueError, match="no modality 'dem'; valid: s1, s2c"):
        s1s2.modality('dem')
    with pytest.raises(ValueError, match="no modality 's2c'; valid: s1"):
        one.modality('s2c')


def test_transforms() -> None:
    s1 = torch.randn(2, 64, 64) * 5 - 15
    s2 = torch.rand(13, 64, 64) * 20000
    joint = ResNet50_Weights.DECUR_S1S2.transforms
    out = joint({'s1': s1, 's2c': s2, 'label': 3})
    assert out['label'] == 3
    assert out['s1'].shape == (2, 224, 224)
    assert out['s2c'].shape == (13, 224, 224)
    assert 0 <= out['s2c'].min() and out['s2c'].max() <= 255
    assert out['s2c'].max() == 255  # x / 10000 * 255 clipped
    t1, t2 = joint((s1, s2))
    torch.testing.assert_close(t1, out['s1'])
    torch.testing.assert_close(t2, out['s2c'])
    single = ResNet50_Weights.DECUR_S1S2_S1.transforms
    torch.testing.assert_close(single(s1), out['s1'])
    batch = torch.rand(2, 3, 300, 300) * 255
    rgb = ResNet50_Weights.DECUR_RGB_DEM_RGB.transforms(batch)
    assert rgb.shape == (2, 3, 224, 224)
    assert rgb.max() <= 1
    dem = ResNet50_Weights.DECUR_RGB_DEM_DEM.transforms(torch.rand(1, 256, 256) * 500)
    assert abs(dem.mean()) < 1e-3
    with pytest.raises(ValueError, match='expected 2 inputs'):
        joint((s1,))
    with pytest.raises(ValueError, match="no transforms for modality 'sar'"):
        modality_transforms('sar')


# --------------------------------------------------------------------------- #
# The authors' files, through the enum and the hub cache
# --------------------------------------------------------------------------- #


def test_resnet50_s1s2_from_hub_cache(hub: Path) -> None:
    torch.manual_seed(0)
    sar = randomise_bn(timm.create_model('resnet50', in_chans=2, num_classes=0))
    optical = randomise_bn(timm.create_model('resnet50', in_chans=13, num_classes=0))
    authors_file(hub / 'rn50_ssl4eo-s12_joint_decur_ep100.pth', [sar, optical])
    x = torch.randn(2, 2, 64, 64)

    # joint entry: both encoders, keyed by modality
    state_dicts = ResNet50_Weights.DECUR_S1S2.get_state_dict(weights_only=True)
    assert list(state_dicts) == ['s1', 's2c']
    assert state_dicts['s2c'].keys() == optical.state_dict().keys()

    # joint entry + modality, by name, strict timm load
    encoder = create_encoder(
        'resnet50', 2, weights='ResNet50_Weights.DECUR_S1S2', modality='s1'
    )
    torch.testing.assert_close(features(encoder, x), features(sar, x))
    encoder = create_encoder('resnet50', 13, weights=ResNet50_Weights.DECUR_S1S2_S2C)
    y = torch.randn(1, 13, 64, 64)
    torch.testing.assert_close(features(encoder, y), features(optical, y))

    # TorchGeo's own task trains one step on a per-modality entry, from YAML's
    # string form of the weights (as LightningCLI passes it)
    task = Classification(
        model='resnet50',
        weights='ResNet50_Weights.DECUR_S1S2_S1',
        in_channels=2,
        num_classes=3,
    )
    torch.testing.assert_close(task.model.conv1.weight, sar.conv1.weight)
    torch.testing.assert_close(
        task.model.layer4[2].bn3.weight, sar.layer4[2].bn3.weight
    )
    before = task.model.conv1.weight.detach().clone()
    # one step of TorchGeo's own training_step and optimiser (without a Trainer,
    # whose fit loop costs ~10 s on a shared CPU; self.log() only warns)
    optimizer = task.configure_optimizers()['optimizer']
    batch = {'image': torch.randn(4, 2, 64, 64), 'label': torch.tensor([0, 1, 2, 0])}
    task.train()
    with pytest.warns(UserWarning, match='self.log'):
        loss = task.training_step(batch, 0)
    assert torch.isfinite(loss)
    loss.backward()
    optimizer.step()
    assert not torch.equal(task.model.conv1.weight, before)

    # TorchGeo's segmentation task: smp's ResNet encoders take the same keys
    seg = SemanticSegmentation(
        model='unet',
        backbone='resnet50',
        weights='ResNet50_Weights.DECUR_S1S2_S1',
        in_channels=2,
        num_classes=3,
    )
    torch.testing.assert_close(seg.model.encoder.conv1.weight, sar.conv1.weight)
    assert seg(torch.randn(1, 2, 64, 64)).shape == (1, 3, 64, 64)


def test_vit_small_flat_file(hub: Path) -> None:
    torch.manual_seed(0)
    vits = [
        timm.create_model('vit_small_patch16_224', in_chans=c, num_classes=0).eval()
        for c in (2, 13)
    ]
    # the ViT joint file of the authors is the bare state dict
    authors_file(hub / 'vits16_ssl4eo-s12_joint_decur_ep100.pth', vits, wrap=False)
    encoder = create_encoder(
        'vit_small_patch16_224', 13, weights=ViTSmall16_Weights.DECUR_S1S2_S2C
    )
    x = torch.randn(1, 13, 224, 224)
    torch.testing.assert_close(features(encoder, x), features(vits[1], x))
    state_dict = load_decur_state_dict('ViTSmall16_Weights.DECUR_S1S2', 's1')
    assert state_dict['patch_embed.proj.weight'].shape == (384, 2, 16, 16)


def test_rgb_dem_per_modality(hub: Path) -> None:
    torch.manual_seed(0)
    rgb = timm.create_model('resnet18', in_chans=3, num_classes=0)
    dem = timm.create_model('resnet18', in_chans=1, num_classes=0)
    # (resnet18 stands in for resnet50: the conversion does not look at depth)
    authors_file(hub / 'rn50_geonrw_joint_decur_ep100.pth', [rgb, dem], fc=True)
    state_dicts = load_decur_state_dicts(ResNet50_Weights.DECUR_RGB_DEM)
    assert list(state_dicts) == ['rgb', 'dem']
    assert 'fc.weight' not in state_dicts['rgb']
    assert state_dicts['dem'].keys() == dem.state_dict().keys()
    one = load_decur_state_dicts('ResNet50_Weights.DECUR_RGB_DEM_DEM')
    assert list(one) == ['dem']
    torch.testing.assert_close(one['dem']['conv1.weight'], dem.conv1.weight)


def test_split_joint_state_dict() -> None:
    joint = {
        'module.backbone_1.conv1.weight': torch.ones(4, 2, 3, 3),
        'module.backbone_1.head.weight': torch.ones(10, 4),
        'module.backbone_2.conv1.weight': torch.ones(4, 13, 3, 3),
        'module.projector1.0.weight': torch.ones(8, 4),
        'module.bn.running_var': torch.ones(8),
    }
    out = split_joint_state_dict({'epoch': 1, 'model': joint}, ['a', 'b'])
    assert {k: list(v) for k, v in out.items()} == {
        'a': ['conv1.weight'],
        'b': ['conv1.weight'],
    }
    with pytest.warns(UserWarning, match='deformable-attention'):
        split_joint_state_dict(
            {**joint, 'module.da1_l3.proj_q.weight': torch.ones(1)}, ['a', 'b']
        )
    with pytest.raises(ValueError, match=r"missing backbone keys 'module\.backbone_2"):
        split_joint_state_dict(
            {k: v for k, v in joint.items() if 'backbone_2' not in k}, ['a', 'b']
        )
    with pytest.raises(ValueError, match='not a DeCUR checkpoint'):
        split_joint_state_dict({'conv1.weight': torch.ones(1)}, ['a', 'b'], 'x.pth')


def test_adapt_input_channels() -> None:
    weight = torch.randn(4, 3, 7, 7)
    state_dict = {'conv1.weight': weight}
    with pytest.warns(UserWarning, match='summed'):
        _adapt_input_channels(state_dict, 1, 'dem')
    # a DEM repeated on 3 channels gives the same output with the folded kernel
    x = torch.randn(1, 1, 16, 16)
    torch.testing.assert_close(
        nn.functional.conv2d(x, state_dict['conv1.weight']),
        nn.functional.conv2d(x.expand(1, 3, 16, 16), weight),
    )
    with pytest.raises(ValueError, match='3 input channels, but the weights declare'):
        _adapt_input_channels({'conv1.weight': weight}, 13, 's2c')


# --------------------------------------------------------------------------- #
# Errors
# --------------------------------------------------------------------------- #


def test_wrong_in_channels(hub: Path) -> None:
    # checked from the metadata, before any download
    with pytest.raises(ValueError, match=r'DECUR_S1S2_S1 .*in_chans=2.*in_channels=3'):
        create_encoder(
            'resnet18', 3, weights=ResNet50_Weights.DECUR_S1S2, modality='s1'
        )
    with pytest.raises(ValueError, match=r'in_chans=13, but in_channels=12'):
        create_encoder('resnet18', 12, weights='ResNet50_Weights.DECUR_S1S2_S2C')


def test_modality_errors(hub: Path) -> None:
    with pytest.raises(ValueError, match='valid: s1, s2c'):
        create_encoder('resnet18', 2, weights=ResNet50_Weights.DECUR_S1S2, modality='x')
    with pytest.raises(ValueError, match=r'several encoders \(s1, s2c\)'):
        create_encoder('resnet18', 2, weights=ResNet50_Weights.DECUR_S1S2)
    with pytest.raises(ValueError, match='only valid for DeCUR weights'):
        create_encoder(
            'resnet18',
            13,
            weights='ResNet50_Weights.SENTINEL2_ALL_MOCO',
            modality='s2c',
        )
    with pytest.raises(ValueError, match='needs DeCUR weights'):
        create_encoder('resnet18', 2, modality='s1')
    with pytest.raises(FileNotFoundError, match='neither an existing file'):
        create_encoder('resnet18', 2, weights='ResNet50_Weights.NOPE')
    with pytest.raises(FileNotFoundError, match='neither an existing file'):
        load_decur_state_dicts('nope.pth')


def test_missing_keys_from_enum(hub: Path) -> None:
    rgb = timm.create_model('resnet18', in_chans=3, num_classes=0)
    dem = timm.create_model('resnet18', in_chans=1, num_classes=0)
    authors_file(hub / 'rn50_geonrw_joint_decur_ep100.pth', [rgb, dem])
    # resnet18 weights do not fit a resnet34: strict loading says which keys
    with pytest.raises(ValueError, match=r'missing keys layer1\.2\.conv1\.weight'):
        create_encoder('resnet34', 1, weights=ResNet50_Weights.DECUR_RGB_DEM_DEM)


def test_state_dict_mismatches() -> None:
    from torchgeo_decur.models.weights import state_dict_mismatches

    expected = {f'w{i}': torch.zeros(2) for i in range(8)}
    assert state_dict_mismatches(expected, dict(expected)) == []
    given = {k: v for k, v in expected.items() if k not in ('w0', 'w1')}
    given['w2'] = torch.zeros(3)
    given['extra'] = torch.zeros(1)
    problems = state_dict_mismatches(expected, given)
    assert problems == [
        'missing keys w0, w1',
        'unexpected keys extra',
        'shape mismatches w2 (3,) != (2,)',
    ]
    many = state_dict_mismatches(expected, {})
    assert many == ['missing keys w0, w1, w2, w3, w4, ... (3 more)']
