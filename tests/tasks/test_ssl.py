"""SSLTask, the base of the self-supervised methods, and checkpoints of 0.1."""

from pathlib import Path

import pytest
import torch
from lightning.pytorch import LightningDataModule, Trainer
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from torchgeo_decur.explain import load_task
from torchgeo_decur.export import export_checkpoint
from torchgeo_decur.models import read_decur_checkpoint
from torchgeo_decur.tasks import CoMMTask, DeCURTask, MultimodalSSLTask, SSLTask

from ..conftest import DATA

#: Checkpoints written by torchgeo-decur 0.1 (``write.py`` beside them).
OLD = DATA / 'checkpoints_0.1'
TASKS = {'decur': DeCURTask, 'barlow_cross': MultimodalSSLTask, 'comm': CoMMTask}


class Views(Dataset[dict[str, Tensor]]):
    def __len__(self) -> int:
        return 8

    def __getitem__(self, i: int) -> dict[str, Tensor]:
        g = torch.Generator().manual_seed(i)
        return {
            'image1': torch.rand(2, 2, 32, 32, generator=g),
            'image2': torch.rand(2, 13, 32, 32, generator=g),
        }


class Data(LightningDataModule):
    def train_dataloader(self) -> DataLoader[dict[str, Tensor]]:
        return DataLoader(Views(), batch_size=4, drop_last=True)


def old_encoders(path: Path) -> dict[str, dict[str, Tensor]]:
    state = torch.load(path, map_location='cpu', weights_only=False)['state_dict']
    return {
        name: {k.split('.', 1)[1]: v for k, v in state.items() if k.startswith(prefix)}
        for name, prefix in (('s1', 'backbone1.'), ('s2c', 'backbone2.'))
    }


@pytest.mark.parametrize('name', sorted(TASKS))
def test_checkpoint_of_0_1_loads(name: str) -> None:
    """The 0.1 layout (backbone1.*, projector1.*, converters.0.*) loads into
    the tasks keyed by modality, through every reader."""
    path = OLD / f'{name}.ckpt'
    task = TASKS[name].load_from_checkpoint(path, map_location='cpu')
    assert isinstance(task, SSLTask) and task.modality_names == ['s1', 's2c']
    for modality, state in old_encoders(path).items():
        for key, value in state.items():
            torch.testing.assert_close(task.encoders[modality].state_dict()[key], value)
    x1, x2 = torch.rand(2, 2, 32, 32), torch.rand(2, 13, 32, 32)
    assert task.eval().representation(x1, x2).ndim == 2
    assert task.hparams['encoders']['s2c']['in_channels'] == 13  # now recorded
    if name != 'comm':
        explained = load_task(path)
        assert isinstance(explained, TASKS[name])
    state_dicts, _ = read_decur_checkpoint(path)
    assert list(state_dicts) == ['s1', 's2c']


def test_checkpoint_of_0_1_exports(tmp_path: Path) -> None:
    written = export_checkpoint(OLD / 'decur.ckpt', tmp_path)
    state = torch.load(written['s2c'], weights_only=True)
    torch.testing.assert_close(state, old_encoders(OLD / 'decur.ckpt')['s2c'])


@pytest.mark.filterwarnings('ignore::UserWarning')
def test_run_of_0_1_resumes(tmp_path: Path) -> None:
    """Training goes on from a 0.1 checkpoint: weights, optimiser and step."""
    task = DeCURTask(
        model1='test_efficientnet',
        model2='test_efficientnet',
        projector_dims=[16, 16],
        common_dim=12,
    )
    trainer = Trainer(
        accelerator='cpu',
        max_steps=3,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
    )
    trainer.fit(task, datamodule=Data(), ckpt_path=OLD / 'decur.ckpt')
    assert trainer.global_step == 3
    momentum = trainer.optimizers[0].state_dict()['state']
    assert momentum  # LARS momentum came from the file and went on


def test_encoders_mapping() -> None:
    """The per-modality mapping overrides the two-modality arguments; weights
    are not recorded; the resolved mapping is."""
    task = DeCURTask(
        modalities=['s1', 'rgb'],
        model1='resnet18',
        model2='resnet18',
        encoders={'rgb': {'model': 'test_efficientnet', 'weights': None}},
        projector_dims=[16, 16],
        common_dim=8,
    )
    assert type(task.encoders['rgb']).__name__ == 'EfficientNet'
    assert task.encoders['s1'].conv1.in_channels == 2
    assert task.hparams['encoders'] == {
        's1': {'model': 'resnet18', 'in_channels': 2, 'model_kwargs': {}},
        'rgb': {'model': 'test_efficientnet', 'in_channels': 3, 'model_kwargs': {}},
    }
    assert task.backbone2 is task.encoders['rgb']  # 0.1's name
    with pytest.raises(ValueError, match=r"encoders names \['dem'\]"):
        DeCURTask(modalities=['s1', 'rgb'], encoders={'dem': {'model': 'resnet18'}})
