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
from torchgeo_decur.models import (
    ResNet50_Weights,
    create_modality_encoder,
    is_decur_source,
)
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
