"""MultimodalSSLTask: each baseline trains; each conf/baselines config runs."""

import math
from pathlib import Path

import lightning
import pytest
import torch
import yaml
from lightly.loss import NTXentLoss, VICRegLoss
from lightning.pytorch import LightningDataModule, Trainer
from torch import Tensor
from torch.utils.data import DataLoader, Dataset
from torchgeo.main import main as torchgeo_main

from torchgeo_decur.losses import CLIPLoss, CrossModalBarlowTwinsLoss, CrossSelfLoss
from torchgeo_decur.tasks import MultimodalSSLTask
from torchgeo_decur.tasks.baselines import METHODS, PROJECTOR_DIMS, TEMPERATURES

from ..conftest import ROOT

TINY = {
    'model1': 'resnet18',
    'model2': 'resnet18',
    'in_channels1': 2,
    'in_channels2': 3,
    'modalities': ['s1', 'rgb'],
    'projector_dims': [32, 16],
}

#: Loss class and logged terms of each method.
EXPECTED = {
    'barlow_cross': (CrossModalBarlowTwinsLoss, {'on_diag', 'off_diag', 'diag_mean'}),
    'barlow_single': (
        CrossModalBarlowTwinsLoss,
        {'loss_intra1', 'loss_intra2', 'on_diag1', 'off_diag2', 'diag_mean1'},
    ),
    'clip': (CLIPLoss, {'loss_12', 'loss_21', 'temperature'}),
    'simclr_cross': (NTXentLoss, set()),  # lightly's: no terms
    'vicreg_cross': (VICRegLoss, set()),
    'cross_self': (CrossSelfLoss, {'loss_cross', 'loss_self1', 'loss_self2'}),
}


class RandomPairs(Dataset[dict[str, Tensor]]):
    """Two views of two modalities (2 and 3 channels) of a shared latent."""

    def __init__(self, n: int = 8, size: int = 32) -> None:
        g = torch.Generator().manual_seed(0)
        self.latent = torch.rand(n, 4, size, size, generator=g)
        self.mix1 = torch.randn(2, 4, generator=g)
        self.mix2 = torch.randn(3, 4, generator=g)

    def __len__(self) -> int:
        return len(self.latent)

    def __getitem__(self, i: int) -> dict[str, Tensor]:
        m1 = torch.einsum('ck,khw->chw', self.mix1, self.latent[i])
        m2 = torch.einsum('ck,khw->chw', self.mix2, self.latent[i])
        return {
            'image1': torch.stack([m1 + 0.3 * torch.randn_like(m1) for _ in range(2)]),
            'image2': torch.stack([m2 + 0.3 * torch.randn_like(m2) for _ in range(2)]),
        }


class RandomPairsDataModule(LightningDataModule):
    def __init__(self, batch_size: int = 4, n: int = 8) -> None:
        super().__init__()
        self.batch_size = batch_size
        self.n = n

    def train_dataloader(self) -> DataLoader[dict[str, Tensor]]:
        return DataLoader(
            RandomPairs(self.n), batch_size=self.batch_size, drop_last=True
        )


def fit(task: MultimodalSSLTask, tmp_path: Path, steps: int = 2) -> Trainer:
    trainer = Trainer(
        accelerator='cpu',
        max_steps=steps,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
    )
    trainer.fit(task, datamodule=RandomPairsDataModule())
    return trainer


def batch(n: int = 4, seed: int = 0) -> dict[str, Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {
        'image1': torch.randn(n, 2, 2, 32, 32, generator=g),
        'image2': torch.randn(n, 2, 3, 32, 32, generator=g),
    }


@pytest.mark.parametrize('method', METHODS)
def test_each_method_trains(method: str, tmp_path: Path) -> None:
    torch.manual_seed(0)
    task = MultimodalSSLTask(method, **TINY)  # type: ignore[arg-type]
    loss_class, terms = EXPECTED[method]
    assert isinstance(task.criterion, loss_class)
    watched = {
        name: p.detach().clone()
        for name, p in task.named_parameters()
        if name
        in (
            'encoders.s1.conv1.weight',
            'encoders.rgb.conv1.weight',
            'projectors.s1.layers.0.weight',
            'projectors.rgb.layers.0.weight',
        )
    }
    assert len(watched) == 4
    trainer = fit(task, tmp_path)
    loss = trainer.callback_metrics['train_loss']
    assert math.isfinite(float(loss))
    params = dict(task.named_parameters())
    for name, before in watched.items():
        assert not torch.equal(before, params[name]), name
    logged = {k.removeprefix('train_') for k in trainer.callback_metrics}
    assert terms <= logged, terms - logged
    for key in terms:
        assert math.isfinite(float(trainer.callback_metrics[f'train_{key}']))


def test_clip_temperature_is_trained(tmp_path: Path) -> None:
    task = MultimodalSSLTask('clip', **TINY)
    assert task.hparams['temperature'] == 0.07
    before = float(task.criterion.logit_scale.detach())
    fit(task, tmp_path)
    after = float(task.criterion.logit_scale.detach())
    assert after != before
    assert after <= math.log(100.0)


def test_representation_shape() -> None:
    task = MultimodalSSLTask('simclr_cross', **TINY)
    task.eval()
    x = batch()
    features = task.representation(x['image1'][:, 0], x['image2'][:, 0])
    assert features.shape == (4, 1024)  # 512 pooled features per resnet18


@pytest.mark.filterwarnings('ignore:You are trying to:UserWarning')
def test_cross_views() -> None:
    """'first' uses the first views only; 'both' averages over both pairs."""
    x = batch()
    other = {k: v.clone() for k, v in x.items()}
    for key in other:
        other[key][:, 1] = torch.randn_like(other[key][:, 1])
    losses = {}
    for views in ('first', 'both'):
        torch.manual_seed(0)
        task = MultimodalSSLTask('barlow_cross', **TINY, cross_views=views)  # type: ignore[arg-type]
        with torch.no_grad():
            losses[views] = [float(task.shared_step(b, 'train')) for b in (x, other)]
    assert losses['first'][0] == pytest.approx(losses['first'][1], rel=1e-6)
    assert losses['both'][0] != pytest.approx(losses['both'][1], rel=1e-3)
    # 'both' is the mean of the view-1 pair (= 'first') and the view-2 pair
    with torch.no_grad():
        z = [
            [task.project(m, x[f'image{i}'][:, k]) for k in (0, 1)]
            for i, m in enumerate(('s1', 'rgb'), start=1)
        ]
        pairs = [float(task.criterion(z[0][k], z[1][k])) for k in (0, 1)]
    assert pairs[0] == pytest.approx(losses['first'][0], rel=1e-5)
    assert losses['both'][0] == pytest.approx(sum(pairs) / 2, rel=1e-5)


@pytest.mark.filterwarnings('ignore:You are trying to:UserWarning')
def test_barlow_single_has_no_cross_modal_term() -> None:
    """The sum of one Barlow Twins per modality, each on its own two views."""
    torch.manual_seed(0)
    task = MultimodalSSLTask('barlow_single', **TINY)
    x = batch()
    other = {**x, 'image2': torch.randn_like(x['image2'])}
    with torch.no_grad():
        losses = [task.shared_step(b, 'train') for b in (x, other)]
        intra = [
            [
                task.criterion(*[task.project(m, b[f'image{i}'][:, k]) for k in (0, 1)])
                for i, m in enumerate(('s1', 'rgb'), start=1)
            ]
            for b in (x, other)
        ]
    for loss, (intra1, intra2) in zip(losses, intra, strict=True):
        assert float(loss) == pytest.approx(float(intra1 + intra2), rel=1e-5)
    # changing modality 2 leaves modality 1's term as it was
    assert float(intra[0][0]) == pytest.approx(float(intra[1][0]), rel=1e-6)
    assert float(intra[0][1]) != pytest.approx(float(intra[1][1]), rel=1e-3)


def test_method_defaults_are_resolved_and_recorded() -> None:
    kwargs = {**TINY, 'projector_dims': None}
    task = MultimodalSSLTask('clip', **kwargs)
    assert task.hparams['projector_dims'] == [512, 128] == list(PROJECTOR_DIMS['clip'])
    assert task.projector1.layers[-1].out_features == 128  # type: ignore[index]
    assert task.hparams['temperature'] == TEMPERATURES['clip'] == 0.07
    task = MultimodalSSLTask('simclr_cross', **TINY)
    assert task.hparams['temperature'] == 0.1
    assert task.criterion.temperature == 0.1
    task = MultimodalSSLTask('simclr_cross', **TINY, temperature=1.0)
    assert task.criterion.temperature == 1.0
    task = MultimodalSSLTask('vicreg_cross', **TINY)
    assert (task.criterion.lambda_param, task.criterion.mu_param) == (25.0, 25.0)
    assert task.criterion.nu_param == 1.0
    assert task.hparams['temperature'] is None  # no temperature
    assert PROJECTOR_DIMS['barlow_cross'] == PROJECTOR_DIMS['vicreg_cross']
    assert PROJECTOR_DIMS['barlow_cross'] == (8192, 8192, 8192)


def test_checkpoint_round_trip(tmp_path: Path) -> None:
    task = MultimodalSSLTask('cross_self', **{**TINY, 'projector_dims': None})
    path = tmp_path / 'task.ckpt'
    torch.save(
        {
            'hyper_parameters': dict(task.hparams),
            'state_dict': task.state_dict(),
            'pytorch-lightning_version': lightning.__version__,
        },
        path,
    )
    loaded = MultimodalSSLTask.load_from_checkpoint(path)
    assert loaded.hparams['method'] == 'cross_self'
    assert loaded.hparams['projector_dims'] == [512, 128]  # resolved, recorded
    assert loaded.hparams['temperature'] == 0.1
    for key, value in task.state_dict().items():
        torch.testing.assert_close(loaded.state_dict()[key], value)


@pytest.mark.parametrize(
    ('kwargs', 'match'),
    [
        ({'method': 'simclr'}, "method must be one of .*; got 'simclr'"),
        ({'cross_views': 'all'}, "cross_views must be 'both' or 'first'"),
        ({'optimizer': 'sgd'}, "optimizer must be 'lars' or 'adamw'"),
        ({'method': 'clip', 'temperature': -1.0}, 'temperature must be > 0'),
        ({'method': 'barlow_cross', 'lambd': -1.0}, 'lambd must be >= 0'),
        ({'method': 'vicreg_cross', 'cov_coeff': -1.0}, 'cov_coeff must be >= 0'),
        ({'method': 'cross_self', 'ssl_scale': -1.0}, 'ssl_scale must be >= 0'),
        ({'modalities': ['s1']}, 'two modalities'),
    ],
)
def test_bad_arguments(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        MultimodalSSLTask(**{**TINY, **kwargs})  # type: ignore[arg-type]


# ------------------------------------------------------------------ configs

CONFIGS = sorted((ROOT / 'conf' / 'baselines').glob('*.yaml'))


def test_every_method_has_a_config() -> None:
    methods = {}
    for path in CONFIGS:
        config = yaml.safe_load(path.read_text())
        init = config['model']['init_args']
        methods[path.stem] = init['method']
        assert config['model']['class_path'] == 'torchgeo_decur.tasks.MultimodalSSLTask'
        assert config['data']['class_path'] == (
            'torchgeo_decur.datamodules.SSL4EOS12PairDataModule'
        )
        assert [e['model'] for e in init['encoders'].values()] == ['resnet50'] * 2
        assert init['modalities'] == ['s1', 's2c']
        trainer = config['trainer']
        assert trainer['plugins'][0]['class_path'] == (
            'torchgeo_decur.checkpointing.AtomicCheckpointIO'
        )
        checkpoint = trainer['callbacks'][0]
        assert checkpoint['class_path'] == 'torchgeo_decur.checkpointing.RunCheckpoint'
        assert checkpoint['init_args']['save_last'] == 'link'
    assert {f'{m}_s1s2' for m in METHODS} == set(methods)
    assert all(methods[f'{m}_s1s2'] == m for m in METHODS)


@pytest.mark.filterwarnings('ignore::UserWarning')
@pytest.mark.parametrize('config', CONFIGS, ids=[p.stem for p in CONFIGS])
def test_config_fast_dev_run(config: Path, ssl4eo_root: Path, tmp_path: Path) -> None:
    """Each config through `torchgeo fit`, with ResNet-18 and small projectors."""
    torchgeo_main(
        [
            'fit',
            '--config',
            str(config),
            '--data.init_args.root',
            str(ssl4eo_root),
            '--data.init_args.batch_size=2',
            '--data.init_args.patch_size=32',
            '--data.init_args.num_workers=0',
            '--model.init_args.model1=resnet18',
            '--model.init_args.model2=resnet18',
            '--model.init_args.projector_dims=[16,16]',
            '--trainer.fast_dev_run=true',
            '--trainer.accelerator=cpu',
            '--trainer.default_root_dir',
            str(tmp_path),
            '--trainer.enable_progress_bar=false',
        ]
    )


@pytest.mark.parametrize('method', METHODS)
def test_loss_in_float32_under_autocast(method: str) -> None:
    """Mixed precision runs the encoders in bfloat16; every loss, lightly's
    included, is computed in float32."""
    task = MultimodalSSLTask(method, **TINY)  # type: ignore[arg-type]
    with torch.autocast('cpu', dtype=torch.bfloat16):
        loss, terms = task.compute_loss(task.views(batch()))
    assert loss.dtype == torch.float32
    assert all(v.dtype == torch.float32 for v in terms.values())
