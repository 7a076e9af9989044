"""The explainability report and ``torchgeo-decur explain``, end to end."""

import importlib.util
import json
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml
from lightning.pytorch import LightningModule, Trainer

import torchgeo_decur.lab  # noqa: F401  (registers convnet_small with timm)
from torchgeo_decur.cli import main as cli_main
from torchgeo_decur.datamodules import SSL4EOS12PairDataModule
from torchgeo_decur.explain import (
    DEFAULT_SAMPLES,
    FIGURES,
    SUMMARY,
    alignment_figure,
    common_dim_of,
    explain,
    gradcam_figure,
    load_pairs,
    load_task,
)
from torchgeo_decur.lab.world import make_ssl4eo_s12_demo
from torchgeo_decur.tasks import CoMMTask, DeCURTask, MultimodalSSLTask

from ..conftest import copy_fixture

TINY: dict[str, Any] = {
    'model1': 'convnet_small',
    'model2': 'convnet_small',
    'model_kwargs1': {'widths': [4, 8, 8, 16]},
    'model_kwargs2': {'widths': [4, 8, 8, 16]},
    'modalities': ['s1', 's2c'],
    'projector_dims': [16, 16],
}

LOCATIONS = 8


def data_config(path: Path, root: Path, **init_args: Any) -> Path:
    config = {
        'model': {'class_path': 'torchgeo_decur.tasks.DeCURTask'},  # ignored
        'data': {
            'class_path': 'torchgeo_decur.datamodules.SSL4EOS12PairDataModule',
            'init_args': {
                'root': str(root),
                'batch_size': 4,
                'patch_size': 32,
                'val_fraction': 0,
                'num_workers': 0,
                **init_args,
            },
        },
    }
    path.write_text(yaml.safe_dump(config))
    return path


def train(task: LightningModule, root: Path, path: Path, steps: int) -> Path:
    datamodule = SSL4EOS12PairDataModule(
        root=str(root), batch_size=4, patch_size=32, val_fraction=0, seed=0
    )
    trainer = Trainer(
        accelerator='cpu',
        max_steps=steps,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=path.parent,
    )
    trainer.fit(task, datamodule=datamodule)
    trainer.save_checkpoint(path)
    return path


@pytest.fixture(scope='module')
def setup(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    tmp = tmp_path_factory.mktemp('explain')
    root = make_ssl4eo_s12_demo(tmp / 'demo', num_locations=LOCATIONS, size=36)
    torch.manual_seed(0)
    with pytest.warns(UserWarning):  # few workers, tiny data
        decur = train(
            DeCURTask(**TINY, common_dim=12, optimizer='adamw', lr=1e-3),
            root,
            tmp / 'decur.ckpt',
            1,
        )
        baseline = train(
            MultimodalSSLTask('barlow_cross', **TINY, optimizer='adamw', lr=1e-3),
            root,
            tmp / 'barlow.ckpt',
            1,
        )
    return {
        'root': root,
        'decur': decur,
        'baseline': baseline,
        'config': data_config(tmp / 'data.yaml', root),
    }


def run(*args: str) -> int:
    return cli_main(['explain', *args])


@pytest.mark.filterwarnings('ignore::UserWarning')
def test_cli(
    setup: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / 'report'
    common = [
        '--checkpoint',
        str(setup['decur']),
        '--config',
        str(setup['config']),
        '--out',
        str(out),
        '--samples',
        '6',
        '--batch-size',
        '6',
        '--ig-steps',
        '2',
    ]
    assert run(*common, '--compare', str(setup['baseline'])) == 0
    assert 'explained 6 pairs' in capsys.readouterr().out
    for name in [*FIGURES.values(), SUMMARY]:
        assert (out / name).is_file()
    summary = json.loads((out / SUMMARY).read_text())
    assert summary['checkpoint'] == str(setup['decur'])
    assert summary['compare'] == str(setup['baseline'])
    assert summary['config'] == str(setup['config'])
    assert summary['samples'] == summary['samples_requested'] == 6
    assert summary['common_dim'] == 12 and summary['embed_dim'] == 16
    assert summary['modalities'] == ['s1', 's2c']
    align = summary['alignment']
    assert len(align['values']) == 16 and set(align['mean']) == {'common', 'unique'}
    assert len(align['compare']['values']) == 16
    assert align['compare']['label'] == 'cross-modal Barlow Twins'
    coords = summary['tsne']['coords']
    assert len(coords['s1']) == len(coords['s2c']) == 16
    assert summary['tsne']['perplexity'] == pytest.approx(31 / 3)
    assert summary['gradcam']['layers'] == {'s1': 'stages.3', 's2c': 'stages.3'}
    saliency = summary['spatial_saliency']
    assert len(saliency['common']['values']) == len(saliency['unique']['values']) == 6
    bands = summary['band_importance']
    assert len(bands['s2c']['unique']) == 13 and len(bands['s1']['common']) == 2
    assert sum(bands['s2c']['common']) == pytest.approx(1.0, abs=1e-4)
    assert summary['bands']['s1'] == ['VV', 'VH']

    # an earlier report is never overwritten, and other files never touched
    before = (out / SUMMARY).read_bytes()
    assert run(*common) == 2
    assert 'refusing to overwrite' in capsys.readouterr().err
    assert (out / SUMMARY).read_bytes() == before
    (out / 'notes.txt').write_text('mine')
    assert run(*common, '--overwrite', '--seed', '1', '--samples', '2') == 0
    assert (out / 'notes.txt').read_text() == 'mine'
    assert json.loads((out / SUMMARY).read_text())['seed'] == 1


def test_too_many_samples(
    setup: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # the CPU's default sample count, more than the data hold
    assert DEFAULT_SAMPLES['cpu'] == 64 > LOCATIONS
    with pytest.warns(UserWarning, match=f'64 samples requested.*hold {LOCATIONS}'):
        summary = explain(
            setup['baseline'],
            setup['config'],
            tmp_path,
            batch_size=4,
            ig_steps=1,
            device='cpu',
        )
    assert summary['samples'] == LOCATIONS and summary['samples_requested'] == 64
    # the bar counts every image GradCAM (1 pass) and IG (ig_steps) run, per
    # modality and group: 2 x 1 x 8 x (1 + 1), and it ends full
    assert '32/32' in capsys.readouterr().err
    # a baseline has no common / unique split: one group of all dimensions
    assert summary['common_dim'] is None
    assert set(summary['spatial_saliency']) == {'measure', 'all'}
    assert set(summary['band_importance']['s1']) == {'all'}


def test_not_a_decur_checkpoint(
    setup: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ['--config', str(setup['config']), '--out', str(tmp_path / 'out')]
    random = tmp_path / 'random.pt'
    torch.save({'weight': torch.zeros(3)}, random)
    assert run('--checkpoint', str(random), *args) == 2
    err = capsys.readouterr().err
    assert str(random) in err and 'DeCURTask or MultimodalSSLTask' in err
    assert list((tmp_path / 'out').iterdir()) == []  # checked first, nothing written

    comm = CoMMTask(**TINY | {'projector_dims': [8, 8]}, embed_dim=8, num_heads=2)
    path = tmp_path / 'comm.ckpt'
    torch.save(
        {'state_dict': comm.state_dict(), 'hyper_parameters': dict(comm.hparams)}, path
    )
    with pytest.raises(ValueError, match='neither DeCURTask nor baseline'):
        load_task(path)
    checkpoint = torch.load(path, weights_only=False)
    checkpoint['hyper_parameters']['_class_path'] = 'torchgeo_decur.tasks.CoMMTask'
    torch.save(checkpoint, path)
    with pytest.raises(
        ValueError, match=r'checkpoint of torchgeo_decur\.tasks\.CoMMTask'
    ):
        load_task(path)
    classification = tmp_path / 'classification.ckpt'
    torch.save(
        {'hyper_parameters': {'model': 'resnet18'}, 'state_dict': {}}, classification
    )
    assert run('--checkpoint', str(classification), *args) == 2
    assert 'neither DeCURTask nor baseline' in capsys.readouterr().err
    text = tmp_path / 'text.ckpt'
    text.write_text('not a checkpoint')
    with pytest.raises(ValueError, match=r'torch\.load failed'):
        load_task(text)
    with pytest.raises(FileNotFoundError, match='checkpoint not found'):
        load_task(tmp_path / 'missing.ckpt')


def test_load_task(setup: dict[str, Path], tmp_path: Path) -> None:
    task = load_task(setup['decur'])
    assert isinstance(task, DeCURTask) and not task.training
    assert common_dim_of(task) == 12
    # LightningCLI records the class: it is used when present
    checkpoint = torch.load(setup['decur'], weights_only=False)
    checkpoint['hyper_parameters']['_class_path'] = 'torchgeo_decur.tasks.DeCURTask'
    path = tmp_path / 'cli.ckpt'
    torch.save(checkpoint, path)
    again = load_task(path)
    for key, value in task.state_dict().items():
        torch.testing.assert_close(again.state_dict()[key], value)
    baseline = load_task(setup['baseline'])
    assert isinstance(baseline, MultimodalSSLTask) and common_dim_of(baseline) is None


def test_band_mismatch(
    setup: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # the fixture's Sentinel-2 L2A has 12 bands; the encoder takes L1C's 13
    root = copy_fixture('ssl4eo_s12', tmp_path)
    config = data_config(tmp_path / 's2a.yaml', root, optical='s2a')
    args = ['--checkpoint', str(setup['decur']), '--out', str(tmp_path / 'out')]
    args += ['--samples', '2']
    with pytest.warns(UserWarning, match='modalities'):
        status = run(*args, '--config', str(config))
    assert status == 2
    err = capsys.readouterr().err
    assert str(config) in err and 'in_channels2=13' in err and 'missing: B10' in err
    assert run(*args, '--config', str(tmp_path / 'none.yaml')) == 2
    assert 'data config not found' in capsys.readouterr().err
    no_data = tmp_path / 'model_only.yaml'
    no_data.write_text('model:\n  class_path: torchgeo_decur.tasks.DeCURTask\n')
    assert run(*args, '--config', str(no_data)) == 2
    assert 'no data: section' in capsys.readouterr().err


@pytest.mark.filterwarnings('ignore::UserWarning')
def test_figures_from_a_batch(setup: dict[str, Path]) -> None:
    """What the demo does: figures from a loaded task and a batch."""
    task = load_task(setup['decur'])
    baseline = load_task(setup['baseline'])
    pairs = load_pairs(setup['config'], task, samples=4, batch_size=4)
    assert pairs.x1.shape == (4, 2, 36, 36) and pairs.x2.shape == (4, 13, 36, 36)
    fig, numbers = alignment_figure(task, pairs.x1, pairs.x2, compare=baseline)
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert labels == [
        'DeCUR, common (12)',
        'DeCUR, unique (4)',
        'cross-modal Barlow Twins (16)',
    ]
    assert numbers['common_dim'] == 12 and len(numbers['compare']['values']) == 16
    fig, numbers = gradcam_figure(task, pairs.x1, pairs.x2, max_samples=2)
    assert numbers['layers'] == {'s1': 'stages.3', 's2c': 'stages.3'}
    assert len(numbers['overlap']['unique']) == 2
    fig, numbers = gradcam_figure(baseline, pairs.x1, pairs.x2, max_samples=1)
    assert set(numbers['overlap']) == {'all'}


def test_explain_benchmark(
    setup: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = Path(__file__).resolve().parents[2] / 'benchmarks' / 'explain.py'
    spec = importlib.util.spec_from_file_location('benchmark_explain', path)
    assert spec is not None and spec.loader is not None
    benchmark = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(benchmark)
    args = ['--checkpoint', str(setup['decur']), '--data-config', str(setup['config'])]
    args += ['--samples', '4', '--device', 'cpu']
    assert benchmark.main([*args, '--out', str(tmp_path / 'kept')]) == 0
    out = capsys.readouterr().out
    assert '"samples": 4' in out and 'PASS: no all-zero GradCAM map' in out
    assert (tmp_path / 'kept' / SUMMARY).is_file()
    assert benchmark.main([*args, '--limit', '0']) == 1  # nothing is that fast
    assert 'FAIL: wall time' in capsys.readouterr().out
