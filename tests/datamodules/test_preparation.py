"""One preparation of raw batches: every consumer gets the same tensors."""

import random
from pathlib import Path
from types import SimpleNamespace

import torch
from torch import Tensor, nn
from torch.utils.data import Subset, default_collate

from tests.conftest import fake_trainer
from torchgeo_decur.datamodules import (
    ModalityPreprocessing,
    SSL4EOS12PairDataModule,
    TransferDataModule,
)
from torchgeo_decur.datasets import SSL4EOS12Pair
from torchgeo_decur.explain import prepare_pairs
from torchgeo_decur.lab.probe import extract_features


class Recorder(nn.Module):
    """Records what a probe feeds to ``representation``."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[tuple[Tensor, Tensor]] = []

    def representation(self, x1: Tensor, x2: Tensor) -> Tensor:
        self.seen.append((x1, x2))
        return x1.flatten(1)


def first_views(batch: dict[str, Tensor]) -> tuple[Tensor, Tensor]:
    return batch['image1'][:, 0], batch['image2'][:, 0]


def test_every_consumer_prepares_a_raw_batch_identically(ssl4eo_root: Path) -> None:
    """Pretraining and transfer datamodules, explain and the probes prepare one
    raw batch (one that needs the dataset's finishing step: Sentinel-2 bands
    stored at three resolutions) into the same tensors."""
    kwargs = {'resample': 'batch', 'on_bad_sample': 'raise'}
    dataset = SSL4EOS12Pair(ssl4eo_root, **kwargs)
    random.seed(0)
    raw = default_collate([dataset[0], dataset[1]])
    assert {'image2@6', 'image2@18'} <= set(raw)
    modalities = {'image1': 's1', 'image2': 's2c'}
    expected = first_views(ModalityPreprocessing(modalities, dataset)(raw))
    assert expected[1].shape[1] == 13 and 0 <= float(expected[1].min())

    pretraining = SSL4EOS12PairDataModule(
        root=str(ssl4eo_root), batch_size=2, val_fraction=0, **kwargs
    )
    pretraining.setup('fit')
    transfer = TransferDataModule(
        SSL4EOS12Pair, ('s1', 's2c'), root=str(ssl4eo_root), **kwargs
    )
    transfer.train_dataset = Subset(dataset, [0, 1])
    got = {}
    for name, dm in (('pretraining', pretraining), ('transfer', transfer)):
        dm.aug = dm.train_aug = nn.Identity()  # the preparation alone
        dm.trainer = fake_trainer('train')  # type: ignore[assignment]
        got[name] = first_views(dm.on_after_batch_transfer(dict(raw), 0))
    task = SimpleNamespace(
        hparams={'modalities': ['s1', 's2c'], 'in_channels1': 2, 'in_channels2': 13}
    )
    got['explain'] = prepare_pairs(task, raw, dataset)  # type: ignore[arg-type]
    recorder = Recorder()
    random.seed(0)
    extract_features(recorder, Subset(dataset, [0, 1]), ('s1', 's2c'), batch_size=2)
    ((x1, x2),) = recorder.seen
    got['probe'] = (x1[:, 0], x2[:, 0])
    for name, (a, b) in got.items():
        torch.testing.assert_close(a, expected[0], msg=name)
        torch.testing.assert_close(b, expected[1], msg=name)
