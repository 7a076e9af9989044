"""Shared test fixtures."""

import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest

#: Small datasets in the real on-disk formats, written by their data.py
#: (``tests/data/<dataset>/data.py``), as TorchGeo's tests keep them.
DATA = Path(__file__).resolve().parent / 'data'
ROOT = Path(__file__).resolve().parents[1]


def fake_trainer(split: str) -> SimpleNamespace:
    """Stand-in for a Trainer in a given stage, for ``on_after_batch_transfer``."""
    return SimpleNamespace(
        training=split == 'train',
        validating=split == 'val',
        sanity_checking=False,
        testing=split == 'test',
        predicting=split == 'predict',
    )


def copy_fixture(name: str, dest: Path) -> Path:
    """Copy a fixture dataset into *dest* (fixtures are never written to)."""
    src = DATA / name
    if not src.is_dir():
        pytest.fail(f'fixture {src} is missing: run {src / "data.py"}')
    out = dest / name
    shutil.copytree(src, out, ignore=shutil.ignore_patterns('data.py'))
    return out


@pytest.fixture
def ssl4eo_root(tmp_path: Path) -> Path:
    """A writable copy of the SSL4EO-S12 fixture."""
    return copy_fixture('ssl4eo_s12', tmp_path)


@pytest.fixture
def bigearthnet_root(tmp_path: Path) -> Path:
    """A writable copy of the BigEarthNet v1 (S1 + S2) fixture."""
    return copy_fixture('bigearthnet', tmp_path)


@pytest.fixture
def geonrw_root(tmp_path: Path) -> Path:
    """A writable copy of the GeoNRW fixture."""
    return copy_fixture('geonrw', tmp_path)


@pytest.fixture
def sunrgbd_root(tmp_path: Path) -> Path:
    """A writable copy of the SUN RGB-D fixture (CMX layout)."""
    return copy_fixture('sunrgbd', tmp_path)


@pytest.fixture
def nyuv2_root(tmp_path: Path) -> Path:
    """A writable copy of the NYU-Depth v2 fixture (CMX layout)."""
    return copy_fixture('nyuv2', tmp_path)
