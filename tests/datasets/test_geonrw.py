from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torchgeo.datasets import DatasetNotFoundError, GeoNRW

from torchgeo_decur.datasets import GeoNRWCities


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
