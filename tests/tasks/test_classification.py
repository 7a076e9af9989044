import math
from typing import Any

import pytest
import torch
from lightning import LightningDataModule, Trainer
from torch import Tensor
from torch.optim import SGD
from torch.optim.lr_scheduler import MultiStepLR
from torch.utils.data import DataLoader, Dataset

from torchgeo_decur.tasks.classification import (
    MultimodalClassificationTask,
    MultimodalMultiLabelClassificationTask,
)

from ..conftest import quiet_trainer

# Frozen encoders are in eval mode on purpose (linear mode).
pytestmark = pytest.mark.filterwarnings('ignore:Found .* in eval mode')

NUM_CLASSES = 3
TWO = {'in_channels': (2, 13), 'modalities': ('s1', 's2c')}
SAR_ONLY = {'in_channels': [2], 'modalities': ['s1'], 'input_keys': ['image1']}


class BigEarthNetMMLike(Dataset[dict[str, Tensor]]):
    """Random samples in the BigEarthNet-MM batch contract."""

    def __init__(self, length: int = 4, size: int = 32) -> None:
        self.length = length
        self.size = size

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> dict[str, Tensor]:
        g = torch.Generator().manual_seed(index)
        label = torch.zeros(NUM_CLASSES, dtype=torch.long)
        label[index % NUM_CLASSES] = 1
        label[(index + 1) % NUM_CLASSES] = index % 2
        return {
            'image1': torch.randn(2, self.size, self.size, generator=g),
            'image2': torch.randn(13, self.size, self.size, generator=g),
            'label': label,
        }


class DataModule(LightningDataModule):
    def __init__(self, batch_size: int = 2) -> None:
        super().__init__()
        self.batch_size = batch_size

    def _loader(self) -> DataLoader[dict[str, Tensor]]:
        return DataLoader(BigEarthNetMMLike(), batch_size=self.batch_size)

    def train_dataloader(self) -> DataLoader[dict[str, Tensor]]:
        return self._loader()

    def val_dataloader(self) -> DataLoader[dict[str, Tensor]]:
        return self._loader()

    def test_dataloader(self) -> DataLoader[dict[str, Tensor]]:
        return self._loader()


def make_task(**kwargs: Any) -> MultimodalMultiLabelClassificationTask:
    kwargs = {'model': 'resnet18', 'num_labels': NUM_CLASSES, **kwargs}
    return MultimodalMultiLabelClassificationTask(**kwargs)


def snapshot(module: torch.nn.Module) -> dict[str, Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def changed(before: dict[str, Tensor], module: torch.nn.Module) -> set[str]:
    after = module.state_dict()
    return {k for k, v in before.items() if not torch.equal(v, after[k])}


@pytest.mark.parametrize('modalities', [TWO, SAR_ONLY], ids=['s1s2', 's1'])
@pytest.mark.parametrize('mode', ['linear', 'finetune'])
def test_fit(mode: str, modalities: dict[str, Any]) -> None:
    task = make_task(mode=mode, **modalities)
    encoders = task.model.encoders
    assert len(encoders) == len(modalities['modalities'])
    enc_before = snapshot(encoders)
    head_before = snapshot(task.model.head)

    t = quiet_trainer()
    t.fit(task, datamodule=DataModule())

    assert math.isfinite(float(t.callback_metrics['train_loss']))
    assert changed(head_before, task.model.head) == {'weight', 'bias'}
    enc_changed = changed(enc_before, encoders)
    if mode == 'linear':
        # Parameters AND batch norm running statistics are frozen.
        assert enc_changed == set()
        assert not any(p.requires_grad for p in encoders.parameters())
    else:
        assert any(k.endswith('conv1.weight') for k in enc_changed)
        assert any(k.endswith('running_mean') for k in enc_changed)

    for stage in ('train', 'val'):
        for name in (
            'loss',
            'OverallAveragePrecision',
            'AverageAveragePrecision',
            'OverallF1Score',
            'AverageF1Score',
        ):
            assert f'{stage}_{name}' in t.callback_metrics, f'{stage}_{name}'

    t.test(task, datamodule=DataModule())
    assert 'test_AverageAveragePrecision' in t.callback_metrics
    assert 'test_loss' in t.callback_metrics


def test_authors_protocol_linear_probe() -> None:
    """protocol='authors': frozen parameters, but batch norm in train mode
    updates its running statistics (as the authors' linear probe ran); the
    per-batch mAP is logged beside the global one."""
    task = make_task(mode='linear', protocol='authors', **TWO)
    encoders = task.model.encoders
    before = snapshot(encoders)
    t = quiet_trainer()
    t.fit(task, datamodule=DataModule())
    moved = changed(before, encoders)
    assert moved and all(k.rsplit('.', 1)[-1] in BN_BUFFERS for k in moved)
    assert any(k.endswith('running_mean') for k in moved)
    assert not any(p.requires_grad for p in encoders.parameters())
    task.train()
    assert all(m.training for m in encoders.modules())
    for stage in ('train', 'val'):
        for name in ('BatchOverallAveragePrecision', 'BatchAverageAveragePrecision'):
            value = float(t.callback_metrics[f'{stage}_{name}'])
            assert 0.0 <= value <= 1.0
    ours = make_task(mode='linear', **TWO)
    assert 'BatchOverallAveragePrecision' not in ours.val_metrics


BN_BUFFERS = {'running_mean', 'running_var', 'num_batches_tracked'}


@pytest.mark.parametrize(('mode', 'training'), [('linear', False), ('finetune', True)])
def test_train_mode_keeps_frozen_encoders_in_eval(mode: str, training: bool) -> None:
    task = make_task(mode=mode, **SAR_ONLY)
    task.train()
    assert task.training
    assert task.model.head.training
    assert all(m.training is training for m in task.model.encoders.modules())
    task.eval()
    assert not task.model.head.training


def test_alias() -> None:
    assert MultimodalClassificationTask is MultimodalMultiLabelClassificationTask


@pytest.mark.parametrize(
    ('mode', 'lr', 'expected_lr'),
    [('linear', None, 0.5), ('finetune', None, 0.05), ('linear', 0.1, 0.1)],
)
def test_optimizer(mode: str, lr: float | None, expected_lr: float) -> None:
    task = make_task(mode=mode, lr=lr, weight_decay=1e-4, **SAR_ONLY)
    task.trainer = Trainer(max_epochs=100, logger=False, accelerator='cpu')
    config = task.configure_optimizers()
    assert isinstance(config, dict)
    optimizer = config['optimizer']
    assert isinstance(optimizer, SGD)
    group = optimizer.param_groups[0]
    assert group['lr'] == expected_lr
    assert group['momentum'] == 0.9
    assert group['weight_decay'] == 1e-4
    params = {id(p) for p in group['params']}
    head = {id(p) for p in task.model.head.parameters()}
    if mode == 'linear':
        assert params == head
    else:
        assert params == {id(p) for p in task.parameters()}
    scheduler = config['lr_scheduler']['scheduler']
    assert isinstance(scheduler, MultiStepLR)
    assert sorted(scheduler.milestones) == [60, 80]
    assert scheduler.gamma == 0.1
    assert config['lr_scheduler']['interval'] == 'epoch'


def test_scheduler_milestones_by_epoch() -> None:
    task = make_task(**SAR_ONLY)
    task.trainer = Trainer(max_epochs=10, logger=False, accelerator='cpu')
    config = task.configure_optimizers()
    assert isinstance(config, dict)
    assert sorted(config['lr_scheduler']['scheduler'].milestones) == [6, 8]


def test_scheduler_milestones_by_step() -> None:
    # Unlimited epochs: milestones at 60% / 80% of the steps.
    task = make_task(**SAR_ONLY)
    task.trainer = Trainer(max_epochs=-1, max_steps=50, logger=False)
    config = task.configure_optimizers()
    assert isinstance(config, dict)
    assert sorted(config['lr_scheduler']['scheduler'].milestones) == [30, 40]
    assert config['lr_scheduler']['interval'] == 'step'


def test_predict_step() -> None:
    task = make_task(**TWO).eval()
    batch = next(iter(DataModule().train_dataloader()))
    with torch.no_grad():
        probs = task.predict_step(batch, 0)
    assert probs.shape == (2, NUM_CLASSES)
    assert ((probs >= 0) & (probs <= 1)).all()


def test_defaults() -> None:
    task = MultimodalClassificationTask(model='resnet18')
    # channels from the registered modalities, recorded
    assert tuple(task.hparams['in_channels']) == (2, 13)
    assert tuple(task.hparams['modalities']) == ('s1', 's2c')
    assert tuple(task.hparams['input_keys']) == ('image1', 'image2')
    assert task.hparams['mode'] == 'linear'
    assert task.hparams['task'] == 'multilabel' and task.hparams['num_labels'] == 19
    assert task.model.head.out_features == 19
    # TorchGeo's loss: BCE on logits, the paper's MultiLabelSoftMarginLoss
    assert isinstance(task.criterion, torch.nn.BCEWithLogitsLoss)
    y_hat, y = torch.randn(4, 19), torch.randint(0, 2, (4, 19)).float()
    torch.testing.assert_close(
        task.criterion(y_hat, y), torch.nn.MultiLabelSoftMarginLoss()(y_hat, y)
    )


def test_multiclass() -> None:
    task = MultimodalClassificationTask(
        model='resnet18', task='multiclass', num_classes=4, num_labels=None, loss='ce'
    )
    assert isinstance(task.criterion, torch.nn.CrossEntropyLoss)
    batch = {
        'image1': torch.randn(2, 2, 32, 32),
        'image2': torch.randn(2, 13, 32, 32),
        'label': torch.tensor([0, 3]),
    }
    loss = task.training_step(batch, 0)
    assert torch.isfinite(loss)
    assert 'train_OverallAccuracy' in task.train_metrics.keys()
    assert 'train_AverageAveragePrecision' not in task.train_metrics.keys()
    probs = task.predict_step(batch, 0)
    torch.testing.assert_close(probs.sum(1), torch.ones(2))


def test_unregistered_modality_is_refused() -> None:
    with pytest.raises(ValueError, match=r"'lidar' is not registered.*register_modal"):
        make_task(in_channels=[4], modalities=['lidar'], input_keys=['image1'])
    with pytest.raises(ValueError, match="'lidar' is not registered"):
        make_task(modalities=['lidar'], input_keys=['image1'])


@pytest.fixture(scope='module')
def task() -> MultimodalMultiLabelClassificationTask:
    return make_task(**TWO)


class TestErrors:
    @pytest.mark.parametrize(
        ('kwargs', 'match'),
        [
            (
                {'in_channels': [2], 'modalities': ['s1']},
                'in_channels, modalities and input_keys must have the same length',
            ),
            ({**SAR_ONLY, 'in_channels': [3]}, "'s1' has 2 bands"),
            (
                {
                    'in_channels': [2, 13, 3],
                    'modalities': ['s1', 's2c', 'rgb'],
                    'input_keys': ['a', 'b', 'c'],
                },
                '1 or 2 modalities',
            ),
            ({**SAR_ONLY, 'mode': 'probe'}, "mode must be one of.*'probe'"),
            ({**TWO, 'input_keys': ['image1', 'image1']}, 'input_keys must be'),
            ({**TWO, 'da_blocks': 'own'}, "da_blocks must be 'trained' or"),
            ({**TWO, 'protocol': 'paper'}, "protocol must be 'ours' or 'authors'"),
            ({**TWO, 'da_blocks': 'authors'}, "da_blocks='authors'.*have none"),
        ],
    )
    def test_args(self, kwargs: dict[str, Any], match: str) -> None:
        with pytest.raises(ValueError, match=match):
            make_task(**kwargs)

    def test_missing_input_key(
        self, task: MultimodalMultiLabelClassificationTask
    ) -> None:
        batch = {'image1': torch.randn(2, 2, 32, 32), 'label': torch.ones(2, 3)}
        with pytest.raises(KeyError, match=r"'image2'.*\['image1', 'label'\]"):
            task.training_step(batch, 0)

    def test_missing_label(self, task: MultimodalMultiLabelClassificationTask) -> None:
        batch = {
            'image1': torch.randn(2, 2, 32, 32),
            'image2': torch.randn(2, 13, 32, 32),
        }
        with pytest.raises(KeyError, match=r"'label'.*\['image1', 'image2'\]"):
            task.training_step(batch, 0)

    def test_wrong_channels(self, task: MultimodalMultiLabelClassificationTask) -> None:
        batch = {
            'image1': torch.randn(2, 2, 32, 32),
            'image2': torch.randn(2, 12, 32, 32),
            'label': torch.ones(2, 3),
        }
        with pytest.raises(
            ValueError, match=r"modality 's2c'.*expects 13 channels, got 12"
        ):
            task.training_step(batch, 0)

    def test_wrong_ndim(self, task: MultimodalMultiLabelClassificationTask) -> None:
        batch = {
            'image1': torch.randn(2, 32, 32),
            'image2': torch.randn(2, 13, 32, 32),
            'label': torch.ones(2, 3),
        }
        with pytest.raises(ValueError, match=r"'image1'.*\(N, C, H, W\)"):
            task.training_step(batch, 0)
