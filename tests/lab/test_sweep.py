"""The common-share sweep, end to end on the fixtures with tiny models."""

import csv
import json
from pathlib import Path

import pytest

from torchgeo_decur.cli import main as cli_main
from torchgeo_decur.lab.sweep import sweep_common_share

from ..conftest import ROOT

PRETRAIN = ROOT / 'conf' / 'decur_s1s2_demo.yaml'
DOWNSTREAM = ROOT / 'conf' / 'transfer' / 'bigearthnet_s1s2_linear_100pct.yaml'
TRAINER = [
    '--trainer.max_steps=1',
    '--trainer.max_epochs=1',
    '--trainer.accelerator=cpu',
    '--trainer.enable_progress_bar=false',
    '--trainer.enable_model_summary=false',
    '--trainer.logger=false',
]


def args(ssl4eo_root: Path, bigearthnet_root: Path) -> tuple[list[str], list[str]]:
    pretrain = [
        f'--data.init_args.root={ssl4eo_root}',
        '--data.init_args.batch_size=2',
        '--data.init_args.patch_size=32',
        '--data.init_args.val_fraction=0',
        '--data.init_args.num_workers=0',
        '--model.init_args.projector_dims=[32,32]',
        *TRAINER,
    ]
    downstream = [
        f'--data.init_args.root={bigearthnet_root}',
        '--data.init_args.batch_size=2',
        '--data.init_args.num_workers=0',
        '--data.init_args.size=64',
        '--model.init_args.model=resnet18',
        *TRAINER,
    ]
    return pretrain, downstream


@pytest.mark.filterwarnings('ignore::UserWarning')
def test_sweep_common_share(
    ssl4eo_root: Path, bigearthnet_root: Path, tmp_path: Path
) -> None:
    pretrain, downstream = args(ssl4eo_root, bigearthnet_root)
    out = tmp_path / 'sweep'
    rows = sweep_common_share(
        PRETRAIN,
        DOWNSTREAM,
        [0.5, 1.0],
        out,
        metric='val_loss',
        pretrain_args=pretrain,
        downstream_args=downstream,
    )
    # the share reached the loss: half of the 32 dimensions, then all of them
    assert [(r['share'], r['common_dim']) for r in rows] == [(0.5, 16), (1.0, 32)]
    assert all('val_loss' in r and 'val_AverageAveragePrecision' in r for r in rows)
    table = list(csv.DictReader((out / 'sweep.csv').open()))
    assert [float(r['share']) for r in table] == [0.5, 1.0]
    summary = json.loads((out / 'sweep.json').read_text())
    assert summary['best_share'] in (0.5, 1.0) and summary['metric'] == 'val_loss'
    assert (out / 'share_0.5' / 'decur.ckpt').is_file()
    # an earlier sweep is never overwritten
    before = (out / 'sweep.csv').read_bytes()
    with pytest.raises(FileExistsError, match='refusing to overwrite'):
        sweep_common_share(PRETRAIN, DOWNSTREAM, [0.5], out)
    assert (out / 'sweep.csv').read_bytes() == before


def test_sweep_errors(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match='config not found'):
        sweep_common_share(tmp_path / 'none.yaml', DOWNSTREAM, [0.5], tmp_path)
    with pytest.raises(ValueError, match=r'values in \(0, 1\]'):
        sweep_common_share(PRETRAIN, DOWNSTREAM, [0.0], tmp_path)
    with pytest.raises(ValueError, match=r'values in \(0, 1\]'):
        sweep_common_share(PRETRAIN, DOWNSTREAM, [], tmp_path)


@pytest.mark.filterwarnings('ignore::UserWarning')
def test_cli(
    ssl4eo_root: Path,
    bigearthnet_root: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    pretrain, downstream = args(ssl4eo_root, bigearthnet_root)
    status = cli_main(
        [
            'sweep-common',
            '--config',
            str(PRETRAIN),
            '--downstream',
            str(DOWNSTREAM),
            '--shares',
            '0.75',
            '--out',
            str(tmp_path / 'cli'),
            '--metric',
            'val_loss',
            *(f'--pretrain-arg={a}' for a in pretrain),
            *(f'--downstream-arg={a}' for a in downstream),
        ]
    )
    assert status == 0
    out = capsys.readouterr().out
    assert 'best share by val_loss: 0.75' in out
    assert (
        cli_main(
            [
                'sweep-common',
                '--config',
                str(PRETRAIN),
                '--downstream',
                str(DOWNSTREAM),
                '--out',
                str(tmp_path / 'cli'),
                '--shares',
                '0.75',
            ]
        )
        == 2
    )  # refuses to overwrite
    with pytest.raises(ValueError, match="metric 'nope' was not logged"):
        sweep_common_share(
            PRETRAIN,
            DOWNSTREAM,
            [0.75],
            tmp_path / 'again',
            metric='nope',
            pretrain_args=pretrain,
            downstream_args=downstream,
        )
