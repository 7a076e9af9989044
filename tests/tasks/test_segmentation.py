import inspect
import math
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from lightning import LightningDataModule
from torch import Tensor
from torch.optim import AdamW
from torch.utils.data import DataLoader, Dataset

from torchgeo_decur.tasks.segmentation import (
    MultimodalSemanticSegmentationTask,
    warmup_poly_factor,
)

from ..conftest import quiet_trainer

# Frozen encoders are in eval mode on purpose (linear mode).
pytestmark = pytest.mark.filterwarnings('ignore:Found .* in eval mode')

NUM_CLASSES = 4
SIZE = 32
TWO = {'in_channels': (3, 1), 'modalities': ('rgb', 'dem')}
RGB_ONLY = {'in_channels': [3], 'modalities': ['rgb'], 'input_keys': ['image1']}


class GeoNRWLike(Dataset[dict[str, Tensor]]):
    """Random samples in the GeoNRW batch contract."""

    def __len__(self) -> int:
        return 4

    def __getitem__(self, index: int) -> dict[str, Tensor]:
        g = torch.Generator().manual_seed(index)
        return {
            'image1': torch.rand(3, SIZE, SIZE, generator=g),
            'image2': torch.randn(1, SIZE, SIZE, generator=g),
            'mask': torch.randint(0, NUM_CLASSES, (SIZE, SIZE), generator=g),
        }


class DataModule(LightningDataModule):
    def _loader(self) -> DataLoader[dict[str, Tensor]]:
        return DataLoader(GeoNRWLike(), batch_size=2)

    def train_dataloader(self) -> DataLoader[dict[str, Tensor]]:
        return self._loader()

    def val_dataloader(self) -> DataLoader[dict[str, Tensor]]:
        return self._loader()

    def test_dataloader(self) -> DataLoader[dict[str, Tensor]]:
        return self._loader()


def make_task(**kwargs: Any) -> MultimodalSemanticSegmentationTask:
    kwargs = {'model': 'resnet18', 'num_classes': NUM_CLASSES, **kwargs}
    return MultimodalSemanticSegmentationTask(**kwargs)


def snapshot(module: torch.nn.Module) -> dict[str, Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def changed(before: dict[str, Tensor], module: torch.nn.Module) -> set[str]:
    after = module.state_dict()
    return {k for k, v in before.items() if not torch.equal(v, after[k])}


@pytest.mark.parametrize(
    ('mode', 'modalities', 'decoder'),
    [
        ('linear', TWO, 'fcn'),
        ('finetune', RGB_ONLY, 'fcn'),
        ('linear', RGB_ONLY, 'unet'),
        ('finetune', TWO, 'deeplabv3plus'),
    ],
    ids=[
        'linear-rgbdem-fcn',
        'finetune-rgb-fcn',
        'linear-rgb-unet',
        'finetune-rgbdem-deeplabv3plus',
    ],
)
def test_fit(mode: str, modalities: dict[str, Any], decoder: str) -> None:
    task = make_task(mode=mode, decoder=decoder, **modalities)
    encoders = task.model.encoders
    assert len(encoders) == len(modalities['modalities'])
    enc_before = snapshot(encoders)
    head_before = snapshot(task.model.head)

    t = quiet_trainer()
    t.fit(task, datamodule=DataModule())

    assert math.isfinite(float(t.callback_metrics['train_loss']))
    head_changed = changed(head_before, task.model.head)
    assert any(k.endswith('weight') for k in head_changed)
    if task.model.decoder is not None:
        assert any(p.requires_grad for p in task.model.decoder.parameters())
    enc_changed = changed(enc_before, encoders)
    if mode == 'linear':
        # Parameters AND batch norm running statistics are frozen.
        assert enc_changed == set()
        assert not any(p.requires_grad for p in encoders.parameters())
    else:
        assert any(k.endswith('conv1.weight') for k in enc_changed)
        assert any(k.endswith('running_var') for k in enc_changed)

    for stage in ('train', 'val'):
        for name in (
            'loss',
            'AverageJaccardIndex',
            'OverallAccuracy',
            'AverageAccuracy',
        ):
            assert f'{stage}_{name}' in t.callback_metrics, f'{stage}_{name}'

    t.test(task, datamodule=DataModule())
    assert 'test_AverageJaccardIndex' in t.callback_metrics


def test_authors_protocol() -> None:
    """protocol='authors': frozen parameters but batch norm statistics move;
    the per-batch mIoU (class 0 ignored) is logged beside the global one."""
    task = make_task(mode='linear', protocol='authors', ignore_index=0, **TWO)
    encoders = task.model.encoders
    before = snapshot(encoders)
    t = quiet_trainer()
    t.fit(task, datamodule=DataModule())
    moved = changed(before, encoders)
    assert any(k.endswith('running_mean') for k in moved)
    assert not any(k.endswith(('weight', 'bias')) for k in moved)
    for stage in ('train', 'val'):
        assert 0.0 <= float(t.callback_metrics[f'{stage}_BatchJaccardIndex']) <= 1.0
        assert f'{stage}_AverageJaccardIndex' in t.callback_metrics
    with pytest.raises(ValueError, match="protocol must be 'ours' or 'authors'"):
        make_task(protocol='paper', **TWO)


@pytest.mark.parametrize('mode', ['linear', 'finetune'])
def test_optimizer(mode: str) -> None:
    task = make_task(mode=mode, weight_decay=0.05, **RGB_ONLY)
    optimizer = task.configure_optimizers()
    assert isinstance(optimizer, AdamW)
    group = optimizer.param_groups[0]
    assert group['lr'] == 1e-4
    assert group['weight_decay'] == 0.05
    params = {id(p) for p in group['params']}
    if mode == 'linear':
        assert params == {id(p) for p in task.model.head.parameters()}
    else:
        assert params == {id(p) for p in task.parameters()}


@pytest.mark.parametrize(('ignore_index', 'expected'), [(None, -1000), (0, 0)])
def test_ignore_index(ignore_index: int | None, expected: int) -> None:
    task = make_task(ignore_index=ignore_index, **RGB_ONLY)
    assert task.criterion.ignore_index == expected
    # Class 0 everywhere but one pixel per image.
    mask = torch.zeros(2, SIZE, SIZE, dtype=torch.long)
    mask[:, 0, 0] = 1
    logits = torch.randn(2, NUM_CLASSES, SIZE, SIZE)
    loss = task.criterion(logits, mask)
    metrics = task.val_metrics.clone()
    metrics(torch.ones_like(mask), mask)
    accuracy = metrics.compute()['val_OverallAccuracy']
    if ignore_index is None:
        torch.testing.assert_close(loss, F.cross_entropy(logits, mask))
        assert accuracy < 0.01
    else:
        # Ignored pixels count neither in the loss nor in the metrics.
        expected_loss = F.cross_entropy(logits[:, :, 0, 0], mask[:, 0, 0])
        torch.testing.assert_close(loss, expected_loss)
        assert accuracy == 1


def test_predict_step() -> None:
    task = make_task(**TWO).eval()
    batch = next(iter(DataModule().train_dataloader()))
    with torch.no_grad():
        probs = task.predict_step(batch, 0)
    assert probs.shape == (2, NUM_CLASSES, SIZE, SIZE)
    torch.testing.assert_close(probs.sum(dim=1), torch.ones(2, SIZE, SIZE))


def test_defaults() -> None:
    task = make_task()
    assert tuple(task.hparams['in_channels']) == (3, 1)
    assert tuple(task.hparams['modalities']) == ('rgb', 'dem')
    assert task.hparams['decoder'] == 'fcn'
    assert task.hparams['mode'] == 'linear'
    assert task.hparams['num_classes'] == NUM_CLASSES
    defaults = inspect.signature(MultimodalSemanticSegmentationTask).parameters
    assert defaults['num_classes'].default == 11
    assert defaults['ignore_index'].default is None


class TestErrors:
    @pytest.mark.parametrize(
        ('kwargs', 'match'),
        [
            (
                {'in_channels': [3, 1], 'modalities': ['rgb']},
                'in_channels, modalities and input_keys must have the same length',
            ),
            ({**RGB_ONLY, 'in_channels': [4]}, "'rgb' has 3 bands"),
            ({**RGB_ONLY, 'decoder': 'pspnet'}, 'decoder must be one of'),
            ({**RGB_ONLY, 'mode': 'frozen'}, 'mode must be one of'),
        ],
    )
    def test_args(self, kwargs: dict[str, Any], match: str) -> None:
        with pytest.raises(ValueError, match=match):
            make_task(**kwargs)

    def test_batch(self) -> None:
        task = make_task(**TWO)
        mask = torch.zeros(2, SIZE, SIZE, dtype=torch.long)
        rgb = torch.rand(2, 3, SIZE, SIZE)
        with pytest.raises(KeyError, match=r"'image2'.*\['image1', 'mask'\]"):
            task.training_step({'image1': rgb, 'mask': mask}, 0)
        dem = torch.rand(2, 1, SIZE, SIZE)
        with pytest.raises(KeyError, match="no target 'mask'"):
            task.training_step({'image1': rgb, 'image2': dem}, 0)
        with pytest.raises(ValueError, match=r"'dem'.*expects 1 channels, got 2"):
            task.training_step(
                {'image1': rgb, 'image2': torch.rand(2, 2, SIZE, SIZE), 'mask': mask},
                0,
            )
        with pytest.raises(ValueError, match='same height and width'):
            task.training_step(
                {'image1': rgb, 'image2': torch.rand(2, 1, 64, 64), 'mask': mask}, 0
            )


RGB_HHA = {
    'model': 'mit_b0',
    'in_channels': (3, 3),
    'modalities': ('rgb_indoor', 'hha'),
    'decoder': 'cmx',
}


class RGBDLike(Dataset[dict[str, Tensor]]):
    """Random RGB + HHA samples with masks of 0..3 and 255 unlabeled."""

    def __len__(self) -> int:
        return 4

    def __getitem__(self, index: int) -> dict[str, Tensor]:
        g = torch.Generator().manual_seed(index)
        mask = torch.randint(0, NUM_CLASSES, (SIZE, SIZE), generator=g)
        mask[:4] = 255
        return {
            'image1': torch.randn(3, SIZE, SIZE, generator=g),
            'image2': torch.randn(3, SIZE, SIZE, generator=g),
            'mask': mask,
        }


class RGBDDataModule(DataModule):
    def _loader(self) -> DataLoader[dict[str, Tensor]]:
        return DataLoader(RGBDLike(), batch_size=2)


def test_cmx_fit() -> None:
    """decoder='cmx': both MiT encoders, the fusion modules and the decoder
    train; unlabeled pixels (255) are ignored."""
    task = make_task(mode='finetune', ignore_index=255, **RGB_HHA)
    model = task.model
    before = {
        name: snapshot(getattr(model, name))
        for name in ('encoders', 'rectify', 'fuse', 'head')
    }
    t = quiet_trainer()
    t.fit(task, datamodule=RGBDDataModule())
    assert math.isfinite(float(t.callback_metrics['train_loss']))
    for name, state in before.items():
        assert changed(state, getattr(model, name)), name
    assert 0 <= float(t.callback_metrics['val_AverageJaccardIndex']) <= 1


def test_cmx_needs_mit_encoders() -> None:
    with pytest.raises(ValueError, match="decoder='cmx' needs two MiT encoders"):
        make_task(decoder='cmx', **TWO)
    with pytest.raises(ValueError, match='decoder must be one of'):
        make_task(decoder='segformer', **TWO)


@pytest.mark.parametrize(
    ('step', 'expected'),
    [(0, 0.0), (5, 0.5), (10, (1 - 10 / 100) ** 0.9), (99, 0.01**0.9), (100, 0.0)],
)
def test_warmup_poly_factor(step: int, expected: float) -> None:
    """CMX's WarmUpPolyLR: linear to 1 over 10 steps, then (1 - step/total)^0.9
    of the whole run's progress."""
    factor = warmup_poly_factor(step, warmup_steps=10, total_steps=100, power=0.9)
    assert factor == pytest.approx(expected)


def test_cmx_optimizer_and_schedule() -> None:
    """CMX's optimiser: weight decay on weights only; the schedule warms up
    over warmup_epochs / max_epochs of the steps and is stepped every step."""
    task = make_task(
        mode='finetune',
        lr=6e-5,
        weight_decay_norms_and_biases=False,
        lr_schedule='warmup_poly',
        warmup_epochs=1,
        ignore_index=255,
        **RGB_HHA,
    )
    t = quiet_trainer(fast_dev_run=False, max_epochs=2, limit_val_batches=0)
    t.fit(task, datamodule=RGBDDataModule())  # 2 steps per epoch: 4 steps, 2 warm-up
    optimizer = t.optimizers[0]
    decay, no_decay = optimizer.param_groups
    assert decay['weight_decay'] == 0.01 and no_decay['weight_decay'] == 0.0
    assert all(p.ndim > 1 for p in decay['params'])
    assert all(p.ndim == 1 for p in no_decay['params'])
    n_params = len(list(task.parameters()))
    assert len(decay['params']) + len(no_decay['params']) == n_params
    config = t.lr_scheduler_configs[0]
    assert config.interval == 'step'
    assert task._schedule_steps() == (4, 2)  # 1 of 2 epochs: 2 of 4 steps
    # after 4 steps of 4 the poly decay has reached 0
    assert decay['lr'] == pytest.approx(0.0)
    factors = [warmup_poly_factor(s, 2, 4, 0.9) for s in range(4)]
    assert factors == pytest.approx([0.0, 0.5, 0.5**0.9, 0.25**0.9])


def test_schedule_errors() -> None:
    with pytest.raises(ValueError, match='lr_schedule must be one of'):
        make_task(lr_schedule='cosine', **TWO)
    with pytest.raises(ValueError, match='warmup_epochs must be >= 0'):
        make_task(lr_schedule='warmup_poly', warmup_epochs=-1, **TWO)
    task = make_task(lr_schedule='warmup_poly', warmup_epochs=2, **TWO)
    t = quiet_trainer(fast_dev_run=False, max_epochs=-1, max_steps=3)
    with pytest.raises(
        ValueError, match='warmup_epochs=2 needs a trainer with max_epochs'
    ):
        t.fit(task, datamodule=DataModule())
