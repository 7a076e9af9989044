"""SSL4EO-S12 v1.1 from its Zarr chunk files, on generated files."""

import pickle
import random
import struct
import zipfile
from pathlib import Path

import fsspec
import numpy as np
import pytest
import torch
import zarr
from torchgeo.datasets import DatasetNotFoundError
from zarr.storage import ZipStore

from torchgeo_decur.datasets import SSL4EOS12V11
from torchgeo_decur.datasets.ssl4eo_s12_v11 import S2_OFFSET, band_name, has_data
from torchgeo_decur.datasets.zarr_zip import ZarrZipFile

from .v11_data import TIMES, make_v11, raw_values, write_file

SIZE = 16


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return make_v11(tmp_path / 'v11', files=2, locations=3, size=SIZE)


def which_time(view: torch.Tensor, modality: str, file: int, sample: int) -> int:
    """The timestamp a view was read from, by its values in v1's units."""
    for t in range(TIMES):
        raw = raw_values(modality, file, sample, t, SIZE).astype(np.float32)
        if np.array_equal(view.numpy(), raw):
            return t
    raise AssertionError(f'{modality} view of file {file} sample {sample} not found')


def test_band_name() -> None:
    assert [band_name(b) for b in ('vv', 'B01', 'B8A', 'B12', 'R')] == [
        'VV',
        'B1',
        'B8A',
        'B12',
        'R',
    ]


def test_views_in_v1_units(root: Path) -> None:
    data = SSL4EOS12V11(root, modalities=('S1GRD', 'S2L1C'))
    assert len(data) == 6 and data.modalities == ('s1', 's2c')
    assert data.input_bands['image1'] == ('VV', 'VH')
    assert data.input_bands['image2'][-4:] == ('B9', 'B10', 'B11', 'B12')
    random.seed(0)
    sample = data[4]  # file 2, location 1
    assert sample['image1'].shape == (2, 2, SIZE, SIZE)
    assert sample['image2'].shape == (2, 13, SIZE, SIZE)
    assert sample['image2'].dtype == torch.float32
    for v in range(2):  # the offset is gone: the stored values less 1000
        which_time(sample['image2'][v], 'S2L1C', 2, 1)
        which_time(sample['image1'][v], 'S1GRD', 2, 1)  # float16 dB as float32
    stored = raw_values('S2L1C', 2, 1, 0, SIZE).astype(np.int32) + S2_OFFSET
    assert stored.min() >= S2_OFFSET and float(sample['image2'].max()) < 3000
    assert int(sample['skipped_samples']) == int(sample['skipped_seasons']) == 0
    assert sample['bad_files'] == ''
    # the four views are drawn independently, over all four timestamps
    seen = set()
    for seed in range(20):
        random.seed(seed)
        s = data[0]
        seen.add(tuple(which_time(s['image2'][v], 'S2L1C', 1, 0) for v in range(2)))
    assert len({t for pair in seen for t in pair}) == TIMES and len(seen) > 4


def test_l2a_rgb_and_metadata(root: Path) -> None:
    data = SSL4EOS12V11(root, split='train', modalities=('S2L2A', 'S2RGB'))
    assert (
        len(data.input_bands['image1']) == 12
        and 'B10' not in data.input_bands['image1']
    )
    assert data.modalities == ('s2a', 'S2RGB')
    sample = data[0]
    assert sample['image2'].shape == (2, 3, SIZE, SIZE)
    which_time(sample['image2'][0], 'S2RGB', 1, 0)  # bytes, no offset
    meta = data.metadata(3)
    assert meta['file'].endswith('000002.zarr.zip') and meta['sample_id'] == '0002000'
    assert meta['crs'] == 32633 and len(meta['time']) == TIMES


def test_clouds(tmp_path: Path) -> None:
    ids = ['0000001', '0000002']
    cloud = np.zeros((2, TIMES, SIZE, SIZE), np.uint8)
    cloud[0, :3, : SIZE // 2] = 4  # location 0: half thick cloud but the last
    cloud[1] = 6  # location 1: no data in every timestamp
    name = 'ssl4eos12_train_seasonal_data_000001.zarr.zip'
    for modality in ('S1GRD', 'S2L1C'):
        path = tmp_path / 'train' / modality / name
        write_file(path, modality, 1, ids, SIZE, cloud, no_data=(1,))
    data = SSL4EOS12V11(tmp_path, modalities=('S1GRD', 'S2L1C'), max_cloud=0.2)
    for seed in range(5):
        random.seed(seed)
        sample = data[0]
        times = [which_time(sample[f'image{k}'][v], m, 1, 0) for k, m in
                 ((1, 'S1GRD'), (2, 'S2L1C')) for v in range(2)]  # fmt: skip
        assert times == [3, 3, 3, 3]  # only the clear one, for S1 too
        assert int(sample['skipped_seasons']) == 3
    sample = data[1]  # all no data: replaced by the other location
    assert int(sample['skipped_samples']) >= 1
    assert f'{name}[1] sample 0000002' in sample['bad_files']
    ignoring = SSL4EOS12V11(tmp_path, modalities=('S1GRD', 'S2L1C'))
    random.seed(1)
    assert int(ignoring[0]['skipped_seasons']) == 0  # clouds are drawn
    assert int(ignoring[1]['skipped_samples']) >= 1  # no data never is
    assert 'sample 0000002: no data' in ignoring[1]['bad_files']
    masked = SSL4EOS12V11(tmp_path, modalities=('S1GRD', 'S2L1C'), return_mask=True)
    sample = masked[0]
    assert (
        sample['mask2'].shape == (2, SIZE, SIZE)
        and sample['mask2'].dtype == torch.uint8
    )
    assert 'mask1' not in sample  # Sentinel-1 has no cloud mask


def corrupt_chunk(path: Path, member: str) -> None:
    """Rewrite a zip with garbage in one chunk (a valid zip, a broken chunk)."""
    with zipfile.ZipFile(path) as f:
        members = {i.filename: f.read(i) for i in f.infolist()}
    members[member] = b'not a compressed chunk' * 4
    with zipfile.ZipFile(path, 'w') as f:
        for filename, content in members.items():
            f.writestr(filename, content)


def test_bad_files_are_skipped_and_named(tmp_path: Path) -> None:
    # a third, sound file: replacements have good locations to land on
    root = make_v11(tmp_path / 'v11', files=3, locations=3, size=SIZE)
    folder = root / 'train' / 'S2L1C'
    truncated = folder / 'ssl4eos12_train_seasonal_data_000001.zarr.zip'
    truncated.write_bytes(truncated.read_bytes()[:300])
    # a location that is not the same in every modality
    other = folder / 'ssl4eos12_train_seasonal_data_000002.zarr.zip'
    write_file(other, 'S2L1C', 2, ['0002000', '9999999', '0002002'], SIZE)
    corrupt_chunk(root / 'train' / 'S1GRD' / other.name, 'bands/2.0.0.0.0')
    data = SSL4EOS12V11(root, modalities=('S1GRD', 'S2L1C'))
    assert data.input_bands['image2'][0] == 'B1'  # from the readable file
    sample = data[0]
    assert int(sample['skipped_samples']) >= 1
    assert f'{truncated}: not a readable Zarr zip store' in sample['bad_files']
    sample = data[4]
    assert 'not the same location in every modality' in sample['bad_files']
    assert 'S1GRD 0002001, S2L1C 9999999' in sample['bad_files']
    assert int(data[3]['skipped_samples']) == 0  # its neighbours are fine
    random.seed(0)  # timestamp 0 of location 2's S1 is broken: when drawn,
    samples = [data[5] for _ in range(10)]  # the location is replaced
    broken = [s for s in samples if int(s['skipped_samples'])]
    assert broken and all(f'{other.name}[2]: ' in s['bad_files'] for s in broken)


def test_reads_only_the_chunks_it_needs(
    root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = SSL4EOS12V11(root, modalities=('S1GRD', 'S2L1C'))
    read: list[str] = []
    original = ZarrZipFile._member

    def recording(self: ZarrZipFile, name: str) -> object:
        read.append(name)
        return original(self, name)

    monkeypatch.setattr(ZarrZipFile, '_member', recording)
    data[4]  # file 2, location 1: two views of two modalities
    chunks = [k for k in read if k.startswith('bands/') and '/.z' not in k]
    assert len(chunks) == 4 and all(k.startswith('bands/1.') for k in chunks)


def test_other_chunkings_are_read_through_zarr(tmp_path: Path) -> None:
    """Chunks spanning locations (not v1.1's layout) give the same values."""
    store = ZipStore(tmp_path / 'other.zarr.zip', mode='w')
    group = zarr.open_group(store=store, mode='w', zarr_format=2)
    values = np.arange(3 * 4 * 2 * 5 * 5, dtype=np.int16).reshape(3, 4, 2, 5, 5)
    array = group.create_array(
        'bands', shape=values.shape, dtype=values.dtype, chunks=(2, 2, 2, 5, 5)
    )
    array[...] = values
    store.close()
    file = ZarrZipFile(tmp_path / 'other.zarr.zip')
    np.testing.assert_array_equal(file.location('bands', 2, [3, 0]), values[2, [3, 0]])
    with pytest.raises(TypeError, match='not picklable'):
        pickle.dumps(file)
    with pytest.raises(KeyError, match="has no 'cloud_mask'"):
        file['cloud_mask']


def test_on_device_equals_the_sample_path(root: Path) -> None:
    stored = SSL4EOS12V11(root, modalities=('S1GRD', 'S2L2A'), finish='batch')
    direct = SSL4EOS12V11(root, modalities=('S1GRD', 'S2L2A'))
    random.seed(3)
    raw = stored[2]
    assert raw['image1'].dtype == torch.float16 and raw['image2'].dtype == torch.int16
    random.seed(3)
    expected = direct[2]
    batch = stored.on_device(
        {k: v[None] for k, v in raw.items() if k.startswith('image')}
    )
    for key in ('image1', 'image2'):
        torch.testing.assert_close(batch[key][0], expected[key], rtol=0, atol=0)
    holes = raw['image1'][None].float().clone()  # S1 no-data pixels: the median
    holes[0, 0, 0, :2] = float('nan')
    filled = stored.on_device({'image1': holes, 'image2': raw['image2'][None]})
    assert torch.isfinite(filled['image1']).all()
    band = holes[0, 0, 0]
    median = torch.nanmedian(band.flatten())
    assert torch.equal(filled['image1'][0, 0, 0, :2], median.expand(2, SIZE))
    with pytest.raises(ValueError, match='finish'):
        SSL4EOS12V11(root, finish='worker')  # type: ignore[arg-type]


def test_pickles_without_open_files(root: Path) -> None:
    data = SSL4EOS12V11(root)
    data[0]
    assert data._stores
    copy = pickle.loads(pickle.dumps(data))
    assert copy._stores == {} and len(copy) == len(data)
    assert copy[1]['image1'].shape == data[1]['image1'].shape


def test_nothing_is_written(root: Path) -> None:
    before = {p: p.stat().st_mtime_ns for p in root.rglob('*')}
    data = SSL4EOS12V11(root, modalities=('S1GRD', 'S2L1C', 'S2L2A'))
    for i in range(len(data)):
        data[i]
    assert {p: p.stat().st_mtime_ns for p in root.rglob('*')} == before


def test_bad_arguments(root: Path, tmp_path: Path) -> None:
    with pytest.raises(DatasetNotFoundError):
        SSL4EOS12V11(tmp_path / 'nowhere')
    with pytest.raises(FileNotFoundError, match=r'modality folder not found: .*S2L2A'):
        make_v11(tmp_path / 'part', modalities=('S1GRD',))
        SSL4EOS12V11(tmp_path / 'part', modalities=('S1GRD', 'S2L2A'))
    with pytest.raises(ValueError, match=r"folders of \['S1GRD'"):
        SSL4EOS12V11(root, modalities=('S1GRD', 'DEM'))
    with pytest.raises(ValueError, match='max_cloud'):
        SSL4EOS12V11(root, max_cloud=1.5)
    empty = tmp_path / 'empty'
    (empty / 'train' / 'S1GRD').mkdir(parents=True)
    (empty / 'train' / 'S2L1C').mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match=r'no \*\.zarr\.zip'):
        SSL4EOS12V11(empty)


def test_reads_from_an_fsspec_url(root: Path) -> None:
    """Any fsspec file system with random access (here in memory; HTTP servers
    that answer range requests, as Hugging Face's, work the same way)."""
    memory = fsspec.filesystem('memory')
    for path in [*root.glob('train/S1GRD/*'), *root.glob('train/S2L1C/*')]:
        memory.pipe(
            f'/v11-url-test/{path.relative_to(root).as_posix()}', path.read_bytes()
        )
    try:
        remote = SSL4EOS12V11('memory://v11-url-test', modalities=('S1GRD', 'S2L1C'))
        local = SSL4EOS12V11(root, modalities=('S1GRD', 'S2L1C'))
        assert len(remote) == len(local) == 6
        for index in (0, 4):
            random.seed(index)
            a = remote[index]
            random.seed(index)
            b = local[index]
            for key in ('image1', 'image2'):
                assert torch.equal(a[key], b[key])
        with pytest.raises(
            FileNotFoundError, match=r'memory://v11-url-test/train/S2L2A'
        ):
            SSL4EOS12V11('memory://v11-url-test', modalities=('S1GRD', 'S2L2A'))
    finally:
        memory.rm('/v11-url-test', recursive=True)


@pytest.mark.parametrize('dtype', [np.float16, np.float32])
def test_has_data_sentinel1_matches_the_definition(dtype: type) -> None:
    """A finite non-zero pixel anywhere, whatever the special values around it
    (float16 is checked on its bits)."""
    specials = [0.0, -0.0, np.nan, np.inf, -np.inf]
    for value in [*specials, 6e-8, -3.5, 65504.0]:
        view = np.zeros((2, 70, 70), dtype)  # more than the first pixels checked
        view[0, :2] = np.nan
        view[1, 69, 69] = value
        expected = bool((np.isfinite(view) & (view != 0)).any())
        assert has_data(view, 'S1GRD') is expected, value
        assert expected is (value not in specials and not np.isnan(value))


def test_has_data_sentinel2_and_others() -> None:
    view = np.full((13, 70, 70), S2_OFFSET, np.int16)
    assert not has_data(view, 'S2L1C')
    view[12, 69, 69] = S2_OFFSET + 1  # in the last pixel of the last band
    assert has_data(view, 'S2L2A')
    assert has_data(view - S2_OFFSET, 'S2L1C', offset=0)
    assert not has_data(np.zeros((1, 70, 70), np.float32), 'DEM')
    assert has_data(np.eye(70, dtype=np.float32)[None], 'DEM')


def test_members_from_the_memory_map(root: Path, tmp_path: Path) -> None:
    """Stored members are read from the mapped file, CRC-32 checked, and equal
    zipfile's bytes; compressed members and in-memory stores work too."""
    path = root / 'train' / 'S2L1C' / 'ssl4eos12_train_seasonal_data_000001.zarr.zip'
    with zipfile.ZipFile(path) as f:
        members = {i.filename: f.read(i) for i in f.infolist()}
        assert {i.compress_type for i in f.infolist()} == {zipfile.ZIP_STORED}
    for store in (ZarrZipFile(path), ZarrZipFile('x.zarr.zip', path.read_bytes())):
        for name, content in members.items():
            data = store._member(name)
            assert isinstance(data, memoryview) and bytes(data) == content
    # a flipped byte inside a chunk: the CRC-32 catches it, as zipfile would
    key = 'bands/1.2.0.0.0'
    info = zipfile.ZipFile(path).getinfo(key)
    raw = bytearray(path.read_bytes())
    name_length, extra_length = struct.unpack(
        '<HH', raw[info.header_offset + 26 : info.header_offset + 30]
    )
    start = info.header_offset + 30 + name_length + extra_length
    raw[start + info.file_size // 2] ^= 0xFF
    damaged = tmp_path / 'damaged.zarr.zip'
    damaged.write_bytes(bytes(raw))
    with pytest.raises(zipfile.BadZipFile, match=f"bad CRC-32 for member '{key}'"):
        ZarrZipFile(damaged)._member(key)
    # a compressed (deflated) copy goes through zipfile, same values
    deflated = tmp_path / 'deflated.zarr.zip'
    with zipfile.ZipFile(deflated, 'w', zipfile.ZIP_DEFLATED) as f:
        for name, content in members.items():
            f.writestr(name, content)
    store = ZarrZipFile(deflated)
    assert store._member(key) == members[key]
    np.testing.assert_array_equal(
        store.location('bands', 1, [2, 0]),
        ZarrZipFile(path).location('bands', 1, [2, 0]),
    )
    with pytest.raises(KeyError):
        ZarrZipFile(path)._member('bands/9.9.0.0.0')
