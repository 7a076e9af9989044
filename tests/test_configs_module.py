"""torchgeo-decur config: list, show, locate and copy the configs."""

from pathlib import Path

import pytest

from torchgeo_decur.cli import main
from torchgeo_decur.configs import config, config_folder, config_path, list_configs

from .conftest import ROOT


def test_every_config_listed_with_its_setting() -> None:
    assert config_folder() == ROOT / 'conf'  # a clone: the repository's
    names = list_configs()
    expected = {
        p.relative_to(ROOT / 'conf').with_suffix('').as_posix()
        for p in (ROOT / 'conf').rglob('*.yaml')
    }
    assert set(names) == expected
    assert names['decur_s1s2'].startswith('DeCUR')  # the first comment line
    assert config_path('conf/decur_s1s2.yaml') == ROOT / 'conf' / 'decur_s1s2.yaml'


def test_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(['config']) == 0
    assert 'transfer/bigearthnet_s1s2_linear_1pct' in capsys.readouterr().out
    assert main(['config', 'path', 'decur_s1s2']) == 0
    assert capsys.readouterr().out.strip() == str(ROOT / 'conf' / 'decur_s1s2.yaml')
    assert main(['config', 'show', 'paper/geonrw_rgb_finetune_1pct']) == 0
    assert 'protocol: authors' in capsys.readouterr().out
    # write: into a folder, then refused over the file unless --overwrite
    assert main(['config', 'write', 'decur_s1s2', '--out', str(tmp_path)]) == 0
    written = tmp_path / 'decur_s1s2.yaml'
    assert written.read_bytes() == (ROOT / 'conf' / 'decur_s1s2.yaml').read_bytes()
    written.write_text('mine')
    assert main(['config', 'write', 'decur_s1s2', '--out', str(written)]) == 2
    assert '--overwrite' in capsys.readouterr().err
    assert written.read_text() == 'mine'
    args = ['config', 'write', 'decur_s1s2', '--out', str(written), '--overwrite']
    assert main(args) == 0
    assert written.read_bytes() == (ROOT / 'conf' / 'decur_s1s2.yaml').read_bytes()


def test_errors() -> None:
    with pytest.raises(ValueError, match="unknown config 'decur_s1s22'; did you mean"):
        config_path('decur_s1s22')
    with pytest.raises(ValueError, match='needs a config name'):
        config('show')
    with pytest.raises(ValueError, match="action must be 'list'"):
        config('delete', 'decur_s1s2')  # type: ignore[arg-type]
    with pytest.raises(ValueError, match='needs --out'):
        config('write', 'decur_s1s2')
