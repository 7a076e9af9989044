import re
from pathlib import Path

import numpy as np
import pytest
import rasterio
from torchgeo.datasets import SSL4EOS12

from torchgeo_decur.datasets import SSL4EOS12Pair, make_ssl4eo_s12_demo
from torchgeo_decur.datasets import demo as demo_module
from torchgeo_decur.datasets.demo import CLASSES, DEMO_MARKER, LAND_COVER_FILE

SIZE = 32
N = 3


@pytest.fixture(scope='module')
def demo_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp('demo') / 'ssl4eo_s12'
    assert make_ssl4eo_s12_demo(root, num_locations=N, size=SIZE) == root
    return root


def test_layout(demo_root: Path) -> None:
    assert (demo_root / DEMO_MARKER).is_file()
    assert sorted(p.name for p in demo_root.iterdir()) == [
        DEMO_MARKER,
        LAND_COVER_FILE,
        's1',
        's2c',
    ]
    for modality in ('s1', 's2c'):
        locations = sorted(p.name for p in (demo_root / modality).iterdir())
        assert locations == ['0000000', '0000001', '0000002']
        regex = SSL4EOS12.metadata[modality]['filename_regex']
        bands = SSL4EOS12.metadata[modality]['bands']
        for location in locations:
            seasons = list((demo_root / modality / location).iterdir())
            assert len(seasons) == 4
            for season in seasons:
                assert re.match(regex, season.name), season.name
                assert sorted(p.stem for p in season.iterdir()) == sorted(bands)
    s1 = next((demo_root / 's1' / '0000000').iterdir()).name
    assert re.fullmatch(
        r'S1[AB]_IW_GRDH_1SDV_\d{8}T\d{6}_\d{8}T\d{6}_\d{6}_[0-9A-F]{6}_[0-9A-F]{4}', s1
    )
    s2 = next((demo_root / 's2c' / '0000000').iterdir()).name
    assert re.fullmatch(r'\d{8}T\d{6}_\d{8}T\d{6}_T\d{2}[A-Z]{3}', s2)
    # no temporary folders left behind
    assert [p.name for p in demo_root.parent.iterdir()] == ['ssl4eo_s12']


def test_georeferencing_and_values(demo_root: Path) -> None:
    s1 = next((demo_root / 's1' / '0000001').iterdir())
    s2 = next((demo_root / 's2c' / '0000001').iterdir())
    with rasterio.open(s1 / 'VV.tif') as f:
        # as the SSL4EO-S12 files: geographic, about 10 m pixels, uncompressed
        assert f.crs.to_epsg() == 4326
        assert f.res == pytest.approx((9e-5, 9e-5))
        assert f.dtypes[0] == 'float32'
        assert f.compression is None
        bounds = f.bounds
        vv = f.read(1)
    with rasterio.open(s1 / 'VH.tif') as f:
        vh = f.read(1)
    assert -30 <= vv.min() and vv.max() <= 5
    assert -35 <= vh.min() and vh.max() <= 0
    assert vh.mean() < vv.mean()
    for band, size in [('B4', SIZE), ('B11', SIZE // 2), ('B9', round(SIZE / 6))]:
        with rasterio.open(s2 / f'{band}.tif') as f:
            assert f.crs.to_epsg() == 4326
            assert f.shape == (size, size)
            assert f.bounds == bounds  # same footprint for every band
            assert f.dtypes[0] == 'uint16'
            data = f.read(1)
        assert data.max() <= 10000 and data.mean() > 100


def test_loads_with_dataset(demo_root: Path) -> None:
    ds = SSL4EOS12Pair(demo_root)
    assert ds.size == SIZE
    assert len(ds) == N
    sample = ds[2]
    assert sample['image1'].shape == (2, 2, SIZE, SIZE)
    assert sample['image2'].shape == (2, 13, SIZE, SIZE)
    # TorchGeo's own reader accepts the format too
    assert SSL4EOS12(demo_root, split='s1')[0]['image'].shape == (2, 264, 264)


def test_shared_and_unique_structure(demo_root: Path) -> None:
    # land cover and moisture drive both modalities: Sentinel-2 predicts
    # Sentinel-1 (seasonal means, 4 x 4 blocks against speckle) well, but not
    # perfectly (speckle, incidence angle and point targets are S1's own)
    def blocks(location: str, modality: str, band: str) -> np.ndarray:
        images = []
        for season in (demo_root / modality / location).iterdir():
            with rasterio.open(season / f'{band}.tif') as f:
                images.append(f.read(1).astype(np.float64))
        mean = np.mean(images, axis=0)
        return mean.reshape(SIZE // 4, 4, SIZE // 4, 4).mean(axis=(1, 3)).ravel()

    locations = [f'{i:07d}' for i in range(N)]
    y = np.concatenate([blocks(loc, 's1', 'VV') for loc in locations])
    x = np.concatenate(
        [
            np.stack(
                [blocks(loc, 's2c', b) for b in ('B2', 'B3', 'B4', 'B8')]
                + [np.ones((SIZE // 4) ** 2)],
                axis=1,
            )
            for loc in locations
        ]
    )
    coef = np.linalg.lstsq(x, y, rcond=None)[0]
    r2 = 1 - ((y - x @ coef) ** 2).sum() / ((y - y.mean()) ** 2).sum()
    assert 0.3 < r2 < 0.95


def test_land_cover(demo_root: Path) -> None:
    lines = (demo_root / LAND_COVER_FILE).read_text().splitlines()
    assert lines[0].split(',') == ['id', *CLASSES]
    assert [line.split(',')[0] for line in lines[1:]] == [
        '0000000',
        '0000001',
        '0000002',
    ]
    fractions = np.array(
        [[float(x) for x in line.split(',')[1:]] for line in lines[1:]]
    )
    np.testing.assert_allclose(fractions.sum(axis=1), 1, atol=1e-3)


def test_second_call_is_noop(demo_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(*args: object) -> None:
        raise AssertionError('regenerated')

    monkeypatch.setattr(demo_module, '_location', fail)
    assert make_ssl4eo_s12_demo(demo_root, num_locations=N, size=SIZE) == demo_root
    with pytest.warns(UserWarning, match='overwrite=True'):
        make_ssl4eo_s12_demo(demo_root, num_locations=N + 1, size=SIZE)


def test_refuses_foreign_dir(tmp_path: Path) -> None:
    root = tmp_path / 'data'
    root.mkdir()
    (root / 'mine.tif').write_text('user data')
    for overwrite in (False, True):
        with pytest.raises(FileExistsError, match=str(root)):
            make_ssl4eo_s12_demo(root, num_locations=1, size=12, overwrite=overwrite)
    assert (root / 'mine.tif').read_text() == 'user data'
    file = tmp_path / 'file'
    file.write_text('x')
    with pytest.raises(FileExistsError):
        make_ssl4eo_s12_demo(file, num_locations=1, size=12)


def test_empty_dir_overwrite_and_seed(tmp_path: Path) -> None:
    root = tmp_path / 'demo'
    root.mkdir()
    make_ssl4eo_s12_demo(root, num_locations=1, size=12, seed=1)

    def vv(path: Path) -> np.ndarray:
        season = sorted((path / 's1' / '0000000').iterdir())[0]
        with rasterio.open(season / 'VV.tif') as f:
            return f.read(1)

    first = vv(root)
    other = make_ssl4eo_s12_demo(tmp_path / 'other', num_locations=1, size=12, seed=1)
    np.testing.assert_array_equal(vv(other), first)  # same seed, same data
    make_ssl4eo_s12_demo(root, num_locations=1, size=12, seed=2, overwrite=True)
    assert not np.array_equal(vv(root), first)
    assert sorted(p.name for p in tmp_path.iterdir()) == ['demo', 'other']


def test_invalid_arguments(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match='num_locations'):
        make_ssl4eo_s12_demo(tmp_path / 'a', num_locations=0)
    with pytest.raises(ValueError, match='size'):
        make_ssl4eo_s12_demo(tmp_path / 'a', size=4)
