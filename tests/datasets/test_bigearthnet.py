import glob
import os
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
from rasterio.enums import Resampling
from torchgeo.datasets import BigEarthNet

from torchgeo_decur.datasets import BigEarthNetMM
from torchgeo_decur.modalities import S2_L2A_BANDS

pytestmark = pytest.mark.filterwarnings(
    'ignore::rasterio.errors.NotGeoreferencedWarning'
)


def test_modalities_apart_in_band_order(bigearthnet_root: Path) -> None:
    ours = BigEarthNetMM(bigearthnet_root, split='train')
    theirs = BigEarthNet(bigearthnet_root, split='train', bands='all')
    assert ours.input_bands == {'image1': ('VV', 'VH'), 'image2': S2_L2A_BANDS}
    a, b = ours[0], theirs[0]
    assert set(a) == {'image1', 'image2', 'label'}
    assert torch.equal(a['label'], b['label'])
    # TorchGeo's S2 bands come after its (sorted: VH, VV) S1 bands
    assert torch.equal(a['image2'], b['image'][2:].float())  # uint16 S2: exact
    assert a['image1'].dtype == a['image2'].dtype == torch.float32
    # S1 in (VV, VH) order and in float dB, not truncated to whole decibels
    folder = ours.folders[0]['s1']
    for i, band in enumerate(('VV', 'VH')):
        (path,) = glob.glob(os.path.join(folder, f'*_{band}.tif'))
        with rasterio.open(path) as f:
            raw = f.read(
                1,
                out_shape=(120, 120),
                out_dtype='float32',
                resampling=Resampling.bilinear,
            )
        np.testing.assert_array_equal(a['image1'][i].numpy(), raw)
    assert not torch.equal(a['image1'], a['image1'].round())
    assert a['image1'].max() < 0  # dB


def test_missing_band_file(bigearthnet_root: Path) -> None:
    ds = BigEarthNetMM(bigearthnet_root, split='val')
    (vh,) = glob.glob(os.path.join(ds.folders[0]['s1'], '*_VH.tif'))
    os.remove(vh)
    with pytest.raises(FileNotFoundError, match='band VH of sample 0 not found'):
        ds[0]


def test_transforms(bigearthnet_root: Path) -> None:
    ds = BigEarthNetMM(
        bigearthnet_root, split='test', transforms=lambda s: {**s, 'x': 1}
    )
    assert ds[0]['x'] == 1


def test_bad_sample_skipped_when_asked(bigearthnet_root: Path) -> None:
    ds = BigEarthNetMM(bigearthnet_root, split='train', on_bad_sample='skip')
    (vh,) = glob.glob(os.path.join(ds.folders[0]['s1'], '*_VH.tif'))
    os.remove(vh)
    sample = ds[0]
    assert sample['skipped_samples'] == 1
    assert 'band VH of sample 0 not found' in sample['bad_files']
    torch.testing.assert_close(sample['image2'], ds[1]['image2'])  # the other one
    assert ds[1]['skipped_samples'] == 0 and ds[1]['bad_files'] == ''
    alone = BigEarthNetMM(bigearthnet_root, split='val', on_bad_sample='skip')
    (vh,) = glob.glob(os.path.join(alone.folders[0]['s1'], '*_VH.tif'))
    os.remove(vh)
    with pytest.raises(RuntimeError, match=r'(?s)1 samples in a row are bad.*band VH'):
        alone[0]  # nothing left to read instead
