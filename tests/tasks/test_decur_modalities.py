"""DeCURTask with more than two modalities: the encoders mapping, training,
checkpoints, export, and the deprecated model1/model2 aliases."""

import warnings
from pathlib import Path

import pytest
import timm
import torch
import yaml
from lightning.pytorch import Trainer
from torch import Tensor
from torch.utils.data import Dataset
from torchgeo.main import main as torchgeo_main

from torchgeo_decur.datamodules import PairedDataModule
from torchgeo_decur.export import export_checkpoint
from torchgeo_decur.models import load_decur_state_dicts
from torchgeo_decur.tasks import CoMMTask, DeCURTask, MultimodalSSLTask

from ..conftest import ROOT

NAMES = ['s1', 's2a', 'dem']
CHANNELS = {'s1': 2, 's2a': 12, 'dem': 1}
ENCODERS = {name: {'model': 'resnet18'} for name in NAMES}
TINY = {
    'modalities': NAMES,
    'encoders': ENCODERS,
    'projector_dims': [32, 32],
    'common_dim': 24,
    'optimizer': 'adamw',
    'lr': 1e-3,
    'lr_biases': 1e-3,
}


class ThreeSensors(Dataset[dict[str, Tensor]]):
    """Raw S1 (dB), S2 L2A (digital numbers) and a DEM (metres), two views each."""

    def __init__(self, n: int = 8, size: int = 32) -> None:
        g = torch.Generator().manual_seed(0)
        self.s1 = -15 + 3 * torch.randn(n, 2, 2, size, size, generator=g)
        self.s2 = 1500 + 500 * torch.rand(n, 2, 12, size, size, generator=g)
        self.dem = 300 + 50 * torch.rand(n, 1, size, size, generator=g)

    def __len__(self) -> int:
        return len(self.s1)

    def __getitem__(self, i: int) -> dict[str, Tensor]:
        return {'image1': self.s1[i], 'image2': self.s2[i], 'image3': self.dem[i]}


def batch(n: int = 4) -> dict[str, Tensor]:
    return {
        f'image{i}': torch.randn(n, 2, CHANNELS[name], 32, 32)
        for i, name in enumerate(NAMES, start=1)
    }


def test_three_modalities_from_the_encoders_mapping() -> None:
    task = DeCURTask(**TINY)
    assert list(task.encoders) == list(task.projectors) == NAMES
    recorded = task.hparams['encoders']
    assert {n: e['in_channels'] for n, e in recorded.items()} == CHANNELS
    loss, terms = task.compute_loss(task.views(batch()))
    assert torch.isfinite(loss)
    assert {'loss_intra1', 'loss_intra2', 'loss_intra3'} <= set(terms)
    loss.backward()
    for name in NAMES:  # every encoder is trained
        grad = task.encoders[name].conv1.weight.grad
        assert grad is not None and grad.abs().sum() > 0, name


def test_modality_errors() -> None:
    with pytest.raises(ValueError, match=r"\['s1'\] repeated"):
        DeCURTask(**{**TINY, 'modalities': ['s1', 's2a', 's1']})
    with pytest.raises(ValueError, match='at least two modalities'):
        DeCURTask(**{**TINY, 'modalities': ['s1']})
    with pytest.raises(ValueError, match=r"weighting='official'.*3 given"):
        DeCURTask(**{**TINY, 'weighting': 'official'})
    with pytest.raises(ValueError, match='MultimodalSSLTask is defined for 2'):
        MultimodalSSLTask(modalities=NAMES, encoders=ENCODERS)
    with pytest.raises(ValueError, match='CoMMTask is defined for 2'):
        CoMMTask(modalities=NAMES, encoders=ENCODERS)
    with pytest.raises(ValueError, match=r"encoders names \['rgb'\]"):
        DeCURTask(**{**TINY, 'encoders': {**ENCODERS, 'rgb': {'model': 'resnet18'}}})
    task = DeCURTask(**TINY)
    views = batch()
    views['image3'] = torch.randn(4, 2, 3, 32, 32)
    with pytest.raises(ValueError, match=r'image3 \(dem\) has 3 channels'):
        task.views(views)


def test_deprecated_aliases_warn_and_match_the_mapping() -> None:
    two = {'modalities': ['s1', 's2c'], 'projector_dims': [32, 32]}
    with pytest.warns(DeprecationWarning, match='model1, model2: deprecated'):
        old = DeCURTask(model1='resnet18', model2='resnet18', **two)
    with warnings.catch_warnings():
        warnings.simplefilter('error', DeprecationWarning)
        new = DeCURTask(
            encoders={'s1': {'model': 'resnet18'}, 's2c': {'model': 'resnet18'}},
            **two,
        )
    assert old.hparams['encoders'] == new.hparams['encoders']
    # the mapping wins over an alias of the same modality
    with pytest.warns(DeprecationWarning):
        both = DeCURTask(
            model1='resnet50', encoders={'s1': {'model': 'resnet18'}}, **two
        )
    assert both.hparams['encoders']['s1']['model'] == 'resnet18'
    assert both.hparams['encoders']['s2c']['model'] == 'resnet50'  # the default


def test_fit_checkpoint_and_export_three_encoders(tmp_path: Path) -> None:
    dm = PairedDataModule(
        ThreeSensors,  # type: ignore[arg-type]
        ('s1', 's2a', 'dem'),
        batch_size=4,
        patch_size=32,
        val_fraction=0.0,
        seed=0,
    )
    assert dm.keys == ('image1', 'image2', 'image3')
    torch.manual_seed(0)
    task = DeCURTask(**TINY)
    before = {n: e.conv1.weight.detach().clone() for n, e in task.encoders.items()}
    trainer = Trainer(
        max_steps=2,
        accelerator='cpu',
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
    )
    trainer.fit(task, datamodule=dm)
    for name, weight in before.items():
        assert not torch.equal(task.encoders[name].conv1.weight, weight), name
    assert 'train_emb_std_dem' in trainer.logged_metrics  # monitors of all three
    path = tmp_path / 'three.ckpt'
    trainer.save_checkpoint(path)

    with warnings.catch_warnings():  # a new checkpoint uses no alias
        warnings.simplefilter('error', DeprecationWarning)
        loaded = DeCURTask.load_from_checkpoint(path, map_location='cpu')
    for key, value in task.state_dict().items():
        torch.testing.assert_close(loaded.state_dict()[key], value)

    written = export_checkpoint(path, tmp_path / 'export')
    assert set(written) == {*NAMES, 'joint', 'metadata'}
    x = torch.randn(2, 1, 32, 32)
    model = timm.create_model('resnet18', in_chans=1, num_classes=0).eval()
    model.load_state_dict(torch.load(written['dem'], weights_only=True))
    task.eval()
    torch.testing.assert_close(model(x), task.encoders['dem'](x))
    assert list(load_decur_state_dicts(written['joint'])) == NAMES


def test_a_config_of_0_1_still_trains(ssl4eo_root: Path, tmp_path: Path) -> None:
    """conf/decur_s1s2_demo.yaml as 0.1 wrote it (model1, in_channels1, ...)."""
    config = yaml.safe_load((ROOT / 'conf' / 'decur_s1s2_demo.yaml').read_text())
    init = config['model']['init_args']
    del init['encoders']
    init |= {'model1': 'resnet18', 'model2': 'resnet18'}
    init |= {'in_channels1': 2, 'in_channels2': 13}
    old = tmp_path / 'old.yaml'
    old.write_text(yaml.safe_dump(config))
    args = ['fit', '--config', str(old), '--data.init_args.root', str(ssl4eo_root)]
    args += ['--data.init_args.batch_size=2', '--data.init_args.num_workers=0']
    args += ['--trainer.fast_dev_run=true', '--trainer.accelerator=cpu']
    args += ['--trainer.default_root_dir', str(tmp_path)]
    with pytest.warns(DeprecationWarning, match='model1, model2, in_channels1'):
        torchgeo_main(args)
