"""`torchgeo-decur demo` (`make demo`), shrunk to seconds, on generated data."""

import csv
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from torchgeo_decur.cli import build_parser, main
from torchgeo_decur.datasets import make_ssl4eo_s12_demo
from torchgeo_decur.datasets.demo import FACTORS, read_labels
from torchgeo_decur.demo import (
    DEMO_SETTINGS,
    METHODS,
    DemoSeasons,
    format_table,
    load_seasons,
    new_run_folder,
    prepare_data,
)

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


def test_load_seasons_and_samples(tmp_path: Path) -> None:
    root = make_ssl4eo_s12_demo(tmp_path / 'd', num_locations=3, size=12)
    image1, image2, location = load_seasons(root, ['0000002', '0000000'])
    assert image1.shape == (8, 2, 12, 12) and image2.shape == (8, 13, 12, 12)
    assert location.tolist() == [0, 0, 0, 0, 1, 1, 1, 1]
    assert image1.dtype == image2.dtype == torch.float32
    assert image1.max() <= 5 and image2.min() >= 0  # dB, digital numbers
    # the 20 m and 60 m bands are resampled to the tile size
    assert torch.isfinite(image2).all() and image2[:, 12].std() > 0
    seasons = DemoSeasons(image1, image2, location)
    assert len(seasons) == 2
    sample = seasons[1]
    assert sample['image1'].shape == (2, 2, 12, 12)
    assert sample['image2'].shape == (2, 13, 12, 12)
    # views are seasons of that location only
    for view in sample['image1']:
        assert any(torch.equal(view, image1[k]) for k in range(4, 8))


def test_format_table() -> None:
    results = {m: dict.fromkeys(FACTORS, 0.5) for m in METHODS}
    results['DeCUR']['mineral'] = 0.875
    lines = format_table(results).splitlines()
    assert lines[0].split() == ['common', 'SAR-only', 'optical-only']
    assert lines[1].split() == ['DeCUR', '50.0', '50.0', '87.5']
    assert lines[-1].split() == ['chance', '20.0', '33.3', '33.3']
    assert np.isclose(len(lines), len(METHODS) + 2)
