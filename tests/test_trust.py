"""A file from outside is data, never code: every entry point reads it safely."""

import argparse
import ast
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from torchgeo_decur.cli import main as cli_main
from torchgeo_decur.explain import load_task
from torchgeo_decur.export import export_checkpoint
from torchgeo_decur.models import create_encoder, read_decur_checkpoint
from torchgeo_decur.tasks import DeCURTask, MultimodalClassificationTask
from torchgeo_decur.trust import UntrustedFileError, load_file

from .conftest import ROOT


class Payload:
    """Unpickling it creates *marker*: the side effect a malicious file has."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return open, (str(self.marker), 'w')


@pytest.fixture
def evil(tmp_path: Path) -> tuple[Path, Path]:
    """A Lightning-looking checkpoint that runs code when unpickled in full."""
    marker = tmp_path / 'PWNED'
    path = tmp_path / 'evil.ckpt'
    payload = {'hyper_parameters': {'x': Payload(marker)}, 'state_dict': {}}
    torch.save(payload, path)
    return path, marker


def test_load_file_refuses_code(evil: tuple[Path, Path]) -> None:
    path, marker = evil
    with pytest.raises(UntrustedFileError, match=r'evil\.ckpt.*would call _io\.open'):
        load_file(path)
    assert not marker.exists()
    with pytest.warns(UserWarning, match='runs any code'):
        load_file(path, trust=True)
    assert marker.exists()


def test_load_file_accepts_plain_types(tmp_path: Path) -> None:
    path = tmp_path / 'plain.pth'
    content = {
        'args': argparse.Namespace(lr=0.1),
        'epoch': np.int64(100),
        'loss': np.float64(1.5),
        'model': {'w': torch.ones(2)},
        'root': Path('/data'),
    }
    torch.save(content, path)
    loaded = load_file(path)
    assert loaded['args'].lr == 0.1
    assert loaded['epoch'] == 100
    assert loaded['root'] == Path('/data')
    assert torch.equal(loaded['model']['w'], torch.ones(2))


def test_load_file_damaged_and_foreign(tmp_path: Path) -> None:
    text = tmp_path / 'text.pth'
    text.write_text('not a checkpoint')
    with pytest.raises(pickle.UnpicklingError, match='not a file written by'):
        load_file(text)
    marker = tmp_path / 'PWNED'
    raw = tmp_path / 'raw.pkl'
    raw.write_bytes(pickle.dumps({'x': Payload(marker)}))
    with pytest.raises(UntrustedFileError, match=r'raw\.pkl was not loaded'):
        load_file(raw)
    assert not marker.exists()


def test_weight_readers_refuse_code(evil: tuple[Path, Path]) -> None:
    path, marker = evil
    with pytest.raises(UntrustedFileError):
        read_decur_checkpoint(path)
    with pytest.raises(UntrustedFileError):
        create_encoder('resnet18', in_channels=2, weights=str(path))
    with pytest.raises(UntrustedFileError):
        DeCURTask(model1='resnet18', model2='resnet18', weights1=str(path))
    with pytest.raises(UntrustedFileError):
        MultimodalClassificationTask(
            model='resnet18', weights=str(path), in_channels=[2, 13]
        )
    assert not marker.exists()


def test_export_and_explain_refuse_code(
    evil: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path, marker = evil
    out = tmp_path / 'out'
    with pytest.raises(UntrustedFileError):
        export_checkpoint(path, out)
    with pytest.raises(UntrustedFileError):
        load_task(path)
    assert cli_main(['export', str(path), '--out', str(out)]) == 2
    assert '--trust-checkpoint' in capsys.readouterr().err
    config = tmp_path / 'data.yaml'
    config.write_text('data: {}\n')
    args = ['--checkpoint', str(path), '--data_config', str(config)]
    assert cli_main(['explain', *args, '--out', str(out)]) == 2
    assert 'was not loaded' in capsys.readouterr().err
    assert not marker.exists()
    assert list(out.iterdir()) == []  # checked writable first, nothing written


def test_trusted_export_runs_the_code(evil: tuple[Path, Path], tmp_path: Path) -> None:
    path, marker = evil
    with pytest.warns(UserWarning, match='runs any code'):
        with pytest.raises(ValueError, match='not a DeCUR'):
            export_checkpoint(path, tmp_path / 'out', trust_checkpoint=True)
    assert marker.exists()


def test_unwritable_output_fails_before_the_work(
    evil: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    blocker = tmp_path / 'a-file'
    blocker.write_text('')
    with pytest.raises(PermissionError, match='cannot write to the output folder'):
        export_checkpoint(evil[0], blocker / 'out')  # before reading the file
    config = tmp_path / 'data.yaml'
    config.write_text('data: {}\n')
    args = ['--checkpoint', str(evil[0]), '--data_config', str(config)]
    assert cli_main(['explain', *args, '--out', str(blocker / 'out')]) == 2
    assert 'cannot write to the output folder' in capsys.readouterr().err
    assert cli_main(['explain', *args, '--out', str(tmp_path), '--ig_steps', '0']) == 2
    assert 'ig_steps' in capsys.readouterr().err


def test_only_the_trust_module_unpickles() -> None:
    """Every torch.load of the package goes through trust.load_file."""
    calls = []
    for path in (ROOT / 'torchgeo_decur').rglob('*.py'):
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr in ('load', 'load_state_dict_from_url')
                and isinstance(node.func.value, ast.Name | ast.Attribute)
                and ast.unparse(node.func.value) in ('torch', 'torch.hub', 'pickle')
            ):
                calls.append(str(path.relative_to(ROOT)))
    assert calls == ['torchgeo_decur/trust.py'] * 2  # safe, and trust=True
