import json
from pathlib import Path

import pytest
import timm
import torch
from torch import nn
from torchgeo.tasks import Classification

from torchgeo_decur.export import export_checkpoint
from torchgeo_decur.modalities import modalities
from torchgeo_decur.models import create_encoder, load_decur_state_dicts

from .conftest import mit_decur_task


def make_decur_checkpoint(
    path: Path,
    modalities: tuple[str, str] = ('s1', 's2c'),
    in_channels: tuple[int, int] = (2, 13),
    model: str = 'resnet18',
) -> tuple[nn.Module, nn.Module]:
    """A checkpoint in the layout of DeCURTask, with random resnet18 backbones."""
    torch.manual_seed(0)
    backbones = [
        timm.create_model(model, in_chans=c, num_classes=0).eval() for c in in_channels
    ]
    state_dict = {}
    for i, backbone in enumerate(backbones, start=1):
        # non-default running statistics, so that buffers are checked too
        for m in backbone.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.9, 1.1)
        state_dict.update(
            {f'backbone{i}.{k}': v for k, v in backbone.state_dict().items()}
        )
        state_dict[f'projector{i}.layers.0.weight'] = torch.randn(16, 512)
        state_dict[f'projector{i}.layers.1.running_mean'] = torch.zeros(16)
    state_dict['criterion.bn.running_mean'] = torch.zeros(16)
    torch.save(
        {
            'epoch': 3,
            'global_step': 42,
            'pytorch-lightning_version': '2.6.0',
            'state_dict': state_dict,
            'hyper_parameters': {
                'model1': model,
                'model2': model,
                'in_channels1': in_channels[0],
                'in_channels2': in_channels[1],
                'model_kwargs1': None,
                'model_kwargs2': {'drop_rate': 0.0},
                'modalities': list(modalities),
                'projector_dims': [16],
                'lambd': 0.0051,
                'lr': 0.1,
            },
        },
        path,
    )
    return backbones[0], backbones[1]


@pytest.fixture
def checkpoint(tmp_path: Path) -> tuple[Path, nn.Module, nn.Module]:
    path = tmp_path / 'epoch=3-step=42.ckpt'
    b1, b2 = make_decur_checkpoint(path)
    return path, b1, b2


def features(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    model.eval()
    with torch.no_grad():
        return model(x)


def test_export_round_trip(
    checkpoint: tuple[Path, nn.Module, nn.Module], tmp_path: Path
) -> None:
    path, b1, b2 = checkpoint
    out = tmp_path / 'out'
    written = export_checkpoint(path, out)
    stem = 'epoch=3-step=42'
    assert written == {
        's1': out / f'{stem}_s1.pth',
        's2c': out / f'{stem}_s2c.pth',
        'joint': out / f'{stem}_joint.pth',
        'metadata': out / f'{stem}.json',
    }
    x1, x2 = torch.randn(2, 2, 64, 64), torch.randn(2, 13, 64, 64)

    # per-modality files: plain timm state dicts, strict load
    for name, chans, kwargs, original, x in (
        ('s1', 2, {}, b1, x1),
        ('s2c', 13, {'drop_rate': 0.0}, b2, x2),
    ):
        model = timm.create_model('resnet18', in_chans=chans, num_classes=0, **kwargs)
        state_dict = torch.load(written[name], weights_only=True)
        model.load_state_dict(state_dict, strict=True)
        torch.testing.assert_close(features(model, x), features(original, x))

    # joint file: the authors' layout
    joint = torch.load(written['joint'], weights_only=True)
    assert joint['epoch'] == 3
    keys = list(joint['model'])
    assert all(k.startswith(('module.backbone_1.', 'module.backbone_2.')) for k in keys)
    assert 'module.backbone_1.conv1.weight' in keys
    assert joint['model']['module.backbone_2.conv1.weight'].shape[1] == 13
    assert not any('projector' in k or 'criterion' in k for k in keys)

    # metadata, in modality order
    meta = json.loads(written['metadata'].read_text())
    assert joint['meta'] == meta
    assert meta['ssl_method'] == 'decur'
    assert meta['epoch'] == 3
    assert [m['name'] for m in meta['modalities']] == ['s1', 's2c']
    s1, s2c = meta['modalities']
    assert s1['model'] == 'resnet18'
    assert s1['in_chans'] == 2
    assert s2c['in_chans'] == 13
    assert s1['model_kwargs'] == {}
    assert s2c['model_kwargs'] == {'drop_rate': 0.0}
    assert s1['bands'] == ['VV', 'VH']
    assert s2c['bands'] == list(modalities()['s2c'].bands)
    assert s2c['normalisation'] == modalities()['s2c'].description
    assert s1['file'] == f'{stem}_s1.pth'

    # all three formats load through the same loader, named by modality
    for source in (written['joint'], written['s2c'], path):
        state_dicts = load_decur_state_dicts(source)
        model = create_encoder('resnet18', 13, weights=str(source), modality='s2c')
        torch.testing.assert_close(features(model, x2), features(b2, x2))
    assert list(load_decur_state_dicts(written['joint'])) == ['s1', 's2c']
    assert list(load_decur_state_dicts(written['s1'])) == ['s1']
    # an encoder file needs no modality
    model = create_encoder('resnet18', 2, weights=str(written['s1']))
    torch.testing.assert_close(features(model, x1), features(b1, x1))
    del state_dicts


def test_export_stem(
    checkpoint: tuple[Path, nn.Module, nn.Module], tmp_path: Path
) -> None:
    written = export_checkpoint(checkpoint[0], tmp_path / 'o', stem='decur_s1s2')
    assert sorted(p.name for p in written.values()) == [
        'decur_s1s2.json',
        'decur_s1s2_joint.pth',
        'decur_s1s2_s1.pth',
        'decur_s1s2_s2c.pth',
    ]
    assert list(load_decur_state_dicts(written['s2c'])) == ['s2c']


def test_export_refuses_to_overwrite(
    checkpoint: tuple[Path, nn.Module, nn.Module], tmp_path: Path
) -> None:
    path = checkpoint[0]
    out = tmp_path / 'out'
    written = export_checkpoint(path, out)
    before = {k: p.read_bytes() for k, p in written.items()}
    with pytest.raises(FileExistsError, match=r'_s1\.pth') as info:
        export_checkpoint(path, out)
    for p in written.values():
        assert str(p) in str(info.value)
    assert {k: p.read_bytes() for k, p in written.items()} == before
    assert export_checkpoint(path, out, overwrite=True) == written


def test_export_checks_before_writing(
    checkpoint: tuple[Path, nn.Module, nn.Module], tmp_path: Path
) -> None:
    out = tmp_path / 'out'
    out.mkdir()
    metadata = out / 'epoch=3-step=42.json'
    metadata.write_text('mine')
    with pytest.raises(FileExistsError, match=r'epoch=3-step=42\.json'):
        export_checkpoint(checkpoint[0], out)
    assert metadata.read_text() == 'mine'
    assert sorted(p.name for p in out.iterdir()) == ['epoch=3-step=42.json']


def test_export_missing_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r'missing\.ckpt'):
        export_checkpoint(tmp_path / 'missing.ckpt', tmp_path / 'out')


def test_export_other_method(tmp_path: Path) -> None:
    # the layout of TorchGeo's MoCoTask / SimCLRTask checkpoints
    backbone = timm.create_model('resnet18', in_chans=3, num_classes=0)
    path = tmp_path / 'moco.ckpt'
    torch.save(
        {
            'state_dict': {
                f'backbone.{k}': v for k, v in backbone.state_dict().items()
            },
            'hyper_parameters': {'model': 'resnet18', 'in_channels': 3},
        },
        path,
    )
    with pytest.raises(ValueError, match='not a DeCUR checkpoint') as info:
        export_checkpoint(path, tmp_path / 'out')
    assert "model='resnet18'" in str(info.value)
    assert 'backbone.*' in str(info.value)
    assert list((tmp_path / 'out').iterdir()) == []  # checked first, nothing written


def test_export_missing_backbone(tmp_path: Path) -> None:
    path = tmp_path / 'decur.ckpt'
    make_decur_checkpoint(path)
    checkpoint = torch.load(path, weights_only=False)
    sd = checkpoint['state_dict']
    checkpoint['state_dict'] = {k: v for k, v in sd.items() if 'backbone2.' not in k}
    torch.save(checkpoint, path)
    with pytest.raises(ValueError, match=r"missing backbone keys 'backbone2\.\*'"):
        export_checkpoint(path, tmp_path / 'out')


def test_export_missing_channels(tmp_path: Path) -> None:
    path = tmp_path / 'decur.ckpt'
    make_decur_checkpoint(path)
    checkpoint = torch.load(path, weights_only=False)
    del checkpoint['hyper_parameters']['in_channels2']
    torch.save(checkpoint, path)
    message = r"'s2c' has no input channels .*encoders\['s2c'\]\.in_channels"
    with pytest.raises(ValueError, match=message):
        export_checkpoint(path, tmp_path / 'out')


def test_export_missing_keys(tmp_path: Path) -> None:
    path = tmp_path / 'decur.ckpt'
    make_decur_checkpoint(path)
    checkpoint = torch.load(path, weights_only=False)
    del checkpoint['state_dict']['backbone1.layer4.1.bn2.weight']
    torch.save(checkpoint, path)
    with pytest.raises(ValueError, match=r'layer4\.1\.bn2\.weight'):
        export_checkpoint(path, tmp_path / 'out')
    assert list((tmp_path / 'out').iterdir()) == []  # checked first, nothing written


def test_export_torchgeo_checkpoints(
    checkpoint: tuple[Path, nn.Module, nn.Module], tmp_path: Path
) -> None:
    path, b1, _ = checkpoint
    written = export_checkpoint(path, tmp_path / 'o', torchgeo_checkpoints=True)
    assert written['s1_ckpt'].name == 'epoch=3-step=42_s1.ckpt'
    assert written['s2c_ckpt'].name == 'epoch=3-step=42_s2c.ckpt'
    meta = json.loads(written['metadata'].read_text())
    assert meta['modalities'][0]['torchgeo_checkpoint'] == 'epoch=3-step=42_s1.ckpt'
    # TorchGeo's own task reads the encoder from the path
    task = Classification(
        model='resnet18', weights=str(written['s1_ckpt']), in_channels=2, num_classes=3
    )
    torch.testing.assert_close(task.model.conv1.weight, b1.conv1.weight)
    torch.testing.assert_close(
        task.model.layer4[1].bn2.running_mean, b1.layer4[1].bn2.running_mean
    )
    # ... and so does create_encoder, strictly, by modality
    assert list(load_decur_state_dicts(written['s2c_ckpt'])) == ['s2c']
    x = torch.randn(1, 2, 32, 32)
    model = create_encoder(
        'resnet18', 2, weights=str(written['s1_ckpt']), modality='s1'
    )
    torch.testing.assert_close(features(model, x), features(b1, x))


def test_recorded_band_order_is_converted_on_load(tmp_path: Path) -> None:
    """A checkpoint whose RGB encoder was trained on B, G, R (as recorded) loads
    into the plugin's R, G, B modality with its first layer permuted."""
    path = tmp_path / 'bgr.ckpt'
    b1, _ = make_decur_checkpoint(path, ('rgb', 'dem'), (3, 1))
    checkpoint = torch.load(path, weights_only=False)
    checkpoint['torchgeo_decur'] = {
        'modalities': [
            {'name': 'rgb', 'bands': ['B', 'G', 'R'], 'normalisation': 'x / 255'},
            {'name': 'dem', 'bands': ['DEM'], 'normalisation': 'stretch'},
        ]
    }
    torch.save(checkpoint, path)
    written = export_checkpoint(path, tmp_path / 'out', torchgeo_checkpoints=True)
    meta = json.loads(written['metadata'].read_text())
    assert meta['modalities'][0]['bands'] == ['B', 'G', 'R']
    assert meta['modalities'][0]['normalisation'] == 'x / 255'
    x = torch.rand(2, 3, 32, 32)
    expected = features(b1, x[:, [2, 1, 0]])
    for source in (path, written['rgb'], written['joint'], written['rgb_ckpt']):
        encoder = create_encoder('resnet18', 3, weights=str(source), modality='rgb')
        torch.testing.assert_close(features(encoder, x), expected)


def test_export_mit_with_the_authors_head(tmp_path: Path) -> None:
    """MiT encoders export (smp's MiT cannot be built on the meta device), and
    a pretraining head (the authors' 512 -> 2048) stays out of the backbone."""
    torch.manual_seed(0)
    task = mit_decur_task().eval()
    torch.save(
        {
            'epoch': 1,
            'global_step': 1,
            'pytorch-lightning_version': '2.6.0',
            'state_dict': task.state_dict(),
            'hyper_parameters': dict(task.hparams),
        },
        tmp_path / 'mit.ckpt',
    )
    paths = export_checkpoint(tmp_path / 'mit.ckpt', tmp_path / 'out')
    encoder = create_encoder('mit_b0', 3, str(paths['hha'])).eval()
    x = torch.rand(2, 3, 32, 32)
    hha = task.encoders['hha']
    pooled = hha.forward_head(hha.forward_features(x), pre_logits=True)
    torch.testing.assert_close(encoder(x), pooled)
