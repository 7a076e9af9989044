import math
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from jsonargparse import ArgumentParser
from lightning.pytorch import LightningDataModule, Trainer
from lightning.pytorch.callbacks import ModelCheckpoint
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from torchgeo_decur import modalities as modalities_module
from torchgeo_decur.modalities import (
    S2_L1C_BANDS,
    Modality,
    dem_augmentation,
    get_modality,
    register_modality,
)
from torchgeo_decur.tasks import DeCURTask
from torchgeo_decur.transforms import Scale

from ..conftest import ROOT

TINY = {
    'model1': 'resnet18',
    'model2': 'resnet18',
    'in_channels1': 2,
    'in_channels2': 3,
    'modalities': ['s1', 'rgb'],
    'projector_dims': [64, 64, 64],
    'common_dim': 48,
}


class PairedViews(Dataset[dict[str, Tensor]]):
    """Two modalities driven by one latent scene plus modality-unique parts.

    Each view adds its own noise, so the views of a modality and the two
    modalities share information a network can learn to correlate.
    """

    def __init__(self, n: int = 32, size: int = 32, seed: int = 0) -> None:
        g = torch.Generator().manual_seed(seed)
        self.latent = torch.rand(n, 4, 4, 4, generator=g)
        self.size = size
        self.mix1 = torch.randn(2, 4, generator=g)
        self.mix2 = torch.randn(3, 4, generator=g)

    def __len__(self) -> int:
        return len(self.latent)

    def __getitem__(self, i: int) -> dict[str, Tensor]:
        up = torch.nn.functional.interpolate(
            self.latent[i : i + 1], size=self.size, mode='nearest'
        )[0]
        m1 = torch.einsum('ck,khw->chw', self.mix1, up)
        m2 = torch.einsum('ck,khw->chw', self.mix2, up)
        views1 = torch.stack([m1 + 0.3 * torch.randn_like(m1) for _ in range(2)])
        views2 = torch.stack([m2 + 0.3 * torch.randn_like(m2) for _ in range(2)])
        return {'image1': views1, 'image2': views2}


class PairedDataModule(LightningDataModule):
    def __init__(self, batch_size: int = 16, n: int = 32) -> None:
        super().__init__()
        self.batch_size = batch_size
        self.n = n

    def train_dataloader(self) -> DataLoader[dict[str, Tensor]]:
        return DataLoader(
            PairedViews(self.n),
            batch_size=self.batch_size,
            shuffle=True,
            drop_last=True,
        )


def trainer(tmp_path: Path, **kwargs: object) -> Trainer:
    defaults: dict[str, object] = {
        'accelerator': 'cpu',
        'logger': False,
        'enable_checkpointing': False,
        'enable_progress_bar': False,
        'enable_model_summary': False,
        'default_root_dir': tmp_path,
    }
    defaults.update(kwargs)
    return Trainer(**defaults)  # type: ignore[arg-type]


def test_forward_shapes() -> None:
    task = DeCURTask(**TINY)
    f1, f2 = task(torch.randn(2, 2, 32, 32), torch.randn(2, 3, 32, 32))
    assert f1.shape == f2.shape == (2, 512)
    assert task.criterion.common_dim == 48
    assert task.projector1 is not task.projector2


def test_deformable_attention_follows_the_weights(tmp_path: Path) -> None:
    plain = DeCURTask(**TINY)
    assert plain.hparams['deformable_attention'] is False  # None resolved
    # weights of one encoder with blocks: both encoders get their own
    rda = DeCURTask(**TINY, deformable_attention=True)
    path = tmp_path / 'rda.ckpt'
    torch.save(
        {'hyper_parameters': dict(rda.hparams), 'state_dict': rda.state_dict()}, path
    )
    mixed = DeCURTask(**TINY, weights2=str(path))
    assert mixed.hparams['deformable_attention'] is True
    assert mixed.backbone1.da_l3 is not mixed.backbone2.da_l3
    torch.testing.assert_close(
        mixed.backbone2.da_l4.rpe_table, rda.backbone2.da_l4.rpe_table
    )


def test_common_share_default() -> None:
    task = DeCURTask(**{**TINY, 'common_dim': None, 'common_share': 0.75})
    assert task.criterion.common_dim == 48


def test_paper_defaults() -> None:
    """The defaults a YAML gets (LightningCLI's parser, base arguments included)."""
    parser = ArgumentParser()
    parser.add_class_arguments(DeCURTask, 'model')
    defaults = vars(parser.get_defaults()['model'])
    # model1/model2 are deprecated aliases: None, and the encoder is ResNet-50
    assert defaults['model1'] is defaults['model2'] is None
    assert defaults['encoders'] is None
    # the base's arguments reach the CLI through **kwargs (jsonargparse follows
    # them; a kwargs.get('modalities') in DeCURTask.__init__ once hid it)
    assert tuple(defaults['modalities']) == ('s1', 's2c')
    task = DeCURTask(projector_dims=[64, 64])
    assert [e['model'] for e in task.hparams['encoders'].values()] == ['resnet50'] * 2
    assert list(defaults['projector_dims']) == [8192, 8192, 8192]
    assert defaults['common_share'] == 0.875
    assert defaults['lambd'] == 0.0051
    assert (defaults['lr'], defaults['lr_biases']) == (0.2, 0.0048)
    assert defaults['weight_decay'] == 1e-6
    assert defaults['warmup_epochs'] == 0  # paper, Appendix B: no warm-up
    assert defaults['weighting'] == 'paper'


def test_in_channels_from_modalities() -> None:
    task = DeCURTask(**{**TINY, 'in_channels1': None, 'in_channels2': None})
    channels = [e['in_channels'] for e in task.hparams['encoders'].values()]
    assert channels == [2, 3]
    # an unregistered name is refused even with its channel count (a typo
    # trained and exported encoders without bands); registered, it is recorded
    with pytest.raises(ValueError, match="'thermal' is not registered"):
        DeCURTask(**{**TINY, 'modalities': ['s1', 'thermal'], 'in_channels2': 1})
    thermal = Modality('thermal', ('LWIR',), lambda: Scale(330.0), dem_augmentation)
    register_modality(thermal)
    try:
        task = DeCURTask(**{**TINY, 'modalities': ['s1', 'thermal'], 'in_channels2': 1})
        assert task.backbone2.conv1.in_channels == 1
        checkpoint: dict[str, object] = {}
        task.on_save_checkpoint(checkpoint)
        record = checkpoint['torchgeo_decur']['modalities'][1]  # type: ignore[index]
        assert (record['name'], record['bands']) == ('thermal', ['LWIR'])
    finally:
        modalities_module._REGISTRY.pop('thermal')


def test_weighting_reaches_the_loss() -> None:
    assert DeCURTask(**TINY).criterion.weighting == 'paper'
    task = DeCURTask(**TINY, weighting='official')
    assert task.criterion.weighting == 'official'
    assert task.hparams['weighting'] == 'official'
    with pytest.raises(ValueError, match='weighting'):
        DeCURTask(**TINY, weighting='mean')


def test_checkpoint_records_bands_and_preprocessing() -> None:
    task = DeCURTask(**{**TINY, 'modalities': ['s1', 'rgb']})
    checkpoint: dict[str, object] = {}
    task.on_save_checkpoint(checkpoint)
    record = checkpoint['torchgeo_decur']
    assert record == {
        'modalities': [
            {
                'name': 's1',
                'bands': ['VV', 'VH'],
                'normalisation': get_modality('s1').description,
            },
            {
                'name': 'rgb',
                'bands': ['R', 'G', 'B'],
                'normalisation': '8-bit RGB divided by 255',
            },
        ]
    }


@pytest.mark.parametrize(
    ('kwargs', 'match'),
    [
        ({'common_dim': 65}, 'common_dim=65'),
        ({'common_dim': 0}, 'common_dim=0'),
        ({'common_dim': None, 'common_share': 1.5}, 'common_share'),
        (
            {'modalities': ['s1', 'lidar'], 'in_channels2': None},
            "'lidar' is not registered",
        ),
        ({'in_channels2': 4}, "'rgb' has 3 bands"),
        ({'modalities': ['s1']}, 'two modalities'),
        ({'in_channels1': 0}, 'in_channels'),
        ({'optimizer': 'sgd'}, "optimizer must be 'lars' or 'adamw'"),
    ],
)
def test_bad_arguments(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        DeCURTask(**{**TINY, **kwargs})


def test_in_channels_must_match_data() -> None:
    task = DeCURTask(**TINY)
    batch = {
        'image1': torch.randn(2, 2, 2, 32, 32),
        'image2': torch.randn(2, 2, 4, 32, 32),
    }
    message = (
        r"image2 \(rgb\) has 4 channels but its encoder takes 3 \(encoders\['rgb'\]"
    )
    with pytest.raises(ValueError, match=message):
        task.training_step(batch, 0)
    with pytest.raises(KeyError, match='image1'):
        task.training_step({'image2': batch['image2']}, 0)
    with pytest.raises(ValueError, match='two views'):
        task.training_step({**batch, 'image1': torch.randn(2, 2, 32, 32)}, 0)


def test_parameter_groups_follow_paper() -> None:
    task = DeCURTask(**TINY)
    weights, biases = task.parameter_groups()
    assert weights['lr'] == 0.2 and weights['weight_decay'] == 1e-6
    assert biases['lr'] == 0.0048 and biases['weight_decay'] == 0.0
    bias_ids = {id(p) for p in biases['params']}
    bn = task.backbone1.bn1
    assert id(bn.weight) in bias_ids and id(bn.bias) in bias_ids
    assert id(task.backbone1.conv1.weight) not in bias_ids
    n = sum(1 for _ in task.parameters())
    assert len(weights['params']) + len(biases['params']) == n


def test_optimizer_and_schedule(tmp_path: Path) -> None:
    task = DeCURTask(**TINY, warmup_epochs=1)
    t = trainer(tmp_path, max_epochs=4)
    t.fit(task, datamodule=PairedDataModule())  # 2 steps per epoch, 8 in all
    optimizer = task.optimizers().optimizer  # type: ignore[union-attr]
    from lightly.utils.lars import LARS

    assert isinstance(optimizer, LARS)
    scheduler = task.lr_schedulers()
    assert scheduler.warmup_epochs == 2 and scheduler.max_epochs == 8  # type: ignore[union-attr]
    # cosine decay: the lr of the weights ends far below its peak
    assert optimizer.param_groups[0]['lr'] < 0.2 * 0.2


def test_constant_schedule(tmp_path: Path) -> None:
    """CoMM's setting: after the warm-up the learning rate stays where it is."""
    task = DeCURTask(
        **TINY, optimizer='adamw', lr=3e-4, lr_biases=3e-4, lr_schedule='constant'
    )
    t = trainer(tmp_path, max_epochs=2)
    t.fit(task, datamodule=PairedDataModule())
    weights, biases = task.optimizers().optimizer.param_groups  # type: ignore[union-attr]
    assert weights['lr'] == pytest.approx(3e-4) and biases['lr'] == pytest.approx(3e-4)
    with pytest.raises(ValueError, match='lr_schedule'):
        DeCURTask(**TINY, lr_schedule='step')  # type: ignore[arg-type]


def test_adamw_for_transformers(tmp_path: Path) -> None:
    """The authors' MiT / ViT / deformable-attention setting: AdamW, 1e-4."""
    task = DeCURTask(
        **TINY, optimizer='adamw', lr=1e-4, lr_biases=1e-4, weight_decay=0.01
    )
    t = trainer(tmp_path, max_epochs=2)
    t.fit(task, datamodule=PairedDataModule())
    optimizer = task.optimizers().optimizer  # type: ignore[union-attr]
    assert isinstance(optimizer, torch.optim.AdamW)
    weights, biases = optimizer.param_groups
    assert weights['weight_decay'] == 0.01 and biases['weight_decay'] == 0.0
    assert 0 < weights['lr'] < 1e-4  # cosine decay from 1e-4
    assert optimizer.state  # it stepped


def test_weight_decay_on_every_parameter() -> None:
    """The authors' latest code: AdamW's weight decay on biases and norms too."""
    task = DeCURTask(
        **TINY, optimizer='adamw', weight_decay=0.01, weight_decay_biases=0.01
    )
    weights, biases = task.parameter_groups()
    assert weights['weight_decay'] == biases['weight_decay'] == 0.01
    assert task.hparams['weight_decay_biases'] == 0.01


def test_mit_encoders(tmp_path: Path) -> None:
    """MiT (SegFormer's encoder), registered with timm, as in the RGB-HHA runs."""
    task = DeCURTask(
        **{
            **TINY,
            'model1': 'mit_b0',
            'model2': 'mit_b0',
            'in_channels1': 2,
            'modalities': ['s1', 'rgb'],
        },
        optimizer='adamw',
        lr=1e-4,
        lr_biases=1e-4,
    )
    before = task.backbone2.patch_embed1.proj.weight.detach().clone()
    t = trainer(tmp_path, max_steps=1)
    t.fit(task, datamodule=PairedDataModule(batch_size=4, n=4))
    assert task.backbone1.num_features == 256
    assert not torch.equal(before, task.backbone2.patch_embed1.proj.weight)


def test_training_loss_falls(tmp_path: Path) -> None:
    torch.manual_seed(0)
    task = DeCURTask(**TINY, warmup_epochs=0)
    losses: list[float] = []

    class Record(ModelCheckpoint):
        def on_train_batch_end(self, trainer, module, outputs, batch, idx):
            losses.append(float(outputs['loss']))

    t = trainer(
        tmp_path, max_epochs=15, callbacks=[Record()], enable_checkpointing=True
    )
    t.fit(task, datamodule=PairedDataModule(batch_size=16, n=32))
    assert all(math.isfinite(x) for x in losses)
    first, last = sum(losses[:4]) / 4, sum(losses[-4:]) / 4
    assert last < 0.7 * first, (first, last)
    for key in (
        'train_loss',
        'train_loss_common',
        'train_loss_unique',
        'train_loss_intra1',
        'train_loss_intra2',
        'train_common_diag',
        'train_unique_diag',
    ):
        assert key in t.callback_metrics


def test_vit_small_encoders(tmp_path: Path) -> None:
    task = DeCURTask(
        **{
            **TINY,
            'model1': 'vit_small_patch16_224',
            'model2': 'vit_small_patch16_224',
        },
        model_kwargs1={'img_size': 32},
        model_kwargs2={'img_size': 32},
    )
    t = trainer(tmp_path, max_steps=1)
    t.fit(task, datamodule=PairedDataModule(batch_size=4, n=4))
    assert task.backbone1.num_features == 384


def test_checkpoints_are_never_overwritten(tmp_path: Path) -> None:
    ckpt_dir = tmp_path / 'ckpt'
    for _ in range(2):
        task = DeCURTask(**TINY)
        t = trainer(
            tmp_path,
            max_steps=1,
            enable_checkpointing=True,
            callbacks=[ModelCheckpoint(dirpath=ckpt_dir, save_last=True)],
        )
        t.fit(task, datamodule=PairedDataModule(batch_size=4, n=4))
        if _ == 0:
            first = {p.name: p.read_bytes() for p in ckpt_dir.glob('*.ckpt')}
    files = {p.name: p.read_bytes() for p in ckpt_dir.glob('*.ckpt')}
    assert len(files) == 2 * len(first)
    for name, content in first.items():
        assert files[name] == content


@pytest.mark.slow
def test_paper_config_one_step_on_fixture(ssl4eo_root: Path, tmp_path: Path) -> None:
    """conf/decur_s1s2.yaml at full model size: one real optimisation step.

    The config's sync_batchnorm is a no-op on one device; under DDP it needs
    GPUs (PyTorch's SyncBatchNorm has no CPU implementation).
    """
    config = yaml.safe_load((ROOT / 'conf' / 'decur_s1s2.yaml').read_text())
    assert config['trainer']['sync_batchnorm'] is True
    assert config['trainer']['devices'] == 1
    assert config['data']['init_args']['batch_size'] == 256  # global, on 1 device
    out = tmp_path / 'run'
    cmd = [
        sys.executable,
        '-m',
        'torchgeo',
        'fit',
        '--config',
        str(ROOT / 'conf' / 'decur_s1s2.yaml'),
        '--data.init_args.root',
        str(ssl4eo_root),
        '--trainer.max_steps=1',
        '--trainer.accelerator=cpu',
        '--trainer.default_root_dir',
        str(out),
        '--trainer.enable_progress_bar=false',
    ]
    result = subprocess.run(
        cmd, capture_output=True, text=True, cwd=tmp_path, timeout=900
    )
    assert result.returncode == 0, result.stderr[-3000:]
    checkpoints = list(out.rglob('*.ckpt'))
    assert checkpoints, result.stderr[-3000:]
    files = [p for p in out.rglob('*') if p.is_file() and not p.is_symlink()]
    written = sum(p.stat().st_size for p in files)
    assert written < 3e9, sorted(p.name for p in files)  # last.ckpt is a link
    assert [p.name for p in checkpoints if p.is_symlink()] == ['last.ckpt']
    ckpt = torch.load(checkpoints[0], map_location='cpu', weights_only=False)
    assert ckpt['global_step'] == 1
    hp = ckpt['hyper_parameters']
    assert hp['model1'] is hp['model2'] is None  # the config uses encoders
    assert list(hp['projector_dims']) == [8192, 8192, 8192] and hp['common_dim'] == 7168
    assert hp['warmup_epochs'] == 0 and hp['weighting'] == 'paper'
    recorded = ckpt['torchgeo_decur']['modalities']
    assert [m['bands'] for m in recorded] == [['VV', 'VH'], list(S2_L1C_BANDS)]
    assert hp['encoders'] == {
        's1': {'model': 'resnet50', 'in_channels': 2, 'model_kwargs': {}},
        's2c': {'model': 'resnet50', 'in_channels': 13, 'model_kwargs': {}},
    }
    state = ckpt['state_dict']
    assert state['projectors.s1.layers.6.weight'].shape == (8192, 8192)
    assert state['encoders.s1.conv1.weight'].shape[1] == 2
    assert state['encoders.s2c.conv1.weight'].shape[1] == 13
    shutil.rmtree(out)  # 2+ GB of checkpoint


def test_lightning_ddp_two_cpu_processes(tmp_path: Path) -> None:
    """DeCURTask trains under Lightning's DDP (2 CPU processes, gloo)."""
    torch.manual_seed(0)
    task = DeCURTask(**TINY)
    before = task.backbone1.conv1.weight.detach().clone()
    t = trainer(
        tmp_path,
        devices=2,
        strategy='ddp_spawn',
        max_steps=2,
        enable_checkpointing=True,
        callbacks=[ModelCheckpoint(dirpath=tmp_path / 'ckpt')],
    )
    t.fit(task, datamodule=PairedDataModule(batch_size=4, n=16))
    (ckpt,) = (tmp_path / 'ckpt').glob('*.ckpt')
    state = torch.load(ckpt, map_location='cpu', weights_only=False)
    assert state['global_step'] == 2
    assert not torch.equal(state['state_dict']['encoders.s1.conv1.weight'], before)
