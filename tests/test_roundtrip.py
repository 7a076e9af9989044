"""Pretrain tiny -> export with the CLI -> load strictly into timm -> same features."""

import json
from pathlib import Path

import pytest
import timm
import torch
from lightning.pytorch import Trainer
from lightning.pytorch.callbacks import ModelCheckpoint
from torch import nn

from torchgeo_decur.cli import main as cli_main
from torchgeo_decur.export import export_checkpoint
from torchgeo_decur.models import (
    ResNet50_Weights,
    create_modality_encoder,
    is_decur_source,
)
from torchgeo_decur.models.deformable import DeformableResNet, add_deformable_attention
from torchgeo_decur.tasks import DeCURTask, MultimodalMultiLabelClassificationTask

from .tasks.test_decur import TINY, PairedDataModule


@pytest.fixture(scope='module')
def pretrained(tmp_path_factory: pytest.TempPathFactory) -> tuple[DeCURTask, Path]:
    root = tmp_path_factory.mktemp('pretrain')
    torch.manual_seed(0)
    task = DeCURTask(**{**TINY, 'modalities': ['s1', 'rgb']})
    trainer = Trainer(
        accelerator='cpu',
        max_steps=2,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[ModelCheckpoint(dirpath=root / 'ckpt')],
        default_root_dir=root,
    )
    trainer.fit(task, datamodule=PairedDataModule(batch_size=4, n=8))
    (ckpt,) = (root / 'ckpt').glob('*.ckpt')
    return task.eval(), ckpt


def features(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model.eval()(x)


def test_export_round_trip(
    pretrained: tuple[DeCURTask, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    task, ckpt = pretrained
    out = tmp_path / 'export'
    assert cli_main(['export', str(ckpt), '--out', str(out)]) == 0
    meta = json.loads((out / f'{ckpt.stem}.json').read_text())
    x1, x2 = torch.randn(2, 2, 32, 32), torch.randn(2, 3, 32, 32)
    for name, backbone, x, chans in (
        ('s1', task.backbone1, x1, 2),
        ('rgb', task.backbone2, x2, 3),
    ):
        model = timm.create_model('resnet18', in_chans=chans, num_classes=0)
        state = torch.load(out / f'{ckpt.stem}_{name}.pth', weights_only=True)
        model.load_state_dict(state, strict=True)
        torch.testing.assert_close(features(model, x), features(backbone, x))
        # The joint file loads through the same code as the authors' files.
        joint = create_modality_encoder(
            'resnet18', chans, name, str(out / f'{ckpt.stem}_joint.pth')
        )
        torch.testing.assert_close(features(joint, x), features(backbone, x))
    assert [m['name'] for m in meta['modalities']] == ['s1', 'rgb']

    # A second export refuses to overwrite and leaves the files as they were.
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    assert cli_main(['export', str(ckpt), '--out', str(out)]) == 2
    assert 'refusing to overwrite' in capsys.readouterr().err
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_tasks_start_from_a_decur_checkpoint(
    pretrained: tuple[DeCURTask, Path],
) -> None:
    task, ckpt = pretrained
    x = torch.randn(2, 3, 32, 32)
    again = DeCURTask(
        **{**TINY, 'modalities': ['s1', 'rgb']}, weights1=str(ckpt), weights2=str(ckpt)
    )
    torch.testing.assert_close(
        features(again.backbone2, x), features(task.backbone2, x)
    )
    # missing modality: the RGB encoder alone, from the same joint checkpoint
    probe = MultimodalMultiLabelClassificationTask(
        model='resnet18',
        weights=str(ckpt),
        in_channels=[3],
        modalities=['rgb'],
        input_keys=['image2'],
        num_classes=4,
    )
    (encoder,) = probe.encoders  # type: ignore[misc]
    torch.testing.assert_close(features(encoder, x), features(task.backbone2, x))


def test_is_decur_source(pretrained: tuple[DeCURTask, Path]) -> None:
    _, ckpt = pretrained
    assert is_decur_source(ResNet50_Weights.DECUR_S1S2)
    assert is_decur_source('ResNet50_Weights.DECUR_S1S2_S1')
    assert is_decur_source(str(ckpt))
    assert not is_decur_source(None)
    assert not is_decur_source(True)
    assert not is_decur_source('ResNet50_Weights.SENTINEL2_ALL_MOCO')


def test_deformable_attention_round_trip(tmp_path: Path) -> None:
    """Pretrain with deformable attention, export, and transfer the attended
    encoders: each modality keeps its own blocks through every format."""
    torch.manual_seed(0)
    task = DeCURTask(**{**TINY, 'modalities': ['s1', 'rgb']}, deformable_attention=True)
    assert isinstance(task.backbone1, DeformableResNet)
    assert task.backbone1.da_l3 is not task.backbone2.da_l3
    trainer = Trainer(
        accelerator='cpu',
        max_steps=1,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[ModelCheckpoint(dirpath=tmp_path / 'ckpt')],
        default_root_dir=tmp_path,
    )
    trainer.fit(task, datamodule=PairedDataModule(batch_size=4, n=4))
    (ckpt,) = (tmp_path / 'ckpt').glob('*.ckpt')
    assert torch.load(ckpt, weights_only=False)['hyper_parameters'][
        'deformable_attention'
    ]
    out = tmp_path / 'export'
    assert cli_main(['export', str(ckpt), '--out', str(out)]) == 0
    meta = json.loads((out / f'{ckpt.stem}.json').read_text())
    assert [m['deformable_attention'] for m in meta['modalities']] == [True, True]
    joint = torch.load(out / f'{ckpt.stem}_joint.pth', weights_only=True)['model']
    assert 'module.da1_l3.rpe_table' in joint and 'module.da2_l4.rpe_table' in joint
    assert not any(k.startswith('module.backbone_1.da_') for k in joint)
    # TorchGeo's tasks would drop the blocks: no TorchGeo checkpoints
    with pytest.raises(ValueError, match='drop the deformable-attention blocks'):
        export_checkpoint(ckpt, tmp_path / 'tg', torchgeo_checkpoints=True)

    x = torch.randn(2, 3, 32, 32)
    expected = features(task.backbone2, x)
    state = torch.load(out / f'{ckpt.stem}_rgb.pth', weights_only=True)
    model = add_deformable_attention(
        timm.create_model('resnet18', in_chans=3, num_classes=0)
    )
    model.load_state_dict(state, strict=True)
    torch.testing.assert_close(features(model, x), expected)
    for source in (str(ckpt), str(out / f'{ckpt.stem}_joint.pth')):
        # None follows the weights: the blocks come back, modality 2's own
        encoder = create_modality_encoder('resnet18', 3, 'rgb', source)
        torch.testing.assert_close(features(encoder, x), expected)
    # transfer: classification on the attended features of both encoders
    probe = MultimodalMultiLabelClassificationTask(
        model='resnet18',
        weights=str(ckpt),
        modalities=['s1', 'rgb'],
        num_classes=4,
    )
    assert probe.hparams['deformable_attention'] is True
    (_, encoder) = probe.encoders  # type: ignore[misc]
    torch.testing.assert_close(features(encoder, x), expected)
