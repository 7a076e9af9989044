"""The worked example of the user guide: a new sensor pair from outside the library."""

import ast
import os
import re
import subprocess
import sys
from pathlib import Path

import torch

from torchgeo_decur.modalities import modalities

from .conftest import ROOT

EXAMPLE = ROOT / 'tests' / 'example'


def test_thermal_pair_trains_with_torchgeo_fit(tmp_path: Path) -> None:
    """An optical + thermal pair defined in a user package trains one step."""
    env = {**os.environ, 'PYTHONPATH': str(EXAMPLE)}
    cmd = [
        sys.executable,
        '-m',
        'torchgeo',
        'fit',
        '--config',
        str(EXAMPLE / 'thermal.yaml'),
        '--trainer.default_root_dir',
        str(tmp_path),
        '--trainer.enable_checkpointing=true',
    ]
    result = subprocess.run(
        cmd, capture_output=True, text=True, cwd=tmp_path, env=env, timeout=600
    )
    assert result.returncode == 0, result.stderr[-3000:]
    (checkpoint,) = tmp_path.rglob('*.ckpt')
    ckpt = torch.load(checkpoint, map_location='cpu', weights_only=False)
    assert ckpt['global_step'] == 1
    hp = ckpt['hyper_parameters']
    # channel counts taken from the registered modalities, and recorded
    channels = [e['in_channels'] for e in hp['encoders'].values()]
    assert channels == [3, 1]
    assert hp['model1'] is None  # the example uses no deprecated alias
    thermal = ckpt['torchgeo_decur']['modalities'][1]
    assert thermal['name'] == 'thermal' and thermal['bands'] == ['LWIR']
    assert ckpt['state_dict']['encoders.thermal.conv1.weight'].shape[1] == 1


def test_user_guide_shows_the_example() -> None:
    """The guide's 'your own sensor pair' code blocks are the example's files.

    (``tests/test_docs.py`` checks every block marked as a file the same way.)
    """
    page = (ROOT / 'docs' / 'own_sensor_pair.md').read_text()
    blocks = re.findall(r'```(?:python|yaml)\n(.*?)```', page, flags=re.S)
    code = (EXAMPLE / 'thermal_pair' / '__init__.py').read_text()
    config = (EXAMPLE / 'thermal.yaml').read_text()
    assert code in blocks
    assert config in blocks


def _is_modality_name(node: ast.AST, names: set[str]) -> bool:
    return isinstance(node, ast.Constant) and node.value in names


def _mentions_modality(node: ast.AST) -> bool:
    return any(
        'modalit' in (getattr(n, 'id', '') or getattr(n, 'attr', ''))
        for n in ast.walk(node)
    )


def test_no_branching_on_modality_names() -> None:
    """Only torchgeo_decur/modalities.py decides by a modality's name."""
    names = set(modalities())
    offenders = []
    for path in (ROOT / 'torchgeo_decur').rglob('*.py'):
        if path.name == 'modalities.py':
            continue
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Match) and _mentions_modality(node.subject):
                for case in node.cases:
                    if any(_is_modality_name(n, names) for n in ast.walk(case.pattern)):
                        offenders.append(f'{path}:{case.pattern.lineno}')
            if isinstance(node, ast.Compare):
                sides = [node.left, *node.comparators]
                literal = any(
                    _is_modality_name(n, names) for s in sides for n in ast.walk(s)
                )
                if literal and any(_mentions_modality(s) for s in sides):
                    offenders.append(f'{path}:{node.lineno}')
    assert offenders == []
