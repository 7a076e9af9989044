"""Published files are checked by SHA-256 before they are read."""

import hashlib
import urllib.error
from pathlib import Path

import pytest
import torch

from torchgeo_decur.models import ResNet50_Weights
from torchgeo_decur.models.weights import HashMismatchError
from torchgeo_decur.models.weights.verify import cached_file, sha256_of, verify_file

URL = 'https://example.org/files/weights.pth'


def test_sha256_of(tmp_path: Path) -> None:
    path = tmp_path / 'f'
    path.write_bytes(b'x' * (3 << 20))
    assert sha256_of(path) == hashlib.sha256(b'x' * (3 << 20)).hexdigest()


def test_known_hash(tmp_path: Path) -> None:
    path = tmp_path / 'weights.pth'
    path.write_bytes(b'published')
    good = hashlib.sha256(b'published').hexdigest()
    assert verify_file(path, good, URL) == good
    with pytest.raises(HashMismatchError, match=rf'expected {"0" * 64} \(published\)'):
        verify_file(path, '0' * 64, URL)


def test_trust_on_first_use(tmp_path: Path) -> None:
    path = tmp_path / 'weights.pth'
    path.write_bytes(b'first')
    verify_file(path, None, URL)
    record = tmp_path / 'weights.pth.sha256'
    assert record.read_text().strip() == hashlib.sha256(b'first').hexdigest()
    verify_file(path, None, URL)
    path.write_bytes(b'replaced')
    with pytest.raises(HashMismatchError, match=r'weights\.pth\.sha256'):
        verify_file(path, None, URL)


def test_offline_download_names_the_place(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def offline(url: str, dst: str, *args: object, **kwargs: object) -> None:
        raise urllib.error.URLError('no network')

    monkeypatch.setattr(torch.hub, 'download_url_to_file', offline)
    where = tmp_path / 'checkpoints' / 'weights.pth'
    with pytest.raises(OSError, match=rf'put it at {where}'):
        cached_file(URL, None, model_dir=str(tmp_path / 'checkpoints'))


def test_download_then_verify(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def download(url: str, dst: str, *args: object, **kwargs: object) -> None:
        Path(dst).write_bytes(b'served')

    monkeypatch.setattr(torch.hub, 'download_url_to_file', download)
    good = hashlib.sha256(b'served').hexdigest()
    folder = tmp_path / 'cache'
    assert cached_file(URL, good, model_dir=str(folder)) == folder / 'weights.pth'
    (folder / 'weights.pth').unlink()
    with pytest.raises(HashMismatchError):
        cached_file(URL, 'f' * 64, model_dir=str(folder))


def test_registry_entry_refuses_a_wrong_file(
    hub_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    entry = ResNet50_Weights.DECUR_RGB_DEM_DEM
    assert entry.meta['sha256'] is None  # no published hash is known (docs)
    assert entry.get_state_dict()['conv1.weight'].shape[1] == 1
    monkeypatch.setitem(entry.meta, 'sha256', '0' * 64)
    with pytest.raises(HashMismatchError, match=entry.meta['file']):
        entry.get_state_dict()
