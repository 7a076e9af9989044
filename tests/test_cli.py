from pathlib import Path

import pytest

from torchgeo_decur.cli import build_parser, main
from torchgeo_decur.datasets import SSL4EOS12Pair


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
