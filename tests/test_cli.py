from pathlib import Path

import pytest
import yaml

from torchgeo_decur.cli import build_parser, main
from torchgeo_decur.datasets import SSL4EOS12Pair

from .conftest import ROOT


def test_parser_has_the_commands() -> None:
    parser = build_parser()
    args = parser.parse_args(['export', 'a.ckpt', '--out', 'dir'])
    assert (args.checkpoint, args.out, args.overwrite) == ('a.ckpt', 'dir', False)
    with pytest.raises(SystemExit):
        parser.parse_args(['export', 'a.ckpt'])  # --out is required


def test_demo_data(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / 'demo'
    argv = ['demo-data', str(root), '--locations', '3', '--size', '32']
    assert main(argv) == 0
    assert len(SSL4EOS12Pair(root)) == 3
    assert main(argv) == 0  # second call: the data is there already
    assert str(root) in capsys.readouterr().out


def test_demo_data_refuses_foreign_folder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / 'mine.txt').write_text('user data')
    assert main(['demo-data', str(tmp_path), '--locations', '2']) == 2
    assert 'error' in capsys.readouterr().err
    assert (tmp_path / 'mine.txt').read_text() == 'user data'


def test_demo_end_to_end(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The `make demo` path, shrunk: data once, `torchgeo fit`, checkpoint named."""
    config = yaml.safe_load((ROOT / 'conf' / 'decur_s1s2_demo.yaml').read_text())
    config['model']['init_args']['projector_dims'] = [32, 32, 32]
    config['data']['init_args'].update(
        batch_size=2, num_workers=0, patch_size=32, val_fraction=0.0
    )
    small = tmp_path / 'demo.yaml'
    small.write_text(yaml.safe_dump(config))
    root = tmp_path / 'data'
    assert main(['demo-data', str(root), '--locations', '4', '--size', '32']) == 0
    argv = ['demo', '--root', str(root), '--config', str(small)]
    argv += ['--output', str(tmp_path / 'out'), '--trainer.max_steps=1']
    argv += ['--trainer.enable_progress_bar=false']
    assert main(argv) == 0
    out = capsys.readouterr().out
    line = next(x for x in out.splitlines() if 'Pretrained DeCUR checkpoint' in x)
    assert Path(line.split(': ', 1)[1]).is_file()


def test_demo_without_config(tmp_path: Path) -> None:
    assert main(['demo', '--config', str(tmp_path / 'missing.yaml')]) == 2
