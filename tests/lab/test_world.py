import json
import re
from pathlib import Path

import numpy as np
import pytest
import rasterio
from torchgeo.datasets import SSL4EOS12

from torchgeo_decur.datasets import SSL4EOS12Pair
from torchgeo_decur.datasets.ssl4eo_s12 import band_resolution
from torchgeo_decur.lab import make_ssl4eo_s12_demo
from torchgeo_decur.lab import world as demo_module
from torchgeo_decur.lab.world import (
    CLASSES,
    DEM_FACTORS,
    DEMO_MARKER,
    FACTORS,
    LABELS_FILE,
    LAND_COVER_FILE,
    read_labels,
)
from torchgeo_decur.modalities import S2_L1C_BANDS

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
        LABELS_FILE,
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
    # other parameters: refused, nothing replaced, the flag named
    with pytest.raises(FileExistsError, match=r'overwrite=True \(--overwrite\)'):
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


def test_labels_balanced_independent_and_majority(tmp_path: Path) -> None:
    # one block of all 5 x 3 x 3 combinations: each factor balanced, and the
    # unique factors independent of each other
    root = make_ssl4eo_s12_demo(tmp_path / 'd', num_locations=45, size=12)
    header = (root / LABELS_FILE).read_text().splitlines()[0]
    assert header.split(',') == ['id', *FACTORS]
    labels = read_labels(root)
    assert sorted(labels) == [f'{i:07d}' for i in range(45)]
    rough = np.array([v['roughness'] for v in labels.values()])
    mineral = np.array([v['mineral'] for v in labels.values()])
    assert np.bincount(rough).tolist() == [15, 15, 15]
    assert np.bincount(mineral).tolist() == [15, 15, 15]
    assert np.bincount(3 * rough + mineral).tolist() == [5] * 9
    # the land cover label is the class covering most of the patch
    lines = (root / LAND_COVER_FILE).read_text().splitlines()[1:]
    fractions = {
        line.split(',')[0]: [float(x) for x in line.split(',')[1:]] for line in lines
    }
    for name, factors in labels.items():
        assert factors['land_cover'] == int(np.argmax(fractions[name]))
    assert len({v['land_cover'] for v in labels.values()}) == len(CLASSES)


def render(tmp_path: Path, factors: list[int], size: int = 24) -> dict[str, dict]:
    """Render location 0 with the given factors; the seasons' bands by sensor."""
    out = tmp_path / '-'.join(map(str, factors))
    s2_sizes = {b: round(size * 10 / band_resolution(b)) for b in S2_L1C_BANDS}
    demo_module._location(out, 0, size, 7, s2_sizes, np.array(factors))
    images: dict[str, dict] = {'s1': {}, 's2c': {}}
    for sensor, bands in (('s1', ('VV', 'VH')), ('s2c', S2_L1C_BANDS)):
        for k, season in enumerate(sorted((out / sensor / '0000000').iterdir())):
            for band in bands:
                with rasterio.open(season / f'{band}.tif') as f:
                    images[sensor][k, band] = f.read(1).astype(np.float64)
    return images


def same(a: dict, b: dict) -> bool:
    return all(np.array_equal(a[k], b[k]) for k in a)


def test_each_factor_changes_the_sensors_that_see_it(tmp_path: Path) -> None:
    """The same location (same nuisance draws) rendered with one factor changed:
    roughness changes Sentinel-1 only, the mineral Sentinel-2 only, land cover
    both."""
    bare, crop = CLASSES.index('bare'), CLASSES.index('cropland')
    base = render(tmp_path, [bare, 0, 0])  # smooth, quartz
    rough = render(tmp_path, [bare, 2, 0])
    clay = render(tmp_path, [bare, 0, 2])
    iron = render(tmp_path, [bare, 0, 1])
    cropland = render(tmp_path, [crop, 0, 0])

    assert same(rough['s2c'], base['s2c'])  # optical: identical, to the bit
    assert not same(rough['s1'], base['s1'])
    vv = [np.mean(rough['s1'][k, 'VV'] - base['s1'][k, 'VV']) for k in range(4)]
    assert min(vv) > 1.0  # rough bare soil: brighter, by up to 4 dB

    for mineral in (clay, iron):
        assert same(mineral['s1'], base['s1'])  # SAR: identical, to the bit
        assert not same(mineral['s2c'], base['s2c'])

    def ratio(img: dict, band: str, ref: str) -> float:
        return float(
            np.mean(
                [
                    img['s2c'][k, band].mean() / img['s2c'][k, ref].mean()
                    for k in range(4)
                ]
            )
        )

    # clay absorbs at 2.2 um (B12), iron oxides in the blue (B2)
    assert ratio(clay, 'B12', 'B11') < 0.9 * ratio(base, 'B12', 'B11')
    assert ratio(iron, 'B2', 'B4') < 0.85 * ratio(base, 'B2', 'B4')
    assert ratio(clay, 'B2', 'B4') == pytest.approx(ratio(base, 'B2', 'B4'))

    assert not same(cropland['s1'], base['s1'])  # the common factor: both
    assert not same(cropland['s2c'], base['s2c'])


def test_read_labels_errors(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=LABELS_FILE):
        read_labels(tmp_path)
    (tmp_path / LABELS_FILE).write_text('id,land_cover\n0000000,1\n')
    with pytest.raises(ValueError, match='columns'):
        read_labels(tmp_path)


def test_older_generator_is_not_taken_for_the_same_parameters(tmp_path: Path) -> None:
    root = make_ssl4eo_s12_demo(tmp_path / 'd', num_locations=1, size=12)
    marker = json.loads((root / DEMO_MARKER).read_text())
    assert marker['version'] == demo_module.GENERATOR_VERSION
    del marker['version']  # as written before the factors were labelled
    (root / DEMO_MARKER).write_text(json.dumps(marker))
    with pytest.raises(FileExistsError, match='overwrite=True'):
        make_ssl4eo_s12_demo(root, num_locations=1, size=12)


def test_dem_modality_and_relief(tmp_path: Path) -> None:
    """dem=True adds a DEM whose relief only it sees; S1/S2 stay identical."""
    plain = make_ssl4eo_s12_demo(tmp_path / 'plain', num_locations=6, size=24)
    root = make_ssl4eo_s12_demo(tmp_path / 'dem', num_locations=6, size=24, dem=True)
    for sensor in ('s1', 's2c'):
        files = sorted(p.relative_to(plain) for p in (plain / sensor).rglob('*.tif'))
        assert files == sorted(
            p.relative_to(root) for p in (root / sensor).rglob('*.tif')
        )
        for f in files:
            assert (plain / f).read_bytes() == (root / f).read_bytes()
    header = (root / LABELS_FILE).read_text().splitlines()[0]
    assert header.split(',') == ['id', *DEM_FACTORS]
    labels = read_labels(root)
    reliefs = [v['relief'] for v in labels.values()]
    assert np.bincount(reliefs).tolist() == [2, 2, 2]  # balanced in blocks of 3
    assert json.loads((root / DEMO_MARKER).read_text())['dem'] is True
    assert 'dem' not in json.loads((plain / DEMO_MARKER).read_text())
    spread = {}
    for name, factors in labels.items():
        with rasterio.open(root / 'dem' / name / 'dem.tif') as f:
            assert f.count == 1 and f.dtypes[0] == 'float32'
            assert f.crs.to_epsg() == 4326
            dem = f.read(1)
        assert dem.shape == (24, 24) and 50 < dem.mean() < 1600  # metres
        spread.setdefault(factors['relief'], []).append(float(dem.std()))
    # rougher relief, larger spread of heights (object heights add ~10 m)
    flat, hilly, mountainous = (np.mean(spread[k]) for k in range(3))
    assert flat < hilly < mountainous
