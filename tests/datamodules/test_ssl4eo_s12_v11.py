"""Pretraining batches from SSL4EO-S12 v1.1: shapes, resume, DDP shards."""

from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import torch
from lightning.pytorch import Trainer, seed_everything
from lightning.pytorch.callbacks import Callback, OnExceptionCheckpoint

from torchgeo_decur.datamodules import (
    SSL4EOS12V11DataModule,
    SSL4EOS12V11ShardsDataModule,
)
from torchgeo_decur.tasks import DeCURTask

from ..datasets.v11_data import make_v11, make_v11_shards

pytestmark = pytest.mark.filterwarnings(
    'ignore:The .*dataloader.* does not have many workers'
)

TINY = {
    'model1': 'resnet18',
    'model2': 'resnet18',
    'projector_dims': [32, 32],
    'common_dim': 24,
    'warmup_epochs': 0,
}


class Recorder:
    """A dataset transform that writes the location of every sample it sees.

    One file per sample in *folder*, from any process and worker.
    """

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def __call__(self, sample: dict[str, Any]) -> dict[str, Any]:
        path = self.folder / f'{torch.randint(2**62, ()).item()}.txt'
        path.write_text(sample['location'])
        return sample


class Preempt(Callback):
    """Raise after a given training step, as a killed job would stop."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_end(self, trainer: Trainer, *args: Any) -> None:
        if trainer.global_step == self.step:
            raise RuntimeError('preempted')


def test_batches(ssl4eo_v11_root: Path) -> None:
    datamodule = SSL4EOS12V11DataModule(
        root=str(ssl4eo_v11_root), batch_size=3, patch_size=16, val_fraction=0.0
    )
    datamodule.setup('fit')
    assert len(datamodule.train_dataset) == 6
    batch = next(iter(datamodule.train_dataloader()))
    batch = datamodule.on_after_batch_transfer(batch, 0)
    assert batch['image1'].shape == (3, 2, 2, 32, 32)  # no trainer: no crops
    assert batch['image2'].shape == (3, 2, 13, 32, 32)
    assert torch.isfinite(batch['image2']).all()
    l2a = SSL4EOS12V11DataModule(
        root=str(ssl4eo_v11_root), modalities=['S1GRD', 'S2L2A'], batch_size=2
    )
    assert l2a.modalities == ('s1', 's2a')
    with pytest.raises(ValueError, match=r"two or more of the v1.1 folders \['S1GRD'"):
        SSL4EOS12V11DataModule(modalities=['S1GRD', 'S2RGB'])


def train(root: Path, out: Path, callbacks: list[Callback], ckpt: Path | None) -> Any:
    seed_everything(0)
    task = DeCURTask(**TINY)
    datamodule = SSL4EOS12V11DataModule(
        root=str(root), batch_size=2, patch_size=16, val_fraction=0.0
    )
    trainer = Trainer(
        max_epochs=2,
        accelerator='cpu',
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=callbacks,
        default_root_dir=out,
    )
    trainer.fit(task, datamodule=datamodule, ckpt_path=ckpt)
    return task, trainer


def test_resumed_run_equals_uninterrupted(
    ssl4eo_v11_root: Path, tmp_path: Path
) -> None:
    """As exact as v1's pipeline: same seeds, order, timestamps and views."""
    whole, trainer = train(ssl4eo_v11_root, tmp_path / 'a', [], None)
    assert trainer.global_step == 6  # 3 steps per epoch
    stop = [Preempt(4), OnExceptionCheckpoint(tmp_path / 'b', filename='preempted')]
    with pytest.raises(RuntimeError, match='preempted'):
        train(ssl4eo_v11_root, tmp_path / 'b', stop, None)
    resumed, trainer = train(
        ssl4eo_v11_root, tmp_path / 'c', [], tmp_path / 'b' / 'preempted.ckpt'
    )
    assert trainer.global_step == 6
    expected = whole.state_dict()
    for key, value in resumed.state_dict().items():
        torch.testing.assert_close(value, expected[key], rtol=1e-5, atol=1e-6, msg=key)


@pytest.mark.slow
def test_two_processes_two_workers_read_every_location_once(tmp_path: Path) -> None:
    root = make_v11(tmp_path / 'v11', files=2, locations=4, size=16)  # 8 locations
    seen = tmp_path / 'seen'
    seen.mkdir()
    datamodule = SSL4EOS12V11DataModule(
        root=str(root),
        batch_size=2,
        num_workers=2,
        patch_size=16,
        val_fraction=0.0,
        return_metadata=True,
        transforms=Recorder(seen),
    )
    trainer = Trainer(
        max_epochs=1,
        accelerator='cpu',
        devices=2,
        strategy='ddp_spawn',
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
    )
    trainer.fit(DeCURTask(**TINY), datamodule=datamodule)
    counts = Counter(p.read_text() for p in seen.iterdir())
    assert len(counts) == 8 and set(counts.values()) == {1}, counts


def test_streamed_epochs(ssl4eo_v11_shards_root: Path) -> None:
    datamodule = SSL4EOS12V11ShardsDataModule(
        root=str(ssl4eo_v11_shards_root),
        modalities=['S1GRD', 'S2L2A'],
        batch_size=2,
        seed=3,
        return_metadata=True,
    )
    datamodule.setup('fit')
    loader = datamodule.train_dataloader()
    epochs = [[loc for batch in loader for loc in batch['location']] for _ in range(2)]
    for locations in epochs:  # every location once (3 batches of 2)
        assert len(locations) == 6 and len(set(locations)) == 6
    assert epochs[0] != epochs[1]  # a new shard order
    batch = datamodule.on_after_batch_transfer(next(iter(loader)), 0)
    assert batch['image2'].shape == (2, 2, 12, 32, 32)
    assert batch['image2'].dtype == torch.float32
    state = datamodule.state_dict()
    assert state['seed'] == 3
    again = SSL4EOS12V11ShardsDataModule(
        root=str(ssl4eo_v11_shards_root),
        modalities=['S1GRD', 'S2L2A'],
        batch_size=2,
        return_metadata=True,
    )
    again.load_state_dict({'seed': 3, 'epoch': 1})
    again.setup('fit')
    resumed = [loc for b in again.train_dataloader() for loc in b['location']]
    assert resumed == epochs[1]  # the resumed epoch streams as it did
    with pytest.raises(ValueError, match='modalities must be two or more of'):
        SSL4EOS12V11ShardsDataModule(modalities=['S1GRD', 'NDVI'])


@pytest.mark.slow
def test_streamed_shards_under_ddp_read_every_location_once(tmp_path: Path) -> None:
    """2 processes x 2 workers over 4 shards: every location once per epoch."""
    root = make_v11_shards(tmp_path / 'shards', shards=4, locations=2, size=16,
                           modalities=('S1GRD', 'S2L1C'))  # fmt: skip
    seen = tmp_path / 'seen'
    seen.mkdir()
    datamodule = SSL4EOS12V11ShardsDataModule(
        root=str(root),
        batch_size=2,
        num_workers=2,
        patch_size=16,
        return_metadata=True,
        transforms=Recorder(seen),
    )
    trainer = Trainer(
        max_epochs=1,
        accelerator='cpu',
        devices=2,
        strategy='ddp_spawn',
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
    )
    trainer.fit(DeCURTask(**TINY), datamodule=datamodule)
    counts = Counter(p.read_text() for p in seen.iterdir())
    assert len(counts) == 8 and set(counts.values()) == {1}, counts
