import json
from pathlib import Path

import pytest
import timm
import torch
from torch import Tensor, nn

from torchgeo_decur.models import (
    NotDeCURCheckpointError,
    create_encoder,
    create_projector,
    load_decur_state_dict,
    load_decur_state_dicts,
    read_decur_checkpoint,
)


def resnet18(in_chans: int) -> nn.Module:
    model = timm.create_model('resnet18', in_chans=in_chans, num_classes=0)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.1, 0.1)
    return model.eval()


def features(model: nn.Module, x: Tensor) -> Tensor:
    model.eval()
    with torch.no_grad():
        return model(x)


@pytest.fixture(scope='module')
def backbones() -> tuple[nn.Module, nn.Module]:
    torch.manual_seed(0)
    return resnet18(2), resnet18(13)


def save_lightning(path: Path, b1: nn.Module, b2: nn.Module) -> None:
    state_dict = {f'backbone1.{k}': v for k, v in b1.state_dict().items()}
    state_dict.update({f'backbone2.{k}': v for k, v in b2.state_dict().items()})
    state_dict['projector1.layers.0.weight'] = torch.randn(8, 512)
    hparams = {
        'model1': 'resnet18',
        'model2': 'resnet18',
        'in_channels1': 2,
        'in_channels2': 13,
        'model_kwargs1': None,
        'model_kwargs2': None,
        'modalities': ['s1', 's2c'],
    }
    torch.save(
        {'epoch': 0, 'state_dict': state_dict, 'hyper_parameters': hparams}, path
    )


def save_authors(path: Path, b1: nn.Module, b2: nn.Module) -> None:
    model = {f'module.backbone_1.{k}': v for k, v in b1.state_dict().items()}
    model.update({f'module.backbone_2.{k}': v for k, v in b2.state_dict().items()})
    model['module.projector1.0.weight'] = torch.randn(8, 512)
    model['module.bn.running_mean'] = torch.zeros(8)
    torch.save({'epoch': 99, 'model': model}, path)


def test_random_and_shape() -> None:
    encoder = create_encoder('resnet18', 5)
    assert encoder(torch.randn(2, 5, 32, 32)).shape == (2, encoder.num_features)
    with pytest.raises(ValueError, match='in_channels must be >= 1'):
        create_encoder('resnet18', 0)
    projector = create_projector(encoder.num_features, (16, 8))
    assert projector(torch.randn(4, encoder.num_features)).shape == (4, 8)


def test_lightning_checkpoint(
    tmp_path: Path, backbones: tuple[nn.Module, nn.Module]
) -> None:
    path = tmp_path / 'decur.ckpt'
    save_lightning(path, *backbones)
    x = torch.randn(1, 13, 32, 32)
    encoder = create_encoder('resnet18', 13, weights=str(path), modality='s2c')
    torch.testing.assert_close(features(encoder, x), features(backbones[1], x))
    encoder = create_encoder('resnet18', 2, weights=path, modality='s1')  # a Path
    x = torch.randn(1, 2, 32, 32)
    torch.testing.assert_close(features(encoder, x), features(backbones[0], x))
    state_dicts, meta = read_decur_checkpoint(path)
    assert list(state_dicts) == ['s1', 's2c']
    assert meta is not None
    assert [m['in_chans'] for m in meta['modalities']] == [2, 13]
    with pytest.raises(ValueError, match=r'several encoders \(s1, s2c\)'):
        create_encoder('resnet18', 2, weights=str(path))
    with pytest.raises(ValueError, match="no modality 'rgb'; valid: s1, s2c"):
        create_encoder('resnet18', 3, weights=str(path), modality='rgb')


def test_authors_file_without_names(
    tmp_path: Path, backbones: tuple[nn.Module, nn.Module]
) -> None:
    path = tmp_path / 'rn18_joint.pth'
    save_authors(path, *backbones)
    assert list(load_decur_state_dicts(path)) == ['modality1', 'modality2']
    encoder = create_encoder('resnet18', 2, weights=str(path), modality='modality1')
    x = torch.randn(1, 2, 32, 32)
    torch.testing.assert_close(features(encoder, x), features(backbones[0], x))
    state_dict = load_decur_state_dict(path, 'modality2')
    assert state_dict['conv1.weight'].shape[1] == 13
    assert not any(k.startswith(('projector', 'bn.')) for k in state_dict)


def test_sidecar_names_joint_file(
    tmp_path: Path, backbones: tuple[nn.Module, nn.Module]
) -> None:
    # an exported joint file whose embedded metadata was lost: the JSON names it
    path = tmp_path / 'run_joint.pth'
    save_authors(path, *backbones)
    meta = {
        'format': 'torchgeo-decur-export',
        'modalities': [{'name': 'rgb'}, {'name': 'dem'}],
    }
    (tmp_path / 'run.json').write_text(json.dumps(meta))
    assert list(load_decur_state_dicts(path)) == ['rgb', 'dem']


def test_plain_state_dict(
    tmp_path: Path, backbones: tuple[nn.Module, nn.Module]
) -> None:
    path = tmp_path / 'encoder.pth'
    torch.save(backbones[0].state_dict(), path)
    encoder = create_encoder('resnet18', 2, weights=str(path))
    x = torch.randn(1, 2, 32, 32)
    torch.testing.assert_close(features(encoder, x), features(backbones[0], x))
    # strict: a mismatch is an error, not a silent partial load
    with pytest.raises(ValueError, match=r'in_chans=2, but in_channels=3'):
        create_encoder('resnet18', 3, weights=str(path))
    with pytest.raises(ValueError, match=r'missing keys layer1\.2\.conv1\.weight'):
        create_encoder('resnet34', 2, weights=str(path))


def test_torchgeo_checkpoint_keeps_working(
    tmp_path: Path, backbones: tuple[nn.Module, nn.Module]
) -> None:
    # TorchGeo's MoCo / SimCLR checkpoints: 'model' hparam, 'backbone.' keys
    path = tmp_path / 'moco.ckpt'
    b1 = backbones[0]
    torch.save(
        {
            'state_dict': {f'model.{k}': v for k, v in b1.state_dict().items()},
            'hyper_parameters': {'model': 'resnet18', 'in_channels': 2},
        },
        path,
    )
    encoder = create_encoder('resnet18', 2, weights=str(path))
    torch.testing.assert_close(encoder.conv1.weight, b1.conv1.weight)
    # ... but they hold no modalities
    with pytest.raises(NotDeCURCheckpointError, match='not a DeCUR checkpoint'):
        create_encoder('resnet18', 2, weights=str(path), modality='s1')
    with pytest.raises(ValueError, match=r"not a DeCUR checkpoint.*model='resnet18'"):
        load_decur_state_dicts(path)


def test_other_files(tmp_path: Path) -> None:
    path = tmp_path / 'list.pth'
    torch.save([1, 2], path)
    with pytest.raises(ValueError, match='not a DeCUR checkpoint: it holds a list'):
        load_decur_state_dicts(path)
    path = tmp_path / 'other.pth'
    torch.save({'optimizer': {'lr': 1}, 'epoch': 3}, path)
    with pytest.raises(ValueError, match=r'not a DeCUR checkpoint.*optimizer'):
        load_decur_state_dicts(path)
    with pytest.raises(FileNotFoundError, match='nope'):
        read_decur_checkpoint(tmp_path / 'nope.pth')


def test_unknown_model_names_the_lab() -> None:
    """The demo's checkpoints name convnet_small, which the lab registers."""
    with pytest.raises(ValueError, match=r"unknown timm model 'no_such_net'.*lab"):
        create_encoder('no_such_net', 3)
