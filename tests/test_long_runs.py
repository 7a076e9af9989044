"""Long pretraining runs: bad files, interruptions, small splits, safe checkpoints."""

import csv
import shutil
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
import yaml
from lightning.pytorch import Callback, Trainer, seed_everything
from lightning.pytorch.callbacks import ModelCheckpoint, OnExceptionCheckpoint
from lightning.pytorch.loggers import CSVLogger
from torchgeo.main import main as torchgeo_main

from torchgeo_decur.checkpointing import (
    AtomicCheckpointIO,
    RunCheckpoint,
    remove_orphans,
)
from torchgeo_decur.datamodules import SSL4EOS12PairDataModule
from torchgeo_decur.guards import FiniteSteps, NonFiniteError, nonfinite_tensors
from torchgeo_decur.lab import make_ssl4eo_s12_demo
from torchgeo_decur.tasks import DeCURTask

from .conftest import ROOT

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


@pytest.fixture(scope='module')
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Eight generated locations in the SSL4EO-S12 layout, 24 px."""
    return make_ssl4eo_s12_demo(
        tmp_path_factory.mktemp('demo') / 'data', num_locations=8, size=24
    )


def seasons(root: Path, modality: str, location: int) -> list[Path]:
    return sorted((root / modality / f'{location:07d}').iterdir())


def damaged_copy(demo: Path, dest: Path) -> tuple[Path, dict[str, Path]]:
    """A copy where three locations have bad files, as real archives do."""
    root = dest / 'data'
    shutil.copytree(demo, root)
    bad = {}
    # location 1: a no-data Sentinel-1 band in every season
    for season in seasons(root, 's1', 1):
        with rasterio.open(season / 'VH.tif', 'r+') as f:
            f.write(np.full((1, 24, 24), np.nan, dtype=np.float32))
    bad['nan'] = seasons(root, 's1', 1)[0] / 'VH.tif'
    # location 2: a truncated GeoTIFF (a partial download)
    path = seasons(root, 's2c', 2)[1] / 'B4.tif'
    path.write_bytes(path.read_bytes()[:400])
    bad['truncated'] = path
    # location 3: a missing band file
    path = seasons(root, 's2c', 3)[2] / 'B11.tif'
    path.unlink()
    bad['missing'] = path
    return root, bad


def fit_config(tmp_path: Path, root: Path, **data: object) -> Path:
    config = {
        'model': {'class_path': 'torchgeo_decur.tasks.DeCURTask', 'init_args': TINY},
        'data': {
            'class_path': 'torchgeo_decur.datamodules.SSL4EOS12PairDataModule',
            'init_args': {
                'root': str(root),
                'batch_size': 2,
                'patch_size': 16,
                'val_fraction': 0.25,
                **data,
            },
        },
        'trainer': {
            'max_epochs': 2,
            'accelerator': 'cpu',
            'default_root_dir': str(tmp_path / 'run'),
            'enable_progress_bar': False,
            'enable_model_summary': False,
            'log_every_n_steps': 1,
            'plugins': [
                {'class_path': 'torchgeo_decur.checkpointing.AtomicCheckpointIO'}
            ],
            'logger': {
                'class_path': 'lightning.pytorch.loggers.CSVLogger',
                'init_args': {'save_dir': str(tmp_path / 'logs')},
            },
        },
    }
    path = tmp_path / 'config.yaml'
    path.write_text(yaml.safe_dump(config))
    return path


def test_bad_files_are_skipped_and_logged(demo: Path, tmp_path: Path) -> None:
    root, bad = damaged_copy(demo, tmp_path)
    config = fit_config(tmp_path, root)
    with pytest.warns(UserWarning, match=r'bad file\(s\) were skipped') as record:
        torchgeo_main(['fit', '--config', str(config)])
    messages = '\n'.join(str(w.message) for w in record)
    (metrics,) = (tmp_path / 'logs').rglob('metrics.csv')
    rows = list(csv.DictReader(metrics.open()))
    skipped = {
        key: [float(r[key]) for r in rows if r.get(key)]
        for key in (
            'train_skipped_samples',
            'train_skipped_seasons',
            'val_skipped_samples',
            'val_skipped_seasons',
        )
    }
    # every epoch logs its counts; location 1 (no readable VH) is replaced
    # whichever split it is in; the warnings name bad files
    assert len(skipped['train_skipped_samples']) == 2
    assert sum(skipped['train_skipped_samples'] + skipped['val_skipped_samples']) >= 2
    assert sum(skipped['train_skipped_seasons'] + skipped['val_skipped_seasons']) >= 8
    assert str(bad['nan']).rsplit('/', 2)[0] in messages
    # training ran through both epochs to a checkpoint
    # (with a logger, Lightning writes them under the logger's version dir)
    checkpoints = list((tmp_path / 'logs').rglob('*.ckpt'))
    assert len(checkpoints) == 1
    ckpt = torch.load(checkpoints[0], map_location='cpu', weights_only=False)
    assert ckpt['epoch'] == 1


def test_bad_file_raises_with_raise(demo: Path, tmp_path: Path) -> None:
    root, bad = damaged_copy(demo, tmp_path)
    for path in bad.values():  # one kind of damage at a time
        clean = tmp_path / 'clean'
        shutil.rmtree(clean, ignore_errors=True)
        shutil.copytree(demo, clean)
        # in every season of the location, so whichever is drawn is bad
        modality, location = path.relative_to(root).parts[:2]
        for season in seasons(clean, modality, int(location)):
            if path.exists():
                shutil.copy(path, season / path.name)
            else:
                (season / path.name).unlink()
        config = fit_config(tmp_path, clean, on_bad_sample='raise', val_fraction=0.0)
        with pytest.raises(
            (FileNotFoundError, ValueError), match=rf'{location}.*{path.name}'
        ):
            torchgeo_main(['fit', '--config', str(config)])


@pytest.mark.filterwarnings('ignore::UserWarning')
def test_demo_config_on_two_locations(ssl4eo_root: Path, tmp_path: Path) -> None:
    """conf/decur_s1s2_demo.yaml on the 2-location fixture: no validation split
    of one sample (which cannot form a batch), training on both."""
    with pytest.warns(UserWarning, match='validation split of 1'):
        torchgeo_main(
            [
                'fit',
                '--config',
                str(ROOT / 'conf' / 'decur_s1s2_demo.yaml'),
                '--data.init_args.root',
                str(ssl4eo_root),
                '--data.init_args.num_workers=0',
                '--data.init_args.patch_size=32',
                '--trainer.max_epochs=2',
                '--trainer.accelerator=cpu',
                '--trainer.default_root_dir',
                str(tmp_path),
                '--trainer.enable_progress_bar=false',
            ]
        )
    assert list(tmp_path.rglob('last.ckpt'))


class Preempt(Callback):
    """Kill the run after a given optimisation step."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_end(self, trainer: Trainer, *args: object) -> None:
        if trainer.global_step == self.step:
            raise RuntimeError('preempted')


def train(demo: Path, tmp_path: Path, callbacks: list[Callback], ckpt: Path | None):
    seed_everything(0)
    task = DeCURTask(**TINY)
    datamodule = SSL4EOS12PairDataModule(
        root=str(demo), batch_size=2, patch_size=16, val_fraction=0.25
    )
    trainer = Trainer(
        max_epochs=2,
        accelerator='cpu',
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=callbacks,
        default_root_dir=tmp_path,
        plugins=[AtomicCheckpointIO()],
    )
    trainer.fit(task, datamodule=datamodule, ckpt_path=ckpt)
    return task, trainer


@pytest.mark.parametrize('step', [4, 5])  # mid-epoch, and the epoch's last step
def test_resumed_run_equals_uninterrupted(
    demo: Path, tmp_path: Path, step: int
) -> None:
    whole, whole_trainer = train(demo, tmp_path / 'a', [], None)
    assert whole_trainer.global_step == 6  # 3 steps per epoch
    with pytest.raises(RuntimeError, match='preempted'):
        train(
            demo,
            tmp_path / 'b',
            [
                Preempt(step),
                OnExceptionCheckpoint(tmp_path / 'b', filename='preempted'),
            ],
            None,
        )
    checkpoint = tmp_path / 'b' / 'preempted.ckpt'
    saved = torch.load(checkpoint, weights_only=False)
    assert saved['global_step'] == step
    resumed, trainer = train(demo, tmp_path / 'c', [], checkpoint)
    assert trainer.global_step == 6
    expected = whole.state_dict()
    for key, value in resumed.state_dict().items():
        torch.testing.assert_close(value, expected[key], rtol=1e-5, atol=1e-6, msg=key)
    # the schedule position and the LARS momentum buffers are the whole run's
    optimizer, expected_optimizer = (
        t.optimizers[0].state_dict() for t in (trainer, whole_trainer)
    )
    lrs = [g['lr'] for g in optimizer['param_groups']]
    assert lrs == [g['lr'] for g in expected_optimizer['param_groups']]
    assert lrs[0] < 0.2 * 0.1  # decayed, not restarted
    assert optimizer['state'].keys() == expected_optimizer['state'].keys()
    for key, state in optimizer['state'].items():
        torch.testing.assert_close(
            state['momentum_buffer'],
            expected_optimizer['state'][key]['momentum_buffer'],
            rtol=1e-5,
            atol=1e-6,
        )


def test_atomic_checkpoint_never_half_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    io = AtomicCheckpointIO()
    path = tmp_path / 'ckpts' / 'last.ckpt'
    io.save_checkpoint({'step': 1, 'w': torch.ones(3)}, path)
    assert torch.load(path, weights_only=True)['step'] == 1

    def dies_half_way(obj: object, f: Path) -> None:
        Path(f).write_bytes(b'partial bytes')
        raise KeyboardInterrupt  # the job is killed while saving

    monkeypatch.setattr(torch, 'save', dies_half_way)
    with pytest.raises(KeyboardInterrupt):
        io.save_checkpoint({'step': 2, 'w': torch.zeros(3)}, path)
    monkeypatch.undo()
    # the previous checkpoint is intact, and no temporary file is left behind
    assert torch.load(path, weights_only=True)['step'] == 1
    assert [p.name for p in path.parent.iterdir()] == ['last.ckpt']


def test_diverged_run_stops_and_keeps_finite_checkpoint(
    demo: Path, tmp_path: Path
) -> None:
    seed_everything(0)
    small = {'model1': 'convnet_small', 'model2': 'convnet_small'}
    task = DeCURTask(**{**TINY, **small, 'lr': 1e6})
    datamodule = SSL4EOS12PairDataModule(
        root=str(demo), batch_size=2, patch_size=16, val_fraction=0.25
    )
    checkpoints = ModelCheckpoint(
        tmp_path / 'ckpts',
        save_last=True,
        save_top_k=1,
        monitor='train_loss',
        every_n_train_steps=1,
    )
    trainer = Trainer(
        max_epochs=10,
        accelerator='cpu',
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[checkpoints],
        plugins=[AtomicCheckpointIO()],
    )
    with pytest.raises(NonFiniteError, match=r'step \d+: non-finite') as info:
        trainer.fit(task, datamodule=datamodule)
    assert 'last.ckpt' in str(info.value)  # names the last good checkpoint
    files = sorted(p.name for p in (tmp_path / 'ckpts').iterdir())
    assert 'last.ckpt' in files and len(files) == 2  # the best one survives too
    for name in files:
        state = torch.load(tmp_path / 'ckpts' / name, weights_only=True)
        assert nonfinite_tensors(state['state_dict']) == [], name


class NaNAt(Callback):
    """Make the loss of one step NaN, as a corrupt batch would."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_start(self, trainer: Trainer, module, batch, idx) -> None:  # type: ignore[no-untyped-def]
        if trainer.global_step == self.step:
            batch['image1'][:] = float('nan')


def test_nonfinite_step_is_skipped_when_allowed(demo: Path, tmp_path: Path) -> None:
    with pytest.raises(NonFiniteError, match='step 2: non-finite loss'):
        train(demo, tmp_path / 'a', [NaNAt(2)], None)
    seed_everything(0)
    task = DeCURTask(**TINY, nonfinite_skips=1)
    trainer = Trainer(
        max_epochs=2,
        accelerator='cpu',
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[NaNAt(2)],
        default_root_dir=tmp_path / 'b',
    )
    datamodule = SSL4EOS12PairDataModule(
        root=str(demo), batch_size=2, patch_size=16, val_fraction=0.25
    )
    trainer.fit(task, datamodule=datamodule)
    assert task.finite.skipped == 1
    assert trainer.callback_metrics['train_nonfinite_skipped'] == 1
    assert nonfinite_tensors(task.state_dict()) == []


def test_nonfinite_gradients() -> None:
    finite = FiniteSteps(skips=1)
    weight = torch.nn.Parameter(torch.ones(2))
    weight.grad = torch.tensor([1.0, float('inf')])
    assert not finite.gradients_ok([weight], 7, 'x.ckpt')
    assert weight.grad is None  # the optimiser skips it
    weight.grad = torch.tensor([float('nan'), 0.0])
    with pytest.raises(NonFiniteError, match=r'step 7: non-finite gradient.*x\.ckpt'):
        finite.gradients_ok([weight], 7, 'x.ckpt')
    weight.grad = torch.ones(2)
    assert finite.gradients_ok([weight], 8, 'x.ckpt')
    with pytest.raises(ValueError, match='nonfinite_skips'):
        FiniteSteps(-1)


def test_ckpt_path_last_resumes_the_latest_run(demo: Path, tmp_path: Path) -> None:
    whole, _ = train(demo, tmp_path / 'whole', [], None)

    def run(callbacks: list[Callback], ckpt: str | None) -> tuple[DeCURTask, Trainer]:
        seed_everything(0)
        task = DeCURTask(**TINY)
        trainer = Trainer(
            max_epochs=2,
            accelerator='cpu',
            logger=CSVLogger(tmp_path / 'logs'),
            enable_progress_bar=False,
            enable_model_summary=False,
            callbacks=[
                RunCheckpoint(save_last='link', every_n_train_steps=1),
                *callbacks,
            ],
            plugins=[AtomicCheckpointIO()],
        )
        datamodule = SSL4EOS12PairDataModule(
            root=str(demo), batch_size=2, patch_size=16, val_fraction=0.25
        )
        trainer.fit(task, datamodule=datamodule, ckpt_path=ckpt)
        return task, trainer

    with pytest.raises(RuntimeError, match='preempted'):
        run([Preempt(4)], None)  # killed after step 4, before its save
    killed = tmp_path / 'logs' / 'lightning_logs' / 'version_0' / 'checkpoints'
    orphan = killed / '.last.ckpt.abc123'
    orphan.write_bytes(b'half a checkpoint')  # a save killed half way
    resumed, trainer = run([], 'last')
    assert trainer.global_step == 6
    assert trainer.log_dir.endswith('version_1')  # its own folder: nothing lost
    assert (killed / 'last.ckpt').is_file() and (killed / 'last.ckpt').is_symlink()
    expected = whole.state_dict()
    for key, value in resumed.state_dict().items():
        torch.testing.assert_close(value, expected[key], rtol=1e-5, atol=1e-6, msg=key)
    assert remove_orphans(killed) == []  # the next start removed the orphan...
    new = tmp_path / 'logs' / 'lightning_logs' / 'version_1' / 'checkpoints'
    (new / '.last.ckpt.xyz').write_bytes(b'')
    assert remove_orphans(new) == [new / '.last.ckpt.xyz']  # ...as this does
