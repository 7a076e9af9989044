import warnings
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
    MiTB2_Weights,
    MiTB5_Weights,
    ResNet50_Weights,
    ViTSmall16_Weights,
    create_encoder,
    load_decur_state_dict,
    load_decur_state_dicts,
    modality_transforms,
)
from torchgeo_decur.models.deformable import DeformableResNet, add_deformable_attention
from torchgeo_decur.models.heads import create_encoders
from torchgeo_decur.models.weights import published_entry, read_decur_checkpoint
from torchgeo_decur.models.weights.table import GEONRW_BANDS, RELEASES, find_release

JOINT = (ResNet50_Weights.DECUR_S1S2, ResNet50_Weights.DECUR_RGB_DEM)
ENUMS = (ResNet50_Weights, ViTSmall16_Weights, MiTB2_Weights, MiTB5_Weights)
ALL = [member for enum in ENUMS for member in enum]


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


def backbone_file(path: Path, backbone: nn.Module) -> None:
    """Save a backbone-only file as the authors' convert_backbone.py does."""
    torch.save(backbone.state_dict(), path)


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
    assert get_model_weights('decur_mit_b2') is MiTB2_Weights
    assert (
        get_weight('MiTB5_Weights.DECUR_RGB_HHA_HHA') is MiTB5_Weights.DECUR_RGB_HHA_HHA
    )
    assert get_weight('ResNet50_Weights.DECUR_S1S2_RDA_S1').meta['deformable_attention']
    assert get_model_weights('resnet50') is torchgeo.models.ResNet50_Weights


def test_enums_are_the_table() -> None:
    """Every release of the table is an enum's joint member plus one member per
    modality, reading the release's files; nothing else is a member."""
    expected = {}
    for release in RELEASES:
        expected[f'{release.enum}.{release.member}'] = release.joint_file
        for m in release.modalities:
            file = release.backbone_files.get(m, release.joint_file)
            expected[f'{release.enum}.{release.member}_{m.upper()}'] = file
    found = {str(member): member.meta['file'] for member in ALL}
    assert found == expected
    for release in RELEASES:
        joint = get_weight(f'{release.enum}.{release.member}')
        assert joint.modalities == release.modalities
        assert joint.meta['model'] == release.model
        assert find_release(joint.url) == (release, None)
        for m, file in release.backbone_files.items():
            assert find_release(file) == (release, m)
            assert published_entry(file) is joint.modality(m)
    assert find_release('my_encoder.pth') is None
    assert published_entry('my_encoder.pth') is None
    # the joint files' names in the authors' 2023 README
    s1s2, geonrw = (
        find_release('rn50_ssl4eo-s12_s1_s2c_decur_ep100.pth'),
        find_release(
            'https://huggingface.co/wangyi111/DeCUR/resolve/main/rn50_geonrw_rgb_dem_decur_ep100.pth'
        ),
    )
    assert s1s2 is not None and s1s2[0].member == 'DECUR_S1S2' and s1s2[1] is None
    assert geonrw is not None and geonrw[0].file_bands == GEONRW_BANDS
    assert find_release('rn50_rda_geonrw_rgb_dem_decur_ep100.pth') is None


def test_members_are_distinct() -> None:
    # Enum aliases members with equal values: every name must be its own member
    for enum in ENUMS:
        assert list(enum.__members__) == [m.name for m in enum]
    assert len(ResNet50_Weights) == 12
    assert len(ViTSmall16_Weights) == 6
    assert len(MiTB2_Weights) == len(MiTB5_Weights) == 3


@pytest.mark.parametrize('weights', ALL, ids=str)
def test_meta(weights: DeCURWeightsEnum) -> None:
    meta = weights.meta
    assert weights.url == (
        'https://huggingface.co/wangyi111/DeCUR/resolve/main/' + meta['file']
    )
    epochs = 200 if meta['dataset'] == 'SUN RGB-D' else 100
    assert meta['file'].endswith(f'_decur_ep{epochs}.pth')
    assert meta['ssl_method'] == 'decur'
    assert meta['publication'] == 'https://arxiv.org/abs/2309.05300'
    assert meta['repo'] == 'https://github.com/zhu-xlab/DeCUR'
    assert meta['model'] in ('resnet50', 'vit_small_patch16_224', 'mit_b2', 'mit_b5')
    assert meta.get('deformable_attention', False) == ('_rda_' in meta['file'])
    for spec in meta['modalities'].values():
        assert spec['in_chans'] == len(spec['bands'])
        assert spec['raw'] and spec['preprocessing']  # what transforms does
    if weights.is_joint:
        assert 'in_chans' not in meta
        assert isinstance(weights.transforms, DeCURTransforms)
        assert '_joint_' in meta['file'] or meta['file'].endswith(
            '_rgb_hha_decur_ep200.pth'
        )
    else:
        spec = meta['modalities'][meta['modality']]
        assert meta['in_chans'] == spec['in_chans']
        assert meta['bands'] == spec['bands']
        assert meta['preprocessing'] == spec['preprocessing']
        assert type(weights)[meta['joint']].is_joint


def test_meta_values() -> None:
    s1s2 = ResNet50_Weights.DECUR_S1S2
    assert s1s2.modalities == ('s1', 's2c')
    assert s1s2.meta['dataset'] == 'SSL4EO-S12'
    s1 = s1s2.meta['modalities']['s1']
    assert (s1['bands'], s1['in_chans']) == (['VV', 'VH'], 2)
    assert s1['raw'] == 'Sentinel-1 GRD backscatter in dB'
    assert '1st and 99th percentiles' in s1['preprocessing']
    assert s1s2.meta['modalities']['s2c']['preprocessing'] == (
        'digital numbers: clip(x / 10000, 0, 1)'
    )
    assert s1s2.meta['modalities']['s2c']['in_chans'] == 13
    rgb_dem = ResNet50_Weights.DECUR_RGB_DEM
    assert rgb_dem.modalities == ('rgb', 'dem')
    assert rgb_dem.meta['dataset'] == 'GeoNRW'
    assert rgb_dem.meta['modalities']['dem']['in_chans'] == 1
    assert ResNet50_Weights.DECUR_RGB_DEM_RGB.meta['in_chans'] == 3
    assert ViTSmall16_Weights.DECUR_S1S2_S1.meta['model'] == 'vit_small_patch16_224'
    # the authors' GeoNRW files store B, G, R and a DEM on three channels; the
    # entries serve R, G, B and one DEM channel
    rgb = ResNet50_Weights.DECUR_RGB_DEM_RGB.meta
    assert rgb['bands'] == ['R', 'G', 'B'] and rgb['file_bands'] == ['B', 'G', 'R']
    assert rgb_dem.meta['modalities']['dem']['file_bands'] == ['DEM'] * 3
    assert 'file_bands' not in s1s2.meta['modalities']['s1']
    # per-modality entries serve the backbone-only files where published
    assert ResNet50_Weights.DECUR_S1S2_S1.meta['file'] == (
        'rn50_ssl4eo-s12_sar_decur_ep100.pth'
    )
    assert ResNet50_Weights.DECUR_RGB_DEM_DEM.meta['file'] == (
        'rn50_geonrw_dem_decur_ep100.pth'
    )
    # every file of the authors' README (24), the ViT GeoNRW backbones included
    assert ViTSmall16_Weights.DECUR_RGB_DEM_RGB.meta['file'] == (
        'vits16_geonrw_rgb_decur_ep100.pth'
    )
    assert len({member.meta['file'] for member in ALL}) == 24


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
    torch.manual_seed(0)
    s1 = torch.randn(2, 64, 64) * 5 - 15  # dB
    s2 = torch.rand(13, 64, 64) * 20000  # digital numbers
    joint = ResNet50_Weights.DECUR_S1S2.transforms
    out = joint({'s1': s1, 's2c': s2, 'label': 3})
    assert out['label'] == 3
    assert out['s1'].shape == (2, 224, 224)
    assert out['s2c'].shape == (13, 224, 224)
    # S2 as reflectance clip(x / 10000, 0, 1), as the weights saw it
    assert 0 <= out['s2c'].min() and out['s2c'].max() <= 1
    assert out['s2c'].max() == 1
    assert abs(out['s2c'].mean().item() - 0.75) < 0.02  # U(0, 2) clipped at 1
    # S1 stretched to [0, 1] around 0.5 for values near the mean
    assert 0 <= out['s1'].min() and out['s1'].max() <= 1
    assert 0.4 < out['s1'].mean() < 0.75
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
    assert dem.min() >= 0 and dem.max() <= 1
    with pytest.raises(ValueError, match='expected 2 inputs'):
        joint((s1,))
    # a batch of one modality is never split into modalities
    with pytest.raises(ValueError, match=r'one tensor of shape \(2, 2, 64, 64\)'):
        joint(torch.stack([s1, s1]))
    with pytest.raises(ValueError, match="none of the keys \\['image'\\]"):
        joint({'image': s1})
    # TorchGeo sample dicts: 'image' (or the modality's key) transformed,
    # the rest passed through; batches too
    sample = single({'image': s1, 'label': 3})
    torch.testing.assert_close(sample['image'], out['s1'])
    assert sample['label'] == 3
    torch.testing.assert_close(single({'s1': s1})['s1'], out['s1'])
    batch_out = single(torch.stack([s1, s1]))
    assert batch_out.shape == (2, 2, 224, 224)
    torch.testing.assert_close(batch_out[1], out['s1'])
    with pytest.raises(ValueError, match="needs an 'image' or 's1' key"):
        single({'mask': s1})
    with pytest.raises(ValueError, match="unknown modality 'sar'"):
        modality_transforms('sar')


def test_transforms_preprocess_before_resizing() -> None:
    # the percentile clip is taken over the whole raw image, as the authors did
    x = torch.linspace(-30, 10, 64 * 64).reshape(1, 64, 64).expand(2, 64, 64)
    out = modality_transforms('s1', size=32)(x)
    import torchvision.transforms.v2 as T

    from torchgeo_decur.transforms.normalize import normalize_s1

    expected = T.CenterCrop(32)(T.Resize((37, 37), antialias=True)(normalize_s1(x)))
    torch.testing.assert_close(out, expected)


@pytest.mark.parametrize(
    ('name', 'wrong', 'match'),
    [
        ('s2c', torch.rand(13, 32, 32) * 0.3, r'digital numbers.*divided by 10000'),
        ('s1', torch.rand(2, 32, 32), r'dB.*already normalised'),
        ('rgb', torch.rand(3, 32, 32), r'0 to 255.*divided by 255'),
    ],
)
def test_transforms_warn_on_wrong_range(name: str, wrong: Tensor, match: str) -> None:
    transforms = modality_transforms(name)
    with pytest.warns(UserWarning, match=match):
        transforms(wrong)
    right = {
        's2c': torch.rand(13, 32, 32) * 3000,
        's1': torch.randn(2, 32, 32) * 5 - 15,
        'rgb': torch.rand(3, 32, 32) * 255,
    }[name]
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        transforms(right)


# --------------------------------------------------------------------------- #
# The authors' files, through the enum and the hub cache
# --------------------------------------------------------------------------- #


#: Band layout of the authors' files for each modality: what a stand-in model
#: is built with, and how an input in the served order maps onto it.
FILE_LAYOUT = {
    's1': (2, lambda x: x),
    's2c': (13, lambda x: x),
    'rgb': (3, lambda x: x[:, [2, 1, 0]]),  # OpenCV's B, G, R
    'dem': (3, lambda x: x.expand(-1, 3, -1, -1)),  # repeated on 3 channels
    'rgb_indoor': (3, lambda x: x[:, [2, 1, 0]]),  # OpenCV's B, G, R
    'hha': (3, lambda x: x[:, [2, 1, 0]]),  # OpenCV's angle, height, disparity
}

#: Small models standing in for the entries' models: the loaders ignore depth.
STAND_IN = {'resnet50': 'resnet18', 'mit_b2': 'mit_b0', 'mit_b5': 'mit_b0'}


def stand_in(model: str, in_chans: int, deformable: bool = False) -> nn.Module:
    """A small model with the layout of the entry's model, random weights."""
    name = STAND_IN.get(model, model)
    kwargs = {'img_size': 32} if model.startswith('vit') else {}
    backbone = timm.create_model(name, in_chans=in_chans, num_classes=0, **kwargs)
    if deformable:
        backbone = add_deformable_attention(backbone)
    return randomise_bn(backbone)


def authors_keys(backbone: nn.Module, index: int, joint: bool) -> dict[str, Tensor]:
    """One backbone's keys as the authors' files store them.

    Joint files: ``module.backbone_<i>.*`` and ``module.da<i>_l3.*``; RDA
    backbone-only files: ``backbone.*`` and ``da<i>_l3.*``; other
    backbone-only files: the plain keys.
    """
    out = {}
    deformable = isinstance(backbone, DeformableResNet)
    for key, value in backbone.state_dict().items():
        if key.startswith(('da_l3.', 'da_l4.')):
            key = f'{"module." if joint else ""}da{index}_{key[3:]}'
        elif joint:
            key = f'module.backbone_{index}.{key}'
        elif deformable:
            key = f'backbone.{key}'
        out[key] = value
    return out


@pytest.mark.parametrize('entry', ALL, ids=str)
def test_every_entry_loads_authors_file_with_identical_features(
    hub: Path, entry: DeCURWeightsEnum
) -> None:
    """Each entry reads the authors' layout from the hub cache, converted exactly."""
    torch.manual_seed(0)
    model = entry.meta['model']
    name = STAND_IN.get(model, model)
    kwargs = {'img_size': 32} if model.startswith('vit') else {}
    deformable = entry.meta.get('deformable_attention', False)
    joint = type(entry)[entry.meta['joint']] if not entry.is_joint else entry
    originals = {
        m: stand_in(model, FILE_LAYOUT[m][0], deformable) for m in joint.modalities
    }
    if entry.meta['file'] == joint.meta['file']:
        state = {}
        for i, backbone in enumerate(originals.values(), start=1):
            state.update(authors_keys(backbone, i, joint=True))
        # projectors and the loss's batch norm: to be dropped
        state['module.projector1.0.weight'] = torch.randn(16, 8)
        state['module.bn.running_mean'] = torch.zeros(16)
        # ResNet and MiT joint files are wrapped ({'epoch', 'model'}); the
        # ViT and RDA ones are bare state dicts
        wrap = model != 'vit_small_patch16_224' and not deformable
        torch.save(
            {'epoch': 100, 'model': state} if wrap else state, hub / joint.meta['file']
        )
    else:
        index = joint.modalities.index(entry.meta['modality']) + 1
        original = originals[entry.meta['modality']]
        torch.save(authors_keys(original, index, joint=False), hub / entry.meta['file'])
    # 'authors': each modality's own blocks, as in the file ('trained' below)
    if entry.is_joint:  # both encoders, served in the modalities' layout
        encoders = {}
        for modality, state_dict in entry.get_state_dict(da_blocks='authors').items():
            in_chans = entry.meta['modalities'][modality]['in_chans']
            encoders[modality] = stand_in(model, in_chans, deformable)
            encoders[modality].load_state_dict(state_dict, strict=True)
    else:
        modality = entry.meta['modality']
        encoders = {
            modality: create_encoder(
                name,
                entry.meta['in_chans'],
                weights=entry,
                da_blocks='authors',
                **kwargs,
            )
        }
        # deformable attention follows the entry (None)
        assert isinstance(encoders[modality], DeformableResNet) == deformable
    for modality, encoder in encoders.items():
        x = torch.rand(2, entry.meta['modalities'][modality]['in_chans'], 32, 32)
        to_file_layout = FILE_LAYOUT[modality][1]
        torch.testing.assert_close(
            features(encoder, x), features(originals[modality], to_file_layout(x))
        )


def test_rda_blocks_trained_or_authors(hub: Path, tmp_path: Path) -> None:
    """'trained' (default): both modalities get da1_*, the blocks the authors'
    pretraining ran both through; 'authors': da2_* for modality 2, as their
    transfer code loaded them."""
    torch.manual_seed(0)
    entry = ResNet50_Weights.DECUR_S1S2_RDA
    originals = [stand_in('resnet50', c, True) for c in (2, 13)]
    state = {}
    for i, backbone in enumerate(originals, start=1):
        state.update(authors_keys(backbone, i, joint=True))
    torch.save(state, hub / entry.meta['file'])
    da1, da2 = originals[0].da_l3.rpe_table, originals[1].da_l3.rpe_table
    s1, s2 = entry.get_state_dict().values()
    torch.testing.assert_close(s1['da_l3.rpe_table'], da1)
    torch.testing.assert_close(s2['da_l3.rpe_table'], da1)
    torch.testing.assert_close(s2['conv1.weight'], originals[1].conv1.weight)
    s1, s2 = entry.get_state_dict(da_blocks='authors').values()
    torch.testing.assert_close(
        s2['da_l4.proj_q.weight'], originals[1].da_l4.proj_q.weight
    )
    assert not torch.equal(s1['da_l3.rpe_table'], s2['da_l3.rpe_table'])
    # modality 2's entry: 'trained' reads the joint file (only it is cached)
    s2c = entry.modality('s2c')
    encoder = create_encoder('resnet18', 13, weights=entry, modality='s2c')
    torch.testing.assert_close(encoder.da_l3.rpe_table, da1)
    # its backbone-only file holds da2_*, as the authors wrote it
    backbone_only = hub / s2c.meta['file']
    torch.save(authors_keys(originals[1], 2, joint=False), backbone_only)
    encoder = create_encoder('resnet18', 13, weights=s2c, da_blocks='authors')
    torch.testing.assert_close(encoder.da_l3.rpe_table, da2)
    # the transfer tasks' encoders (create_encoders), both ways
    s1_file = hub / entry.modality('s1').meta['file']
    torch.save(authors_keys(originals[0], 1, joint=False), s1_file)
    for da_blocks, expected in (('trained', da1), ('authors', da2)):
        pair = create_encoders(
            'resnet18', [2, 13], ['s1', 's2c'], entry, da_blocks=da_blocks
        )
        torch.testing.assert_close(pair[0].da_l3.rpe_table, da1)
        torch.testing.assert_close(pair[1].da_l3.rpe_table, expected)
    with pytest.raises(ValueError, match='untrained da2_'):
        create_encoder('resnet18', 13, weights=str(backbone_only))
    with pytest.raises(ValueError, match='da_blocks must be'):
        create_encoder('resnet18', 13, weights=s2c, da_blocks='own')  # type: ignore[arg-type]
    # refusing the blocks of weights that have them is an error
    with pytest.raises(ValueError, match='hold deformable-attention blocks'):
        create_encoder('resnet18', 13, weights=s2c, deformable_attention=False)
    # plain weights in a deformable encoder: the ResNet loads, blocks stay
    plain = ResNet50_Weights.DECUR_S1S2_S1
    torch.save(stand_in('resnet50', 2).state_dict(), hub / plain.meta['file'])
    encoder = create_encoder('resnet18', 2, weights=plain, deformable_attention=True)
    assert isinstance(encoder, DeformableResNet)
    with pytest.raises(ValueError, match='needs a ResNet model'):
        create_encoder('mit_b0', 3, deformable_attention=True)


def test_resnet50_s1s2_from_hub_cache(hub: Path) -> None:
    torch.manual_seed(0)
    sar = randomise_bn(timm.create_model('resnet50', in_chans=2, num_classes=0))
    optical = randomise_bn(timm.create_model('resnet50', in_chans=13, num_classes=0))
    authors_file(hub / 'rn50_ssl4eo-s12_joint_decur_ep100.pth', [sar, optical])
    backbone_file(hub / 'rn50_ssl4eo-s12_sar_decur_ep100.pth', sar)
    x = torch.randn(2, 2, 64, 64)

    # joint entry: both encoders, keyed by modality
    state_dicts = ResNet50_Weights.DECUR_S1S2.get_state_dict(weights_only=True)
    assert list(state_dicts) == ['s1', 's2c']
    assert state_dicts['s2c'].keys() == optical.state_dict().keys()

    # one modality of the joint entry is served by its backbone-only file
    one = load_decur_state_dict('ResNet50_Weights.DECUR_S1S2', 's1')
    torch.testing.assert_close(one['conv1.weight'], sar.conv1.weight)

    # joint entry + modality, by name, strict timm load
    encoder = create_encoder(
        'resnet50', 2, weights='ResNet50_Weights.DECUR_S1S2', modality='s1'
    )
    torch.testing.assert_close(features(encoder, x), features(sar, x))

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


def test_torchgeo_decur_entries_read_the_same_files(hub: Path) -> None:
    """TorchGeo's SENTINEL1_GRD_DECUR is a pinned copy of the SAR backbone file."""
    torch.manual_seed(0)
    sar = randomise_bn(timm.create_model('resnet18', in_chans=2, num_classes=0))
    theirs = torchgeo.models.ResNet50_Weights.SENTINEL1_GRD_DECUR
    file_name = theirs.url.rsplit('/', 1)[-1]
    assert file_name.startswith('rn50_ssl4eo-s12_sar_decur_ep100-')
    backbone_file(hub / file_name, sar)
    backbone_file(hub / 'rn50_ssl4eo-s12_sar_decur_ep100.pth', sar)
    x = torch.randn(2, 2, 32, 32)
    ours = create_encoder('resnet18', 2, weights=ResNet50_Weights.DECUR_S1S2_S1)
    via_torchgeo = create_encoder('resnet18', 2, weights=theirs)
    torch.testing.assert_close(features(ours, x), features(via_torchgeo, x))
    # our file reader knows TorchGeo's hash-suffixed copy by its name
    assert published_entry(file_name) is ResNet50_Weights.DECUR_S1S2_S1
    state_dicts, _ = read_decur_checkpoint(hub / file_name)
    assert list(state_dicts) == ['s1']
    from_path = create_encoder('resnet18', 2, weights=str(hub / file_name))
    torch.testing.assert_close(features(from_path, x), features(sar, x))
    # their transforms z-score S1; ours reproduce the authors' stretch
    assert 'Normalize' in repr(theirs.transforms)
    assert 'SigmaStretch' in repr(ResNet50_Weights.DECUR_S1S2_S1.transforms)


def test_published_file_by_path_is_converted(tmp_path: Path) -> None:
    """A downloaded authors' RGB file, given by path, is served as R, G, B."""
    torch.manual_seed(0)
    bgr = randomise_bn(timm.create_model('resnet18', in_chans=3, num_classes=0))
    path = tmp_path / 'rn50_geonrw_rgb_decur_ep100.pth'
    backbone_file(path, bgr)
    encoder = create_encoder('resnet18', 3, weights=str(path), modality='rgb')
    x = torch.rand(2, 3, 32, 32)
    torch.testing.assert_close(features(encoder, x), features(bgr, x[:, [2, 1, 0]]))
    # an unknown file name is taken as it is
    other = tmp_path / 'my_rgb.pth'
    backbone_file(other, bgr)
    encoder = create_encoder('resnet18', 3, weights=str(other))
    torch.testing.assert_close(features(encoder, x), features(bgr, x))
    # a renamed joint file of the authors: taken as it is, with a warning
    renamed = tmp_path / 'geonrw_joint.pth'
    authors_file(renamed, [bgr, bgr])
    with pytest.warns(UserWarning, match='channel order are unknown'):
        state_dicts, _ = read_decur_checkpoint(renamed)
    assert list(state_dicts) == ['modality1', 'modality2']


def test_vit_small_flat_file(hub: Path) -> None:
    torch.manual_seed(0)
    kwargs = {'num_classes': 0, 'img_size': 32}
    vits = [
        timm.create_model('vit_small_patch16_224', in_chans=c, **kwargs).eval()
        for c in (2, 13)
    ]
    # the ViT joint file of the authors is the bare state dict
    path = hub / 'vits16_ssl4eo-s12_joint_decur_ep100.pth'
    authors_file(path, vits, wrap=False)
    state_dicts = load_decur_state_dicts('ViTSmall16_Weights.DECUR_S1S2')
    assert state_dicts['s1']['patch_embed.proj.weight'].shape == (384, 2, 16, 16)
    # the same file by path: named by the published file name
    encoder = create_encoder(
        'vit_small_patch16_224', 13, weights=str(path), modality='s2c', img_size=32
    )
    x = torch.randn(1, 13, 32, 32)
    torch.testing.assert_close(features(encoder, x), features(vits[1], x))


def test_rgb_dem_joint(hub: Path) -> None:
    torch.manual_seed(0)
    rgb = timm.create_model('resnet18', in_chans=3, num_classes=0)
    dem = timm.create_model('resnet18', in_chans=3, num_classes=0)
    # (resnet18 stands in for resnet50: the conversion does not look at depth)
    authors_file(hub / 'rn50_geonrw_joint_decur_ep100.pth', [rgb, dem], fc=True)
    state_dicts = load_decur_state_dicts(ResNet50_Weights.DECUR_RGB_DEM)
    assert list(state_dicts) == ['rgb', 'dem']
    assert 'fc.weight' not in state_dicts['rgb']
    assert state_dicts['dem'].keys() == dem.state_dict().keys()
    # B, G, R -> R, G, B; three DEM channels -> one (their sum)
    torch.testing.assert_close(
        state_dicts['rgb']['conv1.weight'], rgb.conv1.weight[:, [2, 1, 0]]
    )
    torch.testing.assert_close(
        state_dicts['dem']['conv1.weight'], dem.conv1.weight.sum(1, keepdim=True)
    )


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
    dem = timm.create_model('resnet18', in_chans=3, num_classes=0)
    backbone_file(hub / 'rn50_geonrw_dem_decur_ep100.pth', dem)
    # resnet18 weights do not fit a resnet34: strict loading says which keys
    with pytest.raises(ValueError, match=r'missing keys layer1\.2\.conv1\.weight'):
        create_encoder('resnet34', 1, weights=ResNet50_Weights.DECUR_RGB_DEM_DEM)
