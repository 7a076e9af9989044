"""Collapse monitors: the numbers, the warning, and what a run logs."""

import csv
import warnings
from pathlib import Path

import pytest
import torch
from lightning.pytorch.loggers import CSVLogger

from torchgeo_decur.monitors import CollapseMonitor, effective_rank, embedding_std
from torchgeo_decur.tasks import DeCURTask, MultimodalSSLTask

from .tasks.test_decur import TINY, PairedDataModule, trainer


def test_embedding_std() -> None:
    z = torch.tensor([[0.0, 1.0], [2.0, 1.0], [4.0, 1.0]])
    assert float(embedding_std(z)) == pytest.approx(1.0)  # (2 + 0) / 2
    assert float(embedding_std(torch.ones(5, 3))) == 0.0


def test_effective_rank() -> None:
    g = torch.Generator().manual_seed(0)
    spread = torch.randn(4096, 8, generator=g)
    assert 7.5 < float(effective_rank(spread)) <= 8.0  # every direction
    line = torch.randn(64, 1, generator=g) * torch.randn(1, 8, generator=g)
    assert float(effective_rank(line + 3.0)) == pytest.approx(1.0, abs=1e-3)
    assert float(effective_rank(torch.full((6, 4), 2.0))) == 0.0  # all the same


def test_monitor_warns_once() -> None:
    monitor = CollapseMonitor(every=2, min_std=1e-3, min_rank=1.5)
    healthy = {'s1': torch.randn(16, 8), 's2c': torch.randn(16, 8)}
    out = monitor(healthy, step=2)
    assert set(out) == {'emb_std_s1', 'emb_std_s2c', 'eff_rank_s1', 'eff_rank_s2c'}
    assert set(monitor(healthy, step=3)) == {'emb_std_s1', 'emb_std_s2c'}
    collapsed = {'s1': torch.ones(16, 8), 's2c': torch.randn(16, 8)}
    with pytest.warns(UserWarning, match=r'collapsed at step 4 \(s1: embedding std'):
        monitor(collapsed, step=4)
    with warnings.catch_warnings():  # once only
        warnings.simplefilter('error')
        monitor(collapsed, step=6)
    with pytest.raises(ValueError, match='min_rank must be >= 0'):
        CollapseMonitor(min_rank=-1)


def read_metrics(folder: Path) -> list[dict[str, str]]:
    (path,) = folder.rglob('metrics.csv')
    with path.open() as f:
        return list(csv.DictReader(f))


@pytest.mark.parametrize('task_class', [DeCURTask, MultimodalSSLTask])
def test_runs_log_the_monitors(task_class: type, tmp_path: Path) -> None:
    kwargs = dict(TINY, monitor_every=1, warmup_epochs=0)
    if task_class is MultimodalSSLTask:
        kwargs.pop('common_dim')
        kwargs['method'] = 'barlow_cross'
    task = task_class(**kwargs)
    t = trainer(tmp_path, max_steps=2, logger=CSVLogger(tmp_path), log_every_n_steps=1)
    t.fit(task, datamodule=PairedDataModule(batch_size=4, n=8))
    columns = set(read_metrics(tmp_path)[0])
    for name in ('s1', 'rgb'):
        assert f'train_emb_std_{name}' in columns
        assert f'train_eff_rank_{name}' in columns
    if task_class is DeCURTask:
        assert {'train_offdiag', 'train_unique_absdiag', 'train_common_diag'} <= columns


def test_a_collapsed_model_warns(tmp_path: Path) -> None:
    task = DeCURTask(**TINY, warmup_epochs=0, lr=0.0)
    for projector in task.projectors.values():  # every embedding the same
        for p in projector.parameters():
            torch.nn.init.zeros_(p)
    with pytest.warns(UserWarning, match='look collapsed at step 0'):
        trainer(tmp_path, max_steps=1).fit(
            task, datamodule=PairedDataModule(batch_size=4, n=8)
        )
