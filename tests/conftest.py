"""Shared test fixtures."""

import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest

#: Read-only fixtures in the real dataset formats, beside the checkout.
FIXTURES = Path(__file__).resolve().parents[1].parent / 'shared' / 'fixtures'
TORCHGEO_FIXTURES = FIXTURES / 'torchgeo'
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
    src = TORCHGEO_FIXTURES / name
    if not src.is_dir():
        pytest.fail(f'fixture {src} is missing: shared/ must sit beside the checkout')
    out = dest / name
    shutil.copytree(src, out)
    return out


@pytest.fixture
def ssl4eo_root(tmp_path: Path) -> Path:
    """A writable copy of the SSL4EO-S12 fixture."""
    return copy_fixture('ssl4eo_s12', tmp_path)


@pytest.fixture
def bigearthnet_root(tmp_path: Path) -> Path:
    """A writable copy of the BigEarthNet v1 (S1 + S2) fixture."""
    return copy_fixture('bigearthnet_v1', tmp_path)


@pytest.fixture
def geonrw_root(tmp_path: Path) -> Path:
    """A writable copy of the GeoNRW fixture."""
    return copy_fixture('geonrw', tmp_path)
