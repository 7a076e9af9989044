from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
from PIL import Image
from torchgeo.datasets import DatasetNotFoundError, GeoNRW

from torchgeo_decur.datasets import GeoNRWCities, GeoNRWTiles
from torchgeo_decur.datasets.skipping import ConstantImageError


def test_partial_cities_warn(geonrw_root: Path) -> None:
    with pytest.warns(UserWarning, match='37 of 40 city folders missing'):
        ds = GeoNRWCities(geonrw_root, split='train')
    assert set(ds.city_names) == {'aachen', 'bergisch', 'bielefeld'}
    assert len(ds) == 6


def test_raw_values(geonrw_root: Path) -> None:
    ds = GeoNRWCities(geonrw_root, split='test')
    sample = ds[0]
    assert set(sample) == {'image1', 'image2', 'mask'}
    path = ds.file_list[0]
    rgb = np.asarray(Image.open(path).convert('RGB'), dtype=np.float32)
    np.testing.assert_array_equal(sample['image1'].permute(1, 2, 0).numpy(), rgb)
    assert sample['image1'].max() > 1  # 8-bit, not divided by 255
    dem = np.asarray(Image.open(path.replace('_rgb.jp2', '_dem.tif')))
    np.testing.assert_array_equal(sample['image2'][0].numpy(), dem)
    assert sample['image2'].shape == (1, 100, 100)
    assert sample['image2'].min() > 50  # metres
    seg = np.asarray(Image.open(path.replace('_rgb.jp2', '_seg.tif')))
    np.testing.assert_array_equal(sample['mask'].numpy(), seg)
    assert sample['mask'].dtype == torch.long
    # TorchGeo's own reader: the same pixels, RGB divided by 255
    theirs = GeoNRW.__getitem__(ds, 0)
    torch.testing.assert_close(theirs['image'] * 255, sample['image1'])
    assert GeoNRWCities.input_bands == {'image1': ('R', 'G', 'B'), 'image2': ('DEM',)}


def test_no_city(tmp_path: Path) -> None:
    with pytest.raises(DatasetNotFoundError):
        GeoNRWCities(tmp_path, split='test')


@pytest.mark.filterwarnings('ignore:GeoNRW .* city folders missing:UserWarning')
def test_tiles_are_windows_of_the_scenes(geonrw_root: Path) -> None:
    """Tiles row by row, 4 per 100 px fixture scene at 50 px (16 at 250 px)."""
    scenes = GeoNRWCities(geonrw_root, split='train')
    tiles = GeoNRWTiles(geonrw_root, tile_size=50)
    assert tiles.grid == (2, 2) and tiles.scene_size == (100, 100)
    assert len(tiles) == 4 * len(scenes) == 24
    assert tiles.input_bands == GeoNRWCities.input_bands
    for index in (0, 3, 6, 23):
        scene, row, col = tiles.tile(index)
        assert (scene, row, col) == (index // 4, index % 4 // 2, index % 2)
        whole = scenes[scene]
        sample = tiles[index]
        # no labels for pretraining; bad tiles would be counted and named
        assert set(sample) == {'image1', 'image2', 'skipped_samples', 'bad_files'}
        assert sample['skipped_samples'] == 0 and sample['bad_files'] == ''
        rows, cols = slice(row * 50, row * 50 + 50), slice(col * 50, col * 50 + 50)
        torch.testing.assert_close(sample['image1'], whole['image1'][:, rows, cols])
        torch.testing.assert_close(sample['image2'], whole['image2'][:, rows, cols])
    # with masks (the authors' transfer tiles): the mask's window too
    masked = GeoNRWTiles(geonrw_root, tile_size=50, with_mask=True)
    sample = masked[5]
    scene, row, col = masked.tile(5)
    window = scenes[scene]['mask'][row * 50 : row * 50 + 50, col * 50 : col * 50 + 50]
    assert sample['mask'].dtype == torch.int64
    assert torch.equal(sample['mask'], window)
    # a partial last row and column are dropped, as the authors' cropping does
    assert GeoNRWTiles(geonrw_root, tile_size=40).grid == (2, 2)
    with pytest.raises(IndexError, match='out of range'):
        tiles[24]


@pytest.mark.filterwarnings('ignore:GeoNRW .* city folders missing:UserWarning')
def test_tiles_errors(geonrw_root: Path) -> None:
    with pytest.raises(ValueError, match='tile_size must be >= 1'):
        GeoNRWTiles(geonrw_root, tile_size=0)
    with pytest.raises(ValueError, match=r'tile_size=250 exceeds the scenes'):
        GeoNRWTiles(geonrw_root)  # the fixture's scenes are 100 px
    tiles = GeoNRWTiles(geonrw_root, tile_size=50, on_bad_sample='raise')
    path = Path(tiles.files[1][1])
    path.write_bytes(path.read_bytes()[:200])  # a truncated DEM
    with pytest.raises(ValueError, match=rf'cannot read {path}'):
        tiles[4]
    with pytest.raises(ValueError, match='on_bad_sample'):
        GeoNRWTiles(geonrw_root, tile_size=50, on_bad_sample='ignore')  # type: ignore[arg-type]


@pytest.mark.filterwarnings('ignore:GeoNRW .* city folders missing:UserWarning')
def test_bad_tiles_are_skipped_counted_and_named(geonrw_root: Path) -> None:
    tiles = GeoNRWTiles(geonrw_root, tile_size=50)  # 'skip' for pretraining
    path = Path(tiles.files[1][1])
    path.write_bytes(path.read_bytes()[:200])  # a truncated DEM: tiles 4-7
    sample = tiles[4]
    assert sample['skipped_samples'] >= 1
    assert f'cannot read {path}' in sample['bad_files']
    assert tiles.tile(4)[0] == 1  # ...and the replacement is of another scene
    again = tiles[4]  # a fixed draw: reruns see the same data
    torch.testing.assert_close(again['image1'], sample['image1'])
    # a constant (no-data) tile is bad too
    dem = Path(tiles.files[2][1])
    with rasterio.open(dem, 'r+') as f:
        f.write(np.zeros((f.count, f.height, f.width), dtype=f.dtypes[0]))
    assert 'image2 is constant (all pixels = 0)' in tiles[8]['bad_files']
    # the transfer dataset raises by default: a replaced test tile biases metrics
    scenes = GeoNRWCities(geonrw_root, split='train')
    with pytest.raises(ConstantImageError, match='image2 is constant'):
        scenes[2]
