"""`torchgeo-decur demo` (`make demo`), shrunk to seconds, on generated data."""

import csv
import json
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch import Tensor
from torch.utils.data import Subset, default_collate

from torchgeo_decur.cli import build_parser, main
from torchgeo_decur.datamodules import ModalityPreprocessing
from torchgeo_decur.explain import prepare_pairs
from torchgeo_decur.lab import make_ssl4eo_s12_demo
from torchgeo_decur.lab.demo import (
    DEMO_SETTINGS,
    METHODS,
    DemoSeasons,
    demo_datamodule,
    format_spread_table,
    format_table,
    new_run_folder,
    prepare_data,
    run_demo_seeds,
)
from torchgeo_decur.lab.probe import extract_features
from torchgeo_decur.lab.world import FACTORS, read_labels

from ..conftest import fake_trainer

#: A demo that runs in seconds: 20 locations of 24 px, 2 steps of 8.
TINY = ['--locations', '20', '--size', '24', '--steps', '2', '--batch-size', '8']


def run(tmp_path: Path, *extra: str) -> list[str]:
    argv = ['demo', '--root', str(tmp_path / 'data'), '--out', str(tmp_path / 'out')]
    return [*argv, *TINY, '--no-progress', *extra]


def test_tiny_demo_end_to_end(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Data generated, both methods pretrained, probes, table printed and written,
    checkpoints and figures kept; a second run reuses the data and writes a new
    run folder, leaving the first one as it was."""
    assert main(run(tmp_path)) == 0
    out = capsys.readouterr().out
    assert 'generated' in out
    first = tmp_path / 'out' / 'run-001'
    # the table: one row per method, one column per factor, and chance
    lines = out[out.index('  common  ') :].splitlines()
    assert lines[0].split() == ['common', 'SAR-only', 'optical-only']
    rows = {line.rsplit(maxsplit=3)[0]: line.split()[-3:] for line in lines[1:5]}
    assert list(rows) == [*METHODS, 'chance']
    assert rows['chance'] == ['20.0', '33.3', '33.3']
    assert str(first) in out

    with open(first / 'results.csv') as f:
        table = list(csv.reader(f))
    assert table[0] == [
        'method',
        'land_cover_common',
        'roughness_SAR-only',
        'mineral_optical-only',
    ]
    assert [r[0] for r in table[1:]] == [*METHODS, 'chance']
    results = json.loads((first / 'results.json').read_text())
    assert set(results['results']) == set(METHODS)
    for method in METHODS:
        assert set(results['results'][method]) == set(FACTORS)
        for value in results['results'][method].values():
            assert 0 <= value <= 100
        printed = [float(v) for v in rows[method]]
        assert printed == pytest.approx(
            [results['results'][method][f] for f in FACTORS], abs=0.051
        )
    assert results['settings']['steps'] == 2
    assert results['locations']['train'] + results['locations']['test'] == 20
    assert results['pairs']['test'] == 4 * results['locations']['test']
    for name in ('decur.ckpt', 'cross_modal_bt.ckpt'):
        checkpoint = torch.load(first / name, weights_only=False, map_location='cpu')
        assert checkpoint['global_step'] == 2
    assert (first / 'alignment.png').stat().st_size > 0
    assert (first / 'gradcam_decur.png').stat().st_size > 0
    before = {p.name: p.read_bytes() for p in first.iterdir()}

    assert main(run(tmp_path, '--no-figures')) == 0
    out = capsys.readouterr().out
    assert 'reused' in out
    assert sorted(p.name for p in (tmp_path / 'out').iterdir()) == [
        'run-001',
        'run-002',
    ]
    assert {p.name: p.read_bytes() for p in first.iterdir()} == before
    second = json.loads((tmp_path / 'out' / 'run-002' / 'results.json').read_text())
    # same seeds, same data: the same numbers
    assert second['results'] == results['results']


def test_demo_refuses_foreign_data_folder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / 'data'
    data.mkdir()
    (data / 'mine.tif').write_text('user data')
    assert main(run(tmp_path)) == 2
    assert 'refusing' in capsys.readouterr().err
    assert (data / 'mine.tif').read_text() == 'user data'
    assert not (tmp_path / 'out').exists()


def test_demo_rejects_unknown_arguments(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(['demo', '--trainer.max_epochs=2']) == 2
    assert 'unrecognized' in capsys.readouterr().err


def test_parser_defaults_are_the_settings() -> None:
    """The demo's options default to DEMO_SETTINGS, and their help says so."""
    demo = build_parser()._subcommands_action._name_parser_map['demo']
    actions = {a.dest: a for a in demo._actions}
    helps = ' '.join(demo.format_help().split())
    for dest in ('locations', 'size', 'steps', 'batch_size', 'seed', 'data_seed'):
        assert actions[dest].default == getattr(DEMO_SETTINGS, dest)
        assert f'--{dest} {dest.upper()} ' in helps
        assert f'default: {getattr(DEMO_SETTINGS, dest)})' in helps
    assert actions['common_share'].default == DEMO_SETTINGS.common_share


def test_new_run_folder(tmp_path: Path) -> None:
    parent = tmp_path / 'out'
    assert new_run_folder(parent).name == 'run-001'
    (parent / 'run-007').mkdir()
    (parent / 'notes.txt').write_text('kept')
    assert new_run_folder(parent).name == 'run-008'
    assert (parent / 'notes.txt').read_text() == 'kept'
    file = tmp_path / 'file'
    file.write_text('x')
    with pytest.raises(FileExistsError, match='not a folder'):
        new_run_folder(file)


def test_prepare_data_regenerates_other_parameters(tmp_path: Path) -> None:
    settings = replace(DEMO_SETTINGS, locations=3, size=12)
    root, reused = prepare_data(tmp_path / 'd', settings)
    assert not reused and len(read_labels(root)) == 3
    assert prepare_data(root, settings) == (root, True)
    root, reused = prepare_data(root, replace(settings, locations=4))
    assert not reused and len(read_labels(root)) == 4


def test_seasons_and_samples(tmp_path: Path) -> None:
    root = make_ssl4eo_s12_demo(tmp_path / 'd', num_locations=3, size=12)
    seasons = DemoSeasons(root, ['0000002', '0000000'])
    assert seasons.location.tolist() == [0, 0, 0, 0, 1, 1, 1, 1]
    full = seasons.seasons
    # assembled once by the reader: dB and digital numbers, 13 bands
    assert full['image1'].shape == (8, 2, 12, 12)
    assert full['image2'].shape == (8, 13, 12, 12) and set(full) == {
        'image1',
        'image2',
    }
    assert full['image1'].max() <= 5 and full['image2'].min() >= 0
    assert torch.isfinite(full['image2']).all() and full['image2'][:, 12].std() > 0
    assert len(seasons) == 2
    sample = seasons[1]
    assert sample['image1'].shape == (2, 2, 12, 12)
    assert sample['image2'].shape == (2, 13, 12, 12)
    # views are seasons of that location only
    for view in sample['image1']:
        assert any(torch.equal(view, full['image1'][k]) for k in range(4, 8))
    # the reader's own finishing of one raw season gives the same images
    reader = seasons.reader
    folder1 = sorted((root / 's1' / '0000000').iterdir())
    folder2 = sorted((root / 's2c' / '0000000').iterdir())
    raw = [
        {**reader.read_season('image1', a), **reader.read_season('image2', b)}
        for a, b in zip(folder1, folder2, strict=True)
    ]
    assert {'image2@6', 'image2@2'} <= set(raw[0])
    assembled = reader.on_device(default_collate(raw))
    for key in ('image1', 'image2'):
        assert {tuple(x.flatten()[:8].tolist()) for x in assembled[key]} == {
            tuple(x.flatten()[:8].tolist()) for x in full[key][4:]
        }
    pairs = seasons.pairs()
    assert len(pairs) == 8 and pairs[5]['image2'].shape == (13, 12, 12)
    torch.testing.assert_close(pairs[5]['image2'], full['image2'][5])


def test_format_table() -> None:
    results = {m: dict.fromkeys(FACTORS, 0.5) for m in METHODS}
    results['DeCUR']['mineral'] = 0.875
    lines = format_table(results).splitlines()
    assert lines[0].split() == ['common', 'SAR-only', 'optical-only']
    assert lines[1].split() == ['DeCUR', '50.0', '50.0', '87.5']
    assert lines[-1].split() == ['chance', '20.0', '33.3', '33.3']
    assert np.isclose(len(lines), len(METHODS) + 2)


def test_format_spread_table() -> None:
    runs = [{m: dict.fromkeys(FACTORS, 0.5) for m in METHODS} for _ in range(3)]
    for run, value in zip(runs, (0.4, 0.5, 0.6), strict=True):
        run['DeCUR']['mineral'] = value
    lines = format_spread_table(runs).splitlines()
    assert lines[1].split() == ['DeCUR', *['50.0', '±', '0.0'] * 2, '50.0', '±', '10.0']
    assert lines[-1].split() == ['chance', '20.0', '33.3', '33.3']


def test_demo_over_seeds(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`--seeds 2`: two data sets (the second beside the first), two training
    seeds, two run folders, and a table of means and spreads."""
    assert main(run(tmp_path, '--seeds', '2', '--data_seed', '4')) == 0
    out = capsys.readouterr().out
    assert 'data seeds 4..5, training seeds 0..1' in out
    assert (tmp_path / 'data-data5' / 'labels.csv').is_file()
    runs = sorted((tmp_path / 'out').iterdir())
    assert [r.name for r in runs] == ['run-001', 'run-002']
    seeds = [json.loads((r / 'results.json').read_text())['settings'] for r in runs]
    assert [(s['data_seed'], s['seed']) for s in seeds] == [(4, 0), (5, 1)]
    assert not list(runs[0].glob('*.png'))  # no figures over seeds
    row = next(line for line in out.splitlines() if line.startswith('DeCUR'))
    assert row.count('±') == 3
    with pytest.raises(ValueError, match='seeds must be positive'):
        run_demo_seeds(tmp_path / 'data', tmp_path / 'out', seeds=0)


def test_demo_prepares_batches_as_everyone(tmp_path: Path) -> None:
    """The demo's pretraining datamodule, its probes and its figures prepare
    a raw batch of its seasons identically (the reader assembles the bands)."""
    root = make_ssl4eo_s12_demo(tmp_path / 'd', num_locations=3, size=12)
    seasons = DemoSeasons(root, sorted(read_labels(root)))
    pairs = seasons.pairs()
    raw = default_collate([pairs[0], pairs[5]])
    expected = ModalityPreprocessing({'image1': 's1', 'image2': 's2c'}, pairs)(raw)
    assert expected['image2'].shape == (2, 13, 12, 12)

    dm = demo_datamodule(seasons, replace(DEMO_SETTINGS, test_fraction=0.34))
    dm.setup('fit')
    dm.aug = dm.train_aug = torch.nn.Identity()
    dm.trainer = fake_trainer('train')  # type: ignore[assignment]
    pretraining = dm.on_after_batch_transfer(dict(raw), 0)
    task = SimpleNamespace(
        hparams={'modalities': ['s1', 's2c'], 'in_channels1': 2, 'in_channels2': 13}
    )
    figures = prepare_pairs(task, raw, pairs)  # type: ignore[arg-type]
    seen: list[tuple[Tensor, Tensor]] = []

    class Recorder(torch.nn.Module):
        def representation(self, x1: Tensor, x2: Tensor) -> Tensor:
            seen.append((x1, x2))
            return x1.flatten(1)

    extract_features(Recorder(), Subset(pairs, [0, 5]), ('s1', 's2c'), batch_size=2)
    for key, x in zip(('image1', 'image2'), figures, strict=True):
        torch.testing.assert_close(pretraining[key][:, 0], expected[key])
        torch.testing.assert_close(x, expected[key])
    torch.testing.assert_close(seen[0][1], expected['image2'])


def test_three_modality_demo(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`demo --modalities 3`: S1, S2 and a DEM, a DEM-only column, DeCUR with
    three encoders against Barlow Twins between every pair."""
    assert main(run(tmp_path, '--modalities', '3')) == 0
    out = capsys.readouterr().out
    lines = out[out.index('  common  ') :].splitlines()
    assert lines[0].split() == ['common', 'SAR-only', 'optical-only', 'DEM-only']
    rows = {line.rsplit(maxsplit=4)[0]: line.split()[-4:] for line in lines[1:5]}
    assert list(rows) == [*METHODS, 'chance']
    assert rows['chance'] == ['20.0', '33.3', '33.3', '33.3']
    first = tmp_path / 'out' / 'run-001'
    results = json.loads((first / 'results.json').read_text())
    assert results['sensors']['relief'] == 'dem'
    assert results['settings']['modalities'] == 3
    for name, ablated in (('decur.ckpt', False), ('cross_modal_bt.ckpt', True)):
        checkpoint = torch.load(first / name, weights_only=False, map_location='cpu')
        hparams = checkpoint['hyper_parameters']
        assert list(hparams['encoders']) == ['s1', 's2c', 'dem']
        assert hparams['decouple'] is not ablated and hparams['intra'] is not ablated
    assert not (first / 'alignment.png').exists()  # the figures explain pairs


def test_demo_seasons_with_a_dem(tmp_path: Path) -> None:
    root = make_ssl4eo_s12_demo(tmp_path / 'd', num_locations=3, size=12, dem=True)
    seasons = DemoSeasons(root, sorted(read_labels(root)), dem=True)
    sample = seasons[0]
    assert sample['image3'].shape == (2, 1, 12, 12)
    torch.testing.assert_close(sample['image3'][0], sample['image3'][1])
    assert sample['image3'].mean() > 40  # metres, as read
    with pytest.raises(FileNotFoundError, match='without a DEM'):
        DemoSeasons(make_ssl4eo_s12_demo(tmp_path / 'e', 2, 12), ['0000000'], True)
    with pytest.raises(ValueError, match='modalities must be 2 or 3'):
        prepare_data(tmp_path / 'f', replace(DEMO_SETTINGS, modalities=4))


def test_build_task_methods() -> None:
    """The table's methods and the intra-modal experiment: Barlow Twins
    between the views of each modality, no cross-modal term."""
    from torchgeo_decur.lab.demo import (
        EXTRA_METHODS,
        METHODS,
        DemoSettings,
        build_task,
    )
    from torchgeo_decur.tasks import DeCURTask, MultimodalSSLTask

    settings = DemoSettings()
    assert isinstance(build_task('DeCUR', settings), DeCURTask)
    cross = build_task('Cross-modal BT', settings)
    assert isinstance(cross, MultimodalSSLTask)
    assert cross.hparams['method'] == 'barlow_cross'
    intra = build_task('Intra-modal BT', settings)
    assert isinstance(intra, MultimodalSSLTask)
    assert intra.hparams['method'] == 'barlow_single'
    assert 'Intra-modal BT' in EXTRA_METHODS and 'Intra-modal BT' not in METHODS
    with pytest.raises(ValueError, match="unknown demo method 'SimCLR'"):
        build_task('SimCLR', settings)
