"""`torchgeo-decur paper-table`: finished conf/paper runs beside the paper."""

import math
from pathlib import Path

import pytest
import yaml
from torchgeo.main import main as torchgeo_main

from torchgeo_decur.cli import main
from torchgeo_decur.paper import GLOBAL_METRIC, PAPER_CELLS, paper_table, read_run

from .conftest import ROOT

PAPER = sorted((ROOT / 'conf' / 'paper').glob('*.yaml'))


def write_metrics(folder: Path, rows: list[dict[str, str]]) -> Path:
    """A CSVLogger's metrics.csv with *rows*."""
    folder.mkdir(parents=True)
    keys = sorted({k for row in rows for k in row})
    lines = [','.join(keys)] + [','.join(row.get(k, '') for k in keys) for row in rows]
    path = folder / 'metrics.csv'
    path.write_text('\n'.join(lines) + '\n')
    return path


def test_every_paper_config_has_a_cell_a_logger_and_two_metrics() -> None:
    assert set(PAPER_CELLS) == {p.stem for p in PAPER}
    assert PAPER_CELLS['bigearthnet_s1s2_linear_1pct'] == (
        'BigEarthNet-MM (SAR-optical) table, micro mAP, row DeCUR, '
        'S1+S2 linear probe 1% labels'
    )
    for path in PAPER:
        trainer = yaml.safe_load(path.read_text())['trainer']
        logger = trainer['logger']
        assert logger['class_path'].endswith('CSVLogger')
        assert logger['init_args'] == {'save_dir': 'runs/paper', 'name': path.stem}
        monitors = [c['init_args'].get('monitor') for c in trainer['callbacks']]
        assert any(m in GLOBAL_METRIC for m in monitors), path


def test_read_run_last_best_and_global(tmp_path: Path) -> None:
    rows = [
        {'epoch': '0', 'step': '4', 'train_loss': '0.9'},
        {
            'epoch': '0',
            'val_BatchJaccardIndex': '0.30',
            'val_AverageJaccardIndex': '0.35',
        },
        {
            'epoch': '1',
            'val_BatchJaccardIndex': '0.50',
            'val_AverageJaccardIndex': '0.52',
        },
        {
            'epoch': '2',
            'val_BatchJaccardIndex': '0.40',
            'val_AverageJaccardIndex': '0.45',
        },
    ]
    path = write_metrics(tmp_path / 'geonrw_rgb_finetune_1pct' / 'version_3', rows)
    run = read_run(path)
    assert run.name == 'geonrw_rgb_finetune_1pct'
    assert run.metric == 'val_BatchJaccardIndex'
    assert (run.last, run.best, run.global_last, run.epochs) == pytest.approx(
        (40.0, 50.0, 45.0, 3)
    )
    # CMX scores the whole test list: its metric is the global one
    cmx = [
        {'val_AverageJaccardIndex': v, 'val_BatchJaccardIndex': '0.1'}
        for v in ('0.42', '0.48')
    ]
    run = read_run(write_metrics(tmp_path / 'nyudv2_rgbhha_finetune_100pct', cmx))
    assert run.metric == 'val_AverageJaccardIndex'
    assert (run.last, run.best, run.global_last) == pytest.approx((48.0, 48.0, 48.0))
    assert PAPER_CELLS['sunrgbd_rgbhha_finetune_100pct'] == (
        'SUN RGB-D (RGB-depth) table, mIoU of CMX with MiT-B2, row DeCUR, '
        'RGB+HHA fine-tuning 100% labels'
    )
    empty = write_metrics(tmp_path / 'bigearthnet_s1_linear_1pct', [{'epoch': '0'}])
    assert math.isnan(read_run(empty).last) and read_run(empty).epochs == 0


def test_table_with_published_values(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = [
        {
            'val_BatchOverallAveragePrecision': '0.8',
            'val_OverallAveragePrecision': '0.7',
        }
    ]
    write_metrics(
        tmp_path / 'runs' / 'bigearthnet_s2_linear_100pct' / 'version_0', rows
    )
    values = tmp_path / 'paper.yaml'
    values.write_text('bigearthnet_s2_linear_100pct: 75.5\n')
    (row,) = paper_table([str(tmp_path / 'runs')], str(values))
    assert row['paper'] == '75.50' and row['ours (last)'] == '80.00'
    assert row['ours - paper'] == '4.50' and row['whole split (last)'] == '70.00'
    out = capsys.readouterr().out
    assert out.splitlines()[0].startswith('| config | paper cell | metric | paper |')
    assert '| bigearthnet_s2_linear_100pct |' in out


def test_errors(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match='does not exist'):
        paper_table([str(tmp_path / 'nothing')])
    with pytest.raises(ValueError, match=r'no metrics\.csv under'):
        paper_table([str(tmp_path)])
    mine = write_metrics(tmp_path / 'my_run' / 'version_0', [{'epoch': '0'}])
    with pytest.raises(ValueError, match="'my_run' is not a conf/paper config"):
        paper_table([str(mine)])
    values = tmp_path / 'paper.yaml'
    values.write_text('geonrw_rgb_linear_1pct: 40\n')
    ok = write_metrics(tmp_path / 'r' / 'geonrw_rgb_finetune_1pct', [{'epoch': '0'}])
    with pytest.raises(
        ValueError, match='not conf/paper configs: geonrw_rgb_linear_1pct'
    ):
        paper_table([str(ok)], str(values))


@pytest.mark.slow
def test_two_finished_tiny_runs(
    hub_cache: Path,
    bigearthnet_root: Path,
    geonrw_root: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Two conf/paper configs trained 2 epochs each, then the table."""
    runs = tmp_path / 'runs'
    settings = {
        'bigearthnet_s1_linear_1pct': (
            bigearthnet_root,
            ['--data.init_args.train_fraction=0.5'],
        ),
        'geonrw_rgb_finetune_100pct': (geonrw_root, ['--data.init_args.tile_size=50']),
    }
    for name, (root, extra) in settings.items():
        torchgeo_main(
            [
                'fit',
                '--config',
                str(ROOT / 'conf' / 'paper' / f'{name}.yaml'),
                '--data.init_args.root',
                str(root),
                '--data.init_args.num_workers=0',
                '--data.init_args.batch_size=2',
                '--trainer.max_epochs=2',
                '--trainer.limit_train_batches=1',
                '--trainer.limit_val_batches=1',
                '--trainer.num_sanity_val_steps=0',
                '--trainer.accelerator=cpu',
                '--trainer.enable_progress_bar=false',
                '--trainer.default_root_dir',
                str(tmp_path),
                '--trainer.logger.init_args.save_dir',
                str(runs),
                *extra,
            ]
        )
    capsys.readouterr()
    assert main(['paper-table', str(runs)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 4  # header, rule, two runs
    for name in settings:
        (row,) = [line for line in lines if f'| {name} |' in line]
        cells = [c.strip() for c in row.strip('|').split('|')]
        assert cells[3] == 'not transcribed' and cells[-1] == '2'
        assert 0 <= float(cells[4]) <= 100 and 0 <= float(cells[7]) <= 100
