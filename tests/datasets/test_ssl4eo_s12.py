import os
import random
import re
import shutil
import warnings
from pathlib import Path

import matplotlib
import numpy as np
import pytest
import rasterio
import torch
import torch.nn.functional as F
from torchgeo.datasets import DatasetNotFoundError

from torchgeo_decur.datasets import SSL4EOS12Pair, band_resolution
from torchgeo_decur.datasets import ssl4eo_s12 as pair_module

matplotlib.use('Agg')

#: The fixture's tiles are 36 px (20 m bands 18 px, 60 m bands 6 px), stored
#: at native resolution like the real 264 px dataset.
SIZE = 36


def first_season(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(random, 'choice', lambda seq: seq[0])


def season_dir(root: Path, modality: str, location: str, i: int = 0) -> Path:
    return sorted((root / modality / location).iterdir())[i]


def test_length_and_shapes(ssl4eo_root: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        ds = SSL4EOS12Pair(ssl4eo_root)  # tile size read from the data
    assert ds.size == SIZE
    assert len(ds) == 2
    assert ds.ids == ['0000000', '0000001']
    assert ds.modalities == ('s1', 's2c')
    assert ds.bands1 == ('VV', 'VH')
    assert len(ds.bands2) == 13 and ds.bands2[10] == 'B10'
    sample = ds[1]
    assert set(sample) == {
        'image1',
        'image2',
        'skipped_samples',
        'skipped_seasons',
        'bad_files',
    }
    assert sample['skipped_samples'] == sample['skipped_seasons'] == 0
    assert sample['bad_files'] == ''
    assert set(SSL4EOS12Pair(ssl4eo_root, on_bad_sample='raise')[0]) == {
        'image1',
        'image2',
    }
    assert sample['image1'].shape == (2, 2, SIZE, SIZE)
    assert sample['image2'].shape == (2, 13, SIZE, SIZE)
    assert sample['image1'].dtype == sample['image2'].dtype == torch.float32
    # raw values: backscatter in dB, digital numbers
    assert sample['image1'].max() < 0
    assert sample['image2'].min() >= 0 and sample['image2'].max() > 100


def test_raw_values(ssl4eo_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first_season(monkeypatch)
    ds = SSL4EOS12Pair(ssl4eo_root, size=SIZE)
    sample = ds[0]
    # both views drew the first season
    assert torch.equal(sample['image1'][0], sample['image1'][1])

    s1 = season_dir(ssl4eo_root, 's1', '0000000')
    for b, band in enumerate(('VV', 'VH')):
        with rasterio.open(s1 / f'{band}.tif') as f:
            raw = f.read(1)
        np.testing.assert_array_equal(sample['image1'][0, b].numpy(), raw)

    s2 = season_dir(ssl4eo_root, 's2c', '0000000')
    with rasterio.open(s2 / 'B4.tif') as f:  # 10 m band: no resampling
        raw = f.read(1).astype(np.float32)
    np.testing.assert_array_equal(sample['image2'][0, 3].numpy(), raw)

    with rasterio.open(s2 / 'B1.tif') as f:  # 60 m band: 6 px, bilinear to 36
        raw = torch.from_numpy(f.read(1).astype(np.float32))
    assert raw.shape == (6, 6)
    up = F.interpolate(raw[None, None], size=(SIZE, SIZE), mode='bilinear')[0, 0]
    torch.testing.assert_close(sample['image2'][0, 0], up)


def test_resample_on_the_batch(ssl4eo_root: Path) -> None:
    """resample='batch' hands over native-size groups; on_device assembles them."""
    per_sample = SSL4EOS12Pair(ssl4eo_root, on_bad_sample='raise')
    per_batch = SSL4EOS12Pair(ssl4eo_root, resample='batch', on_bad_sample='raise')
    assert per_batch.stored_size['B4'] == SIZE
    assert per_batch.stored_size['B11'] == SIZE // 2
    assert per_batch.stored_size['B9'] == SIZE // 6
    assert per_batch.groups(per_batch.bands2) == {
        36: [1, 2, 3, 7],
        6: [0, 9, 10],
        18: [4, 5, 6, 8, 11, 12],
    }
    random.seed(3)
    full = [per_sample[i] for i in range(2)]
    random.seed(3)
    parts = [per_batch[i] for i in range(2)]
    assert set(parts[0]) == {'image1', 'image2', 'image2@18', 'image2@6'}
    assert parts[0]['image2'].shape == (2, 4, SIZE, SIZE)
    assert parts[0]['image2@18'].shape == (2, 6, 18, 18)
    nbytes = [sum(v.numel() for v in p.values()) for p in (full[0], parts[0])]
    assert nbytes[1] < 0.6 * nbytes[0]
    batch = per_batch.on_device(torch.utils.data.default_collate(parts))
    assert set(batch) == {'image1', 'image2'}
    expected = torch.utils.data.default_collate(full)
    torch.testing.assert_close(batch['image1'], expected['image1'])
    torch.testing.assert_close(batch['image2'], expected['image2'])
    with pytest.raises(ValueError, match='resample'):
        SSL4EOS12Pair(ssl4eo_root, resample='gpu')  # type: ignore[arg-type]


def test_views_draw_seasons_independently(
    ssl4eo_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    draws = iter([0, 1, 2, 2])  # s1 view a, b; s2 view a, b
    monkeypatch.setattr(random, 'choice', lambda seq: seq[next(draws)])
    opened: list[str] = []
    real_open = pair_module.DatasetReader

    def counting_open(path: str, *args: object, **kwargs: object) -> object:
        opened.append(os.fspath(path))
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(pair_module, 'DatasetReader', counting_open)
    sample = SSL4EOS12Pair(ssl4eo_root, size=SIZE)[0]
    assert not torch.equal(sample['image1'][0], sample['image1'][1])
    assert torch.equal(sample['image2'][0], sample['image2'][1])
    # each band file read once: 2 seasons x 2 bands + 1 season x 13 bands
    assert len(opened) == len(set(opened)) == 2 * 2 + 13
    s2 = season_dir(ssl4eo_root, 's2c', '0000000', 2)
    assert all(p.startswith(str(s2)) for p in opened if '/s2c/' in p)


def test_random_seasons_differ(ssl4eo_root: Path) -> None:
    ds = SSL4EOS12Pair(ssl4eo_root, size=SIZE)
    random.seed(0)
    samples = [ds[0]['image1'] for _ in range(4)]
    assert any(not torch.equal(s[0], s[1]) for s in samples)


def test_s2a(ssl4eo_root: Path) -> None:
    ds = SSL4EOS12Pair(ssl4eo_root, optical='s2a', size=SIZE)
    assert ds.modalities == ('s1', 's2a')
    assert 'B10' not in ds.bands2
    assert ds[0]['image2'].shape == (2, 12, SIZE, SIZE)


def test_unpaired_location_skipped(ssl4eo_root: Path) -> None:
    shutil.rmtree(ssl4eo_root / 's2c' / '0000001')
    (ssl4eo_root / 's2c' / 'README.txt').write_text('not a location')
    with pytest.warns(UserWarning, match=r'skipped 1 location.*1 only in s1/') as rec:
        ds = SSL4EOS12Pair(ssl4eo_root, size=SIZE)
    assert len(rec) == 1
    assert len(ds) == 1 and ds.ids == ['0000000']
    assert ds[0]['image1'].shape == (2, 2, SIZE, SIZE)


def test_location_without_season_skipped(ssl4eo_root: Path) -> None:
    for season in (ssl4eo_root / 's1' / '0000000').iterdir():
        shutil.rmtree(season)
    with pytest.warns(UserWarning, match='1 in s1/ without a season folder'):
        ds = SSL4EOS12Pair(ssl4eo_root, size=SIZE)
    assert ds.ids == ['0000001']


def test_no_pairs(ssl4eo_root: Path) -> None:
    shutil.rmtree(ssl4eo_root / 's2c' / '0000000')
    shutil.rmtree(ssl4eo_root / 's1' / '0000001')
    with (
        pytest.warns(UserWarning, match='skipped 2'),
        pytest.raises(FileNotFoundError, match=r'no location .* both s1/ and s2c/'),
    ):
        SSL4EOS12Pair(ssl4eo_root, size=SIZE)


def test_missing_root(tmp_path: Path) -> None:
    with pytest.raises(DatasetNotFoundError, match='missing'):
        SSL4EOS12Pair(tmp_path / 'missing')


def test_missing_modality(ssl4eo_root: Path) -> None:
    shutil.rmtree(ssl4eo_root / 's2a')
    with pytest.raises(FileNotFoundError, match=r's2a not found'):
        SSL4EOS12Pair(ssl4eo_root, optical='s2a')
    shutil.rmtree(ssl4eo_root / 's1')
    with pytest.raises(FileNotFoundError, match=r's1 not found'):
        SSL4EOS12Pair(ssl4eo_root)


def test_invalid_arguments(ssl4eo_root: Path) -> None:
    with pytest.raises(ValueError, match='optical'):
        SSL4EOS12Pair(ssl4eo_root, optical='s1')  # type: ignore[arg-type]
    with pytest.raises(ValueError, match='size'):
        SSL4EOS12Pair(ssl4eo_root, size=2)
    with pytest.raises(ValueError, match='on_bad_sample'):
        SSL4EOS12Pair(ssl4eo_root, on_bad_sample='ignore')  # type: ignore[arg-type]
    with pytest.raises(ValueError, match='max_nonfinite'):
        SSL4EOS12Pair(ssl4eo_root, max_nonfinite=1.0)
    with pytest.raises(ValueError, match='max_location_attempts'):
        SSL4EOS12Pair(ssl4eo_root, max_location_attempts=0)


def test_missing_band(ssl4eo_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first_season(monkeypatch)
    path = season_dir(ssl4eo_root, 's2c', '0000001') / 'B8A.tif'
    path.unlink()
    ds = SSL4EOS12Pair(ssl4eo_root, size=SIZE, on_bad_sample='raise')
    ds[0]
    with pytest.raises(
        FileNotFoundError, match=re.escape(f'band B8A not found: {path}')
    ):
        ds[1]
    # the first season gives the layout: a band missing there is found at once
    first = season_dir(ssl4eo_root, 's2c', '0000000') / 'B8A.tif'
    first.unlink()
    with pytest.raises(FileNotFoundError, match=re.escape(str(first))):
        SSL4EOS12Pair(ssl4eo_root, size=SIZE, on_bad_sample='raise')
    # ... unless bad files are skipped: then the next season gives it
    assert SSL4EOS12Pair(ssl4eo_root, size=SIZE).stored_size['B8A'] == 18


def test_wrong_size(ssl4eo_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first_season(monkeypatch)
    path = season_dir(ssl4eo_root, 's1', '0000001') / 'VH.tif'
    with rasterio.open(path) as f:
        profile = f.profile
    profile.update(width=30, height=30)
    with rasterio.open(path, 'w', **profile) as f:
        f.write(np.zeros((1, 30, 30), dtype=np.float32))
    with pytest.warns(UserWarning, match=r'layout .* 0000001 \(.*VH.tif has shape'):
        ds = SSL4EOS12Pair(ssl4eo_root, size=SIZE, on_bad_sample='raise')
    ds[0]
    with pytest.raises(ValueError, match=r'VH.tif has shape \(30, 30\), expected \(36'):
        ds[1]


def test_size_mismatch(ssl4eo_root: Path) -> None:
    # real dataset 264, fixture 36 px: found when the layout is read
    with pytest.raises(ValueError, match=r'has shape \(36, 36\), expected \(264'):
        SSL4EOS12Pair(ssl4eo_root, size=264)


def test_size_inference_needs_first_band(ssl4eo_root: Path) -> None:
    path = season_dir(ssl4eo_root, 's1', '0000000') / 'VV.tif'
    path.unlink()
    with pytest.raises(FileNotFoundError, match=re.escape(str(path))):
        SSL4EOS12Pair(ssl4eo_root, on_bad_sample='raise')
    assert SSL4EOS12Pair(ssl4eo_root).size == SIZE  # from the next season


def set_pixels(path: Path, rows: slice, value: float) -> None:
    with rasterio.open(path, 'r+') as f:
        data = f.read()
        data[0, rows] = value
        f.write(data)


def test_nan_raise(ssl4eo_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first_season(monkeypatch)
    path = season_dir(ssl4eo_root, 's1', '0000000') / 'VV.tif'
    set_pixels(path, slice(0, 2), np.nan)  # 2 rows: 5.6 % of the band
    ds = SSL4EOS12Pair(ssl4eo_root, size=SIZE, on_bad_sample='raise')
    with pytest.raises(
        ValueError, match=re.escape(f'band VV of {path} has 72 NaN or infinite')
    ):
        ds[0]


def test_few_nonfinite_pixels_filled(
    ssl4eo_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first_season(monkeypatch)
    path = season_dir(ssl4eo_root, 's1', '0000000') / 'VV.tif'
    with rasterio.open(path) as f:
        clean = f.read(1)
    with rasterio.open(path, 'r+') as f:
        data = f.read()
        data[0, 3, 4] = np.nan
        data[0, 5, 5] = np.inf  # 2 of 1296 pixels: under 1 %
        f.write(data)
    sample = SSL4EOS12Pair(ssl4eo_root, size=SIZE, on_bad_sample='raise')[0]
    vv = sample['image1'][0, 0].numpy()
    assert np.isfinite(vv).all()
    finite = np.delete(clean.ravel(), [3 * SIZE + 4, 5 * SIZE + 5])
    assert vv[3, 4] == vv[5, 5] == np.float32(np.median(finite))
    np.testing.assert_array_equal(np.delete(vv.ravel(), [112, 185]), finite)


def test_bad_season_replaced(ssl4eo_root: Path) -> None:
    """A bad band file costs its season: another season is read instead."""
    seasons = sorted((ssl4eo_root / 's2c' / '0000000').iterdir())
    (seasons[0] / 'B8A.tif').unlink()  # missing
    (seasons[1] / 'B3.tif').write_bytes((seasons[1] / 'B3.tif').read_bytes()[:300])
    ds = SSL4EOS12Pair(ssl4eo_root, size=SIZE, on_bad_sample='skip')
    hits: dict[str, int] = {'B8A': 0, 'B3': 0}
    for seed in range(40):
        random.seed(seed)
        sample = ds[0]
        assert sample['skipped_samples'] == 0
        lines = [line for line in sample['bad_files'].split('\n') if line]
        assert sample['skipped_seasons'] == len(lines)
        assert len(set(lines)) == len(lines)  # a bad season is not read twice
        if any('band B8A not found' in line for line in lines):
            hits['B8A'] += 1
            assert str(seasons[0]) in sample['bad_files']
        if any('cannot read band B3' in line for line in lines):
            hits['B3'] += 1
            assert str(seasons[1]) in sample['bad_files']
        assert torch.isfinite(sample['image2']).all()
        random.seed(seed)  # the same draws give the same sample
        assert torch.equal(ds[0]['image2'], sample['image2'])
    assert hits['B8A'] > 3 and hits['B3'] > 3


def test_bad_location_replaced(ssl4eo_root: Path) -> None:
    """No readable season of a modality: a fixed other location is read."""
    for season in (ssl4eo_root / 's1' / '0000001').iterdir():
        set_pixels(season / 'VH.tif', slice(None), np.nan)
    ds = SSL4EOS12Pair(ssl4eo_root, size=SIZE)
    sample = ds[1]
    assert sample['skipped_samples'] == 1
    assert sample['skipped_seasons'] == 4
    assert sample['bad_files'].count('NaN or infinite') == 4
    assert ds._fallback(1, 1) == 0  # the only other location
    assert ds[0]['skipped_samples'] == 0
    with pytest.raises(RuntimeError, match='no readable location'):
        SSL4EOS12Pair(ssl4eo_root, size=SIZE, max_location_attempts=1)[1]


def test_fallback_is_deterministic(ssl4eo_root: Path) -> None:
    ds = SSL4EOS12Pair(ssl4eo_root, size=SIZE)
    ds.ids = [f'{i:07d}' for i in range(50)]  # pretend: 50 locations
    draws = [ds._fallback(7, a) for a in range(6)]
    assert draws[0] == 7 and 7 not in draws[1:]
    assert draws == [ds._fallback(7, a) for a in range(6)]
    assert all(0 <= d < 50 for d in draws)


def test_transforms(ssl4eo_root: Path) -> None:
    def transform(sample: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {**sample, 'extra': torch.tensor(1)}

    ds = SSL4EOS12Pair(ssl4eo_root, transforms=transform, size=SIZE)
    assert ds[0]['extra'] == 1


def test_plot(ssl4eo_root: Path) -> None:
    ds = SSL4EOS12Pair(ssl4eo_root, size=SIZE)
    fig = ds.plot(ds[0], suptitle='pair')
    assert len(fig.axes) == 4
    matplotlib.pyplot.close(fig)


def test_band_resolution() -> None:
    assert band_resolution('VV') == 10
    assert band_resolution('B4') == 10
    assert band_resolution('B8A') == 20
    assert band_resolution('B10') == 60
    with pytest.raises(ValueError, match='B13'):
        band_resolution('B13')


def rewrite(path: Path, array: np.ndarray) -> None:
    """Write *array* (bands, height, width) over a band file, any dtype."""
    with rasterio.open(path) as f:
        profile = f.profile
    count, height, width = array.shape
    profile.update(count=count, height=height, width=width, dtype=array.dtype.name)
    with rasterio.open(path, 'w', **profile) as f:
        f.write(array)


def test_constant_band_is_bad(
    ssl4eo_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """All-zero bands (any size) and other flat bands (32 x 32 px or more) are
    bad files: skipped, or an error naming the file."""
    first_season(monkeypatch)
    path = season_dir(ssl4eo_root, 's1', '0000000') / 'VV.tif'
    rewrite(path, np.zeros((1, SIZE, SIZE), np.float32))
    with pytest.raises(
        ValueError, match=re.escape(f'band VV of {path} is constant (all pixels = 0.0)')
    ):
        SSL4EOS12Pair(ssl4eo_root, on_bad_sample='raise')[0]
    monkeypatch.undo()
    ds = SSL4EOS12Pair(ssl4eo_root)
    for seed in range(8):
        random.seed(seed)
        sample = ds[0]
        lines = [line for line in sample['bad_files'].split('\n') if line]
        assert sample['skipped_seasons'] == len(lines)
        assert all(f'{path} is constant (all pixels = 0.0)' in line for line in lines)
        assert (sample['image1'][:, 0] != 0).any(dim=(-2, -1)).all()  # never read
    assert sample['skipped_samples'] == 0

    first_season(monkeypatch)
    rewrite(path, np.full((1, SIZE, SIZE), -5.0, np.float32))  # 1296 px, flat
    with pytest.raises(ValueError, match=re.escape('constant (all pixels = -5.0)')):
        SSL4EOS12Pair(ssl4eo_root, on_bad_sample='raise')[0]
    rewrite(path, np.random.default_rng(0).normal(-12, 3, (1, SIZE, SIZE)))
    # a 6 x 6 px band (60 m) may be flat for real, but not all zeros
    b1 = season_dir(ssl4eo_root, 's2c', '0000000') / 'B1.tif'
    rewrite(b1, np.full((1, 6, 6), 17, np.uint16))
    SSL4EOS12Pair(ssl4eo_root, on_bad_sample='raise')[0]
    rewrite(b1, np.zeros((1, 6, 6), np.uint16))
    with pytest.raises(ValueError, match=re.escape(f'{b1} is constant')):
        SSL4EOS12Pair(ssl4eo_root, on_bad_sample='raise')[0]


def test_all_constant_data_set(ssl4eo_root: Path) -> None:
    """A data set of zero-filled files: the error says that every file was flat."""
    for path in ssl4eo_root.rglob('*.tif'):
        with rasterio.open(path) as f:
            shape, dtype = (f.count, f.height, f.width), f.dtypes[0]
        rewrite(path, np.zeros(shape, dtype))
    ds = SSL4EOS12Pair(ssl4eo_root)
    with pytest.raises(
        RuntimeError, match=r'all 40 bad files were constant .* holds no data'
    ):
        ds[0]


def test_file_that_does_not_fit_warns_once(
    ssl4eo_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Extra bands, the wrong dtype, values that fail the modality's raw check:
    one warning per file, and the file is read."""
    first_season(monkeypatch)
    rng = np.random.default_rng(0)
    s1 = season_dir(ssl4eo_root, 's1', '0000000')
    s2 = season_dir(ssl4eo_root, 's2c', '0000000')
    vv = rng.normal(-12, 3, (3, SIZE, SIZE)).astype(np.float32)
    rewrite(s1 / 'VV.tif', vv)  # three bands
    rewrite(s1 / 'VH.tif', rng.integers(1, 255, (1, SIZE, SIZE), np.uint8))
    reflectance = rng.uniform(0.01, 0.3, (1, SIZE, SIZE)).astype(np.float32)
    rewrite(s2 / 'B4.tif', reflectance)  # divided by 10000 already
    ds = SSL4EOS12Pair(ssl4eo_root, on_bad_sample='raise')
    with pytest.warns(UserWarning, match='does not fit') as record:
        sample = ds[0]
    messages = sorted(str(w.message) for w in record)
    assert len(messages) == 3
    assert messages[0].startswith(f'band B4 of {s2 / "B4.tif"} does not fit')
    assert 'dtype float32, expected unsigned integer or integer' in messages[0]
    assert 'already divided by 10000?' in messages[0]
    assert f'{s1 / "VH.tif"} does not fit' in messages[1]
    assert 'dtype uint8, expected floating point' in messages[1]
    assert f'{s1 / "VV.tif"} does not fit' in messages[2]
    assert '3 bands, expected 1 (band 1 is read)' in messages[2]
    np.testing.assert_array_equal(sample['image1'][0, 0].numpy(), vv[0])
    np.testing.assert_array_equal(sample['image2'][0, 3].numpy(), reflectance[0])
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        ds[0]  # once per file

    # linear backscatter: the values fail Sentinel-1's raw check
    rewrite(s1 / 'VV.tif', rng.uniform(0.01, 0.5, (1, SIZE, SIZE)).astype('float32'))
    with pytest.warns(UserWarning) as record:  # a new dataset: all three again
        SSL4EOS12Pair(ssl4eo_root)[0]
    assert len(record) == 3
    assert re.search(r'VV.tif .* expected in dB .* linear backscatter', str(record[0]))
    # a flood is cut short
    monkeypatch.setattr(pair_module, '_MAX_WARNED_FILES', 1)
    with pytest.warns(UserWarning) as record:
        SSL4EOS12Pair(ssl4eo_root)[0]
    assert len(record) == 2
    assert 'more than 1 files' in str(record[1].message)


def test_layout_from_the_majority(ssl4eo_root: Path) -> None:
    """A first location of another tile size is named; it does not decide the
    layout and make every correct file look wrong."""
    for modality in ('s1', 's2c'):
        for copy in ('0000002', '0000003'):
            shutil.copytree(
                ssl4eo_root / modality / '0000001', ssl4eo_root / modality / copy
            )
    odd = ssl4eo_root / 's1' / '0000000'
    for season in odd.iterdir():
        for band in ('VV', 'VH'):
            rewrite(season / f'{band}.tif', np.full((1, 30, 30), -9.0, np.float32))
    vv = season_dir(ssl4eo_root, 's1', '0000000') / 'VV.tif'
    for mode in ('raise', 'skip'):
        with pytest.warns(UserWarning, match='layout') as record:
            ds = SSL4EOS12Pair(ssl4eo_root, on_bad_sample=mode)  # type: ignore[arg-type]
        message = str(record[0].message)
        assert 'that of 3 of the first 4 readable locations' in message
        assert f'0000000 ({vv} has shape (30, 30), not (36, 36))' in message
        assert ds.size == SIZE and ds.stored_size['B4'] == SIZE
    assert ds[1]['bad_files'] == ''
    sample = ds[0]  # the odd location is bad, another is read
    assert sample['skipped_samples'] == 1
    assert 'has shape (30, 30), expected (36, 36)' in sample['bad_files']


def test_scan_survives_bad_entries(
    ssl4eo_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Symbolic link loops and unreadable folders are skipped and named."""
    loop = ssl4eo_root / 's1' / '0000000' / 'loop'
    loop.symlink_to('loop')
    a, b = ssl4eo_root / 's2c' / '0000001' / 'a', ssl4eo_root / 's2c' / '0000001' / 'b'
    a.symlink_to('b')
    b.symlink_to('a')
    (ssl4eo_root / 's2c' / 'loop').symlink_to('loop')  # a location entry
    real_scandir = os.scandir
    denied = {str(ssl4eo_root / 's2c' / '0000001')}

    def scandir(path: str) -> object:
        if str(path) in denied:
            raise PermissionError(13, 'Permission denied', str(path))
        return real_scandir(path)

    monkeypatch.setattr(os, 'scandir', scandir)
    with pytest.warns(UserWarning, match='unreadable entries skipped') as record:
        ds = SSL4EOS12Pair(ssl4eo_root)
    message = str(record[0].message)
    assert f'{loop} (Too many levels of symbolic links)' in message
    assert f'{ssl4eo_root / "s2c" / "loop"} (' in message
    assert f'{ssl4eo_root / "s2c" / "0000001"} (Permission denied)' in message
    assert '1 only in s1/' in message
    assert ds.ids == ['0000000']

    denied.clear()
    with pytest.warns(UserWarning, match=r'4 unreadable entries .*/0000001/a \('):
        ds = SSL4EOS12Pair(ssl4eo_root)
    assert ds.ids == ['0000000', '0000001']
    random.seed(0)
    assert ds[0]['skipped_seasons'] == 0  # the loop is no season
    denied.add(str(ssl4eo_root / 's1' / '0000001'))  # unreadable after the scan
    sample = ds[1]
    assert sample['skipped_samples'] == 1
    assert 'has no season folder' in sample['bad_files']
    assert 'Permission denied' in sample['bad_files']


def test_most_bands_zero_filled_refused(ssl4eo_root: Path) -> None:
    """A dataset lacking most of a modality's bands is refused by the
    preparation, naming them and the option; one band (L2A for L1C) is not."""
    from torchgeo_decur.datamodules import ModalityPreprocessing

    modalities = {'image1': 's1', 'image2': 's2c'}
    ds = SSL4EOS12Pair(ssl4eo_root, optical='s2a')  # no B10
    ModalityPreprocessing(modalities, ds)
    ds.input_bands = {**ds.input_bands, 'image2': ('B2', 'B3', 'B4')}
    with pytest.raises(
        ValueError,
        match=r"image2 \(s2c\): 10 of the modality's 13 bands .* B1, B5, B6, .*"
        r'max_zero_filled=0.5 .* max_zero_filled=1.0',
    ):
        ModalityPreprocessing(modalities, ds)
    ModalityPreprocessing(modalities, ds, max_zero_filled=1.0)
    with pytest.raises(ValueError, match='max_zero_filled must be in'):
        ModalityPreprocessing(modalities, ds, max_zero_filled=1.5)
