"""The wheel, installed outside the repository, serves its configs and trains.

Builds the wheel (no build isolation: the build needs only setuptools, which
the environment has), installs it without dependencies into a temporary
target, and from a folder outside the repository writes
``decur_s1s2_demo.yaml`` with ``torchgeo-decur config`` and trains one
``fast_dev_run`` step with it on generated data.
"""

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from .conftest import ROOT

pytestmark = pytest.mark.filterwarnings('ignore::DeprecationWarning')


def run(args: list[str], cwd: Path, env: dict[str, str]) -> str:
    result = subprocess.run(
        args, cwd=cwd, env=env, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


@pytest.fixture(scope='module')
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp('wheel')
    build = tmp_path_factory.mktemp('build')
    env = {**os.environ, 'TMPDIR': str(build)}
    pip = [sys.executable, '-m', 'pip']
    built_before = (ROOT / 'build').exists()
    run(
        [
            *pip,
            'wheel',
            '--no-deps',
            '--no-build-isolation',
            '-q',
            '-w',
            str(out),
            str(ROOT),
        ],
        build,
        env,
    )
    if not built_before:  # setuptools builds in the tree without isolation
        shutil.rmtree(ROOT / 'build', ignore_errors=True)
    (path,) = out.glob('torchgeo_decur-*.whl')
    return path


def test_wheel_holds_configs_and_licence(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        for config in sorted((ROOT / 'conf').rglob('*.yaml')):
            member = f'torchgeo_decur/conf/{config.relative_to(ROOT / "conf")}'
            assert member in names, member
            assert archive.read(member) == config.read_bytes()  # byte-identical
        (licence,) = [n for n in names if n.endswith('/licenses/LICENSE')]
        assert archive.read(licence) == (ROOT / 'LICENSE').read_bytes()


def test_installed_wheel_trains_with_its_config(wheel: Path, tmp_path: Path) -> None:
    target, work = tmp_path / 'site', tmp_path / 'outside'
    work.mkdir()
    env = {**os.environ, 'PYTHONPATH': str(target)}
    run(
        [
            sys.executable,
            '-m',
            'pip',
            'install',
            '--no-deps',
            '-q',
            '--target',
            str(target),
            str(wheel),
        ],
        work,
        env,
    )
    python = [sys.executable, '-c']
    where = run(
        [*python, 'import torchgeo_decur; print(torchgeo_decur.__file__)'], work, env
    )
    assert where.startswith(str(target)), where  # not the clone
    cli = (
        'import sys; from torchgeo_decur.cli import main; sys.exit(main(sys.argv[1:]))'
    )
    listed = run([*python, cli, 'config'], work, env)
    assert 'decur_s1s2_demo' in listed and 'transfer/' in listed
    run([*python, cli, 'config', 'write', 'decur_s1s2_demo', '--out', '.'], work, env)
    config = work / 'decur_s1s2_demo.yaml'
    assert config.read_bytes() == (ROOT / 'conf' / 'decur_s1s2_demo.yaml').read_bytes()
    data = work / 'data'
    run(
        [*python, cli, 'demo-data', str(data), '--locations', '4', '--size', '40'],
        work,
        env,
    )
    args = [
        'fit',
        '--config',
        'decur_s1s2_demo.yaml',
        '--data.init_args.root',
        str(data),
        '--data.init_args.num_workers=0',
        '--data.init_args.batch_size=2',
        '--trainer.fast_dev_run=true',
        '--trainer.accelerator=cpu',
        '--trainer.enable_progress_bar=false',
    ]
    fit = 'import sys; from torchgeo.main import main; main(sys.argv[1:])'
    run([*python, fit, *args], work, env)
