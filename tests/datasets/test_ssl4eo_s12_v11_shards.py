"""SSL4EO-S12 v1.1 streamed from WebDataset shards, on generated shards."""

import functools
import http.server
import io
import tarfile
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from torchgeo_decur.datasets import SSL4EOS12V11Shards
from torchgeo_decur.datasets.ssl4eo_s12_v11 import to_v1_units
from torchgeo_decur.datasets.ssl4eo_s12_v11_shards import expand_shards
from torchgeo_decur.datasets.zarr_zip import ZarrZipFile

from .v11_data import TIMES, make_v11, make_v11_shards

SIZE = 16


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return make_v11_shards(tmp_path / 'shards', shards=2, locations=3, size=SIZE)


def test_expand_shards() -> None:
    assert expand_shards('s_{000008..000011}.tar') == [
        's_000008.tar',
        's_000009.tar',
        's_000010.tar',
        's_000011.tar',
    ]
    assert expand_shards('one.tar') == ['one.tar']
    with pytest.raises(ValueError, match='empty shard range'):
        expand_shards('s_{3..1}.tar')


def test_same_tensors_as_the_zarr_files(root: Path, tmp_path: Path) -> None:
    chunks = make_v11(tmp_path / 'zarr', files=2, locations=3, size=SIZE)
    data = SSL4EOS12V11Shards(
        str(root), modalities=('S1GRD', 'S2L2A'), return_metadata=True
    )
    assert data.input_bands['image2'][-2:] == ('B11', 'B12')
    samples = list(data)
    assert len(samples) == 6 and samples[0]['bad_files'] == ''
    for sample in samples:
        shard, key = sample['location'].split(':')
        file, index = int(shard[-10:-4]), int(key) % 1000
        name = f'ssl4eos12_train_seasonal_data_{file:06d}.zarr.zip'
        for image, modality in (('image1', 'S1GRD'), ('image2', 'S2L2A')):
            stored = ZarrZipFile(chunks / 'train' / modality / name)
            every = to_v1_units(
                stored.location('bands', index, list(range(TIMES))), modality
            )
            for view in sample[image]:  # each view is one of its timestamps
                assert any(np.array_equal(view.numpy(), t) for t in every)


def test_dem_and_draws(root: Path) -> None:
    data = SSL4EOS12V11Shards(str(root), modalities=('S2L1C', 'DEM'), seed=1)
    first = list(data)
    dem = first[0]['image2']
    assert dem.shape == (2, 1, SIZE, SIZE) and torch.equal(dem[0], dem[1])
    again = list(data)  # the same epoch: the same views
    assert all(
        torch.equal(a['image1'], b['image1']) for a, b in zip(first, again, strict=True)
    )
    data.set_epoch(1)
    other = list(data)
    assert any(
        not torch.equal(a['image1'], b['image1'])
        for a, b in zip(first, other, strict=True)
    )


def test_ranks_and_workers_share_the_shards(tmp_path: Path) -> None:
    root = make_v11_shards(tmp_path / 's', shards=4, locations=2, size=8,
                           modalities=('S1GRD', 'S2L1C'))  # fmt: skip
    seen: Counter[str] = Counter()
    for rank in range(2):
        data = SSL4EOS12V11Shards(
            str(root), return_metadata=True, rank=rank, world_size=2, seed=5
        )
        loader = DataLoader(data, batch_size=None, num_workers=2)
        seen.update(sample['location'] for sample in loader)
    assert len(seen) == 8 and set(seen.values()) == {1}
    data = SSL4EOS12V11Shards(str(root), seed=5)
    every = [data.shards_of(r, 2, w, 2) for r in range(2) for w in range(2)]
    assert sorted(s for shards in every for s in shards) == data.shards


@pytest.fixture
def server(root: Path) -> Iterator[str]:
    handler = functools.partial(
        http.server.SimpleHTTPRequestHandler, directory=str(root)
    )
    handler.log_message = lambda *args: None  # type: ignore[method-assign]
    httpd = http.server.ThreadingHTTPServer(('127.0.0.1', 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f'http://127.0.0.1:{httpd.server_address[1]}'
    httpd.shutdown()


def test_streams_over_http(root: Path, server: str) -> None:
    local = list(SSL4EOS12V11Shards(str(root), return_metadata=True))
    remote = SSL4EOS12V11Shards(
        server, shards='ssl4eos12_shard_{000001..000002}.tar', return_metadata=True
    )
    streamed = list(remote)
    assert [s['location'] for s in streamed] == [s['location'] for s in local]
    for a, b in zip(streamed, local, strict=True):
        assert torch.equal(a['image2'], b['image2'])
    with pytest.raises(FileNotFoundError, match='cannot read the shard'):
        SSL4EOS12V11Shards(server, shards=['missing.tar'])


def test_bad_members_and_shards(root: Path, tmp_path: Path) -> None:
    folder = root / 'train' / 'S2L1C'
    first = folder / 'ssl4eos12_shard_000001.tar'
    with tarfile.open(first) as tar:  # member 1: not a zip file
        members = [(m, tar.extractfile(m).read()) for m in tar]  # type: ignore[union-attr]
    with tarfile.open(first, 'w') as tar:
        for k, (member, content) in enumerate(members):
            content = b'garbage' if k == 1 else content
            member.size = len(content)
            tar.addfile(member, io.BytesIO(content))
    second = folder / 'ssl4eos12_shard_000002.tar'
    with tarfile.open(second) as tar:  # S2L1C lacks the second location
        members = [(m, tar.extractfile(m).read()) for m in tar]  # type: ignore[union-attr]
    with tarfile.open(second, 'w') as tar:
        for k, (member, content) in enumerate(members):
            if k != 1:
                tar.addfile(member, io.BytesIO(content))
    before = {p: p.stat().st_mtime_ns for p in root.rglob('*')}
    samples = list(SSL4EOS12V11Shards(str(root), return_metadata=True))
    locations = [s['location'] for s in samples]
    assert locations == [
        'ssl4eos12_shard_000001.tar:0001000',
        'ssl4eos12_shard_000001.tar:0001002',
        'ssl4eos12_shard_000002.tar:0002000',
    ]
    assert 'ssl4eos12_shard_000001.tar:0001001: ' in samples[1]['bad_files']
    assert 'not a readable Zarr zip store' in samples[1]['bad_files']
    assert int(samples[1]['skipped_samples']) == 1
    assert {p: p.stat().st_mtime_ns for p in root.rglob('*')} == before  # read only
    with pytest.raises(FileNotFoundError, match=r'no \*\.tar shards in .*nowhere'):
        SSL4EOS12V11Shards(str(tmp_path / 'nowhere'))


def test_desynced_streams_are_named(root: Path) -> None:
    second = root / 'train' / 'S2L1C' / 'ssl4eos12_shard_000002.tar'
    with tarfile.open(second) as tar:
        members = [(m, tar.extractfile(m).read()) for m in tar]  # type: ignore[union-attr]
    with tarfile.open(second, 'w') as tar:
        for k, (member, content) in enumerate(members):
            if k != 1:
                tar.addfile(member, io.BytesIO(content))
    data = SSL4EOS12V11Shards(str(root), return_metadata=True, seed=0)
    data.shards = ['ssl4eos12_shard_000002.tar', 'ssl4eos12_shard_000001.tar']
    data.set_epoch(0)
    samples = list(data)
    assert len(samples) == 4  # 0002000, then the rest of that shard is skipped
    named = '\n'.join(s['bad_files'] for s in samples)
    assert 'locations differ between modalities at member 1 (0002001, 0002002)' in named


def test_clouds_and_arguments(tmp_path: Path) -> None:
    cloud = np.zeros((TIMES, SIZE, SIZE))
    cloud[:3] = 4  # thick cloud but the last timestamp
    root = make_v11_shards(
        tmp_path / 'c',
        shards=1,
        locations=1,
        size=SIZE,
        modalities=('S1GRD', 'S2L1C'),
        clouds={(1, 0): cloud},
    )
    data = SSL4EOS12V11Shards(str(root), max_cloud=0.5, return_mask=True)
    (sample,) = list(data)
    assert int(sample['skipped_seasons']) == 3 and not sample['mask2'].any()
    with pytest.raises(TypeError, match='streams its shards'):
        data[0]
    with pytest.raises(TypeError, match='length is not known'):
        len(data)
    with pytest.raises(ValueError, match="shard folders of \\['S1GRD'"):
        SSL4EOS12V11Shards(str(root), modalities=('S1GRD', 'RGB'))
    batch = {k: v[None] for k, v in sample.items() if k.startswith('image')}
    stored = SSL4EOS12V11Shards(str(root), max_cloud=0.5, finish='batch')
    (raw,) = list(stored)
    assert raw['image2'].dtype == torch.int16  # as stored, put in v1's units below
    done = stored.on_device(
        {k: v[None] for k, v in raw.items() if k.startswith('image')}
    )
    for key in ('image1', 'image2'):
        torch.testing.assert_close(done[key], batch[key], rtol=0, atol=0)
