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
    assert set(sample) == {'image1', 'image2'}
    assert sample['image1'].shape == (2, 2, SIZE, SIZE)
    assert sample['image2'].shape == (2, 13, SIZE, SIZE)
    assert sample['image1'].dtype == sample['image2'].dtype == torch.float32
    for key in ('image1', 'image2'):  # preprocessed to [0, 1]
        assert 0 <= sample[key].min() and sample[key].max() <= 1


def test_normalisation(ssl4eo_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first_season(monkeypatch)
    ds = SSL4EOS12Pair(ssl4eo_root, size=SIZE)
    sample = ds[0]
    # both views drew the first season
    assert torch.equal(sample['image1'][0], sample['image1'][1])

    s1 = season_dir(ssl4eo_root, 's1', '0000000')
    stats = [('VV', -12.54847273, 5.25697717), ('VH', -20.19237134, 5.91150917)]
    for b, (band, mean, std) in enumerate(stats):
        with rasterio.open(s1 / f'{band}.tif') as f:
            raw = f.read(1).astype(np.float64)
        low, high = np.percentile(raw, [1, 99])
        expected = (np.clip(raw, low, high) - (mean - 2 * std)) / (4 * std)
        actual = sample['image1'][0, b].numpy()
        np.testing.assert_allclose(actual, np.clip(expected, 0, 1), atol=1e-5)

    s2 = season_dir(ssl4eo_root, 's2c', '0000000')
    with rasterio.open(s2 / 'B4.tif') as f:  # 10 m band: no resampling
        raw = f.read(1).astype(np.float64)
    expected = np.clip(raw / 10000, 0, 1)  # reflectance, as the weights saw it
    np.testing.assert_allclose(sample['image2'][0, 3].numpy(), expected, rtol=1e-5)

    with rasterio.open(s2 / 'B1.tif') as f:  # 60 m band: 6 px, bilinear to 36
        raw = torch.from_numpy(f.read(1).astype(np.float32))
    assert raw.shape == (6, 6)
    up = F.interpolate(raw[None, None], size=(SIZE, SIZE), mode='bilinear')[0, 0]
    expected = (up / 10000).clamp(0, 1)
    torch.testing.assert_close(sample['image2'][0, 0], expected)


def test_views_draw_seasons_independently(
    ssl4eo_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    draws = iter([0, 1, 2, 2])  # s1 view a, b; s2 view a, b
    monkeypatch.setattr(random, 'choice', lambda seq: seq[next(draws)])
    opened: list[str] = []
    real_open = rasterio.open

    def counting_open(path: str, *args: object, **kwargs: object) -> object:
        opened.append(os.fspath(path))
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(rasterio, 'open', counting_open)
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
    shutil.copytree(ssl4eo_root / 's2c', ssl4eo_root / 's2a')
    for path in (ssl4eo_root / 's2a').glob('*/*/B10.tif'):
        path.unlink()
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


def test_missing_band(ssl4eo_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first_season(monkeypatch)
    path = season_dir(ssl4eo_root, 's2c', '0000000') / 'B8A.tif'
    path.unlink()
    ds = SSL4EOS12Pair(ssl4eo_root, size=SIZE)
    with pytest.raises(
        FileNotFoundError, match=re.escape(f'band B8A not found: {path}')
    ):
        ds[0]


def test_wrong_size(ssl4eo_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first_season(monkeypatch)
    path = season_dir(ssl4eo_root, 's1', '0000001') / 'VH.tif'
    with rasterio.open(path) as f:
        profile = f.profile
    profile.update(width=30, height=30)
    with rasterio.open(path, 'w', **profile) as f:
        f.write(np.zeros((1, 30, 30), dtype=np.float32))
    ds = SSL4EOS12Pair(ssl4eo_root, size=SIZE)
    ds[0]
    with pytest.raises(ValueError, match=r'VH.tif has shape \(30, 30\), expected \(36'):
        ds[1]


def test_size_mismatch(ssl4eo_root: Path) -> None:
    ds = SSL4EOS12Pair(ssl4eo_root, size=264)  # real dataset 264, fixture 36 px
    with pytest.raises(ValueError, match=r'has shape \(36, 36\), expected \(264'):
        ds[0]


def test_size_inference_needs_first_band(ssl4eo_root: Path) -> None:
    path = season_dir(ssl4eo_root, 's1', '0000000') / 'VV.tif'
    path.unlink()
    with pytest.raises(FileNotFoundError, match=re.escape(str(path))):
        SSL4EOS12Pair(ssl4eo_root)
    assert SSL4EOS12Pair(ssl4eo_root, size=SIZE).size == SIZE


def test_nan(ssl4eo_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first_season(monkeypatch)
    path = season_dir(ssl4eo_root, 's1', '0000000') / 'VV.tif'
    with rasterio.open(path, 'r+') as f:
        data = f.read()
        data[0, 3, 4] = np.nan
        data[0, 5, 5] = np.inf
        f.write(data)
    ds = SSL4EOS12Pair(ssl4eo_root, size=SIZE)
    with pytest.raises(
        ValueError, match=re.escape(f'band VV of {path} has 2 NaN or infinite')
    ):
        ds[0]


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
