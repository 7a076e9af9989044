import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torchgeo.datasets import DatasetNotFoundError, GeoNRW

from torchgeo_decur.datamodules import GeoNRWDataModule, GeoNRWPairDataModule
from torchgeo_decur.datasets import GeoNRWTiles
from torchgeo_decur.modalities import get_modality
from torchgeo_decur.transforms.normalize import image_quantiles, normalize_dem

from ..conftest import fake_trainer

pytestmark = pytest.mark.filterwarnings(
    'ignore:GeoNRW .* city folders missing:UserWarning'
)


def batch_of(dm: GeoNRWDataModule, split: str) -> tuple[dict, dict]:
    dm.setup('test' if split == 'test' else 'fit')
    raw = next(iter(getattr(dm, f'{split}_dataloader')()))
    dm.trainer = fake_trainer(split)  # type: ignore[assignment]
    return raw, dm.on_after_batch_transfer(dict(raw), 0)


def test_attributes(geonrw_root: Path) -> None:
    assert GeoNRWDataModule(root=geonrw_root).modalities == ('rgb', 'dem')
    assert GeoNRWDataModule.num_classes == 11 == len(GeoNRW.classes)


def test_eval_batch_contract(geonrw_root: Path) -> None:
    dm = GeoNRWDataModule(root=geonrw_root, batch_size=2)
    raw, batch = batch_of(dm, 'test')
    assert set(batch) == {'image1', 'image2', 'mask'}
    assert batch['image1'].shape == (2, 3, 100, 100)
    assert batch['image2'].shape == (2, 1, 100, 100)
    assert batch['mask'].shape == (2, 100, 100)
    assert batch['image1'].dtype == torch.float32
    assert batch['image2'].dtype == torch.float32
    assert batch['mask'].dtype == torch.long
    for key, name in zip(('image1', 'image2'), dm.modalities, strict=True):
        assert batch[key].shape[1] == get_modality(name).in_channels

    # RGB is the 8-bit file / 255 in R, G, B order, mask the class indices
    path = dm.test_dataset.file_list[0]  # type: ignore[union-attr]
    rgb = np.asarray(Image.open(path).convert('RGB'), dtype=np.float32) / 255
    np.testing.assert_allclose(batch['image1'][0].permute(1, 2, 0).numpy(), rgb)
    seg = np.asarray(Image.open(path.replace('_rgb.jp2', '_seg.tif')))
    np.testing.assert_array_equal(batch['mask'][0].numpy(), seg)
    assert 0 <= batch['mask'].min() and batch['mask'].max() < dm.num_classes

    # DEM stretched per image as the authors' GeoNRW reader does
    dem = batch['image2']
    torch.testing.assert_close(dem, normalize_dem(raw['image2']))
    for i in range(2):
        height = raw['image2'][i].double().numpy()
        p1, p99 = np.percentile(height, (1, 99))
        expected = (np.clip(height, p1, p99) - p1) / (p99 - p1 + 1e-5)
        np.testing.assert_allclose(dem[i].numpy(), expected, atol=1e-5)
    assert dem.min() == 0 and dem.max() <= 1


def test_train_crop_and_flip(geonrw_root: Path) -> None:
    dm = GeoNRWDataModule(root=geonrw_root, batch_size=2, patch_size=32)
    torch.manual_seed(0)
    raw, batch = batch_of(dm, 'train')
    assert batch['image1'].shape == (2, 3, 32, 32)
    assert batch['image2'].shape == (2, 1, 32, 32)
    assert batch['mask'].shape == (2, 32, 32)
    assert batch['mask'].dtype == torch.long
    assert set(batch['mask'].unique().tolist()) <= set(raw['mask'].unique().tolist())


def test_train_same_crop_for_rgb_dem_mask(geonrw_root: Path) -> None:
    dm = GeoNRWDataModule(root=geonrw_root, batch_size=2, patch_size=16)
    dm.setup('fit')
    raw = next(iter(dm.train_dataloader()))
    # tie the modalities: DEM and mask derived from the red band
    raw['image2'] = raw['image1'][:, :1] / 255 * 1000 + 50
    raw['mask'] = (raw['image1'][:, 0] / 255 * 10).round().long()
    p1, p99 = image_quantiles(raw['image2'], 0.01)
    dm.trainer = fake_trainer('train')  # type: ignore[assignment]
    for seed in range(3):
        torch.manual_seed(seed)
        out = dm.on_after_batch_transfer(dict(raw), 0)
        red = out['image1'][:, :1]
        # DEM stretched on the whole image, then cropped/flipped like RGB
        height = (red * 1000 + 50).clamp(p1, p99)
        torch.testing.assert_close(out['image2'], (height - p1) / (p99 - p1 + 1e-5))
        assert torch.equal(out['mask'], (red[:, 0] * 10).round().long())


def test_resize_then_crop(geonrw_root: Path) -> None:
    dm = GeoNRWDataModule(root=geonrw_root, batch_size=2, size=64, patch_size=48)
    _, batch = batch_of(dm, 'train')
    assert batch['image1'].shape == (2, 3, 48, 48)
    _, batch = batch_of(dm, 'val')
    assert batch['image1'].shape == (2, 3, 64, 64)
    assert batch['mask'].shape == (2, 64, 64)
    assert batch['mask'].dtype == torch.long


def test_patch_larger_than_image(geonrw_root: Path) -> None:
    dm = GeoNRWDataModule(root=geonrw_root, batch_size=2, patch_size=256)
    with pytest.raises(ValueError, match='patch_size=256 exceeds the image size 100'):
        batch_of(dm, 'train')
    # no crop outside training
    _, batch = batch_of(dm, 'val')
    assert batch['image1'].shape[-2:] == (100, 100)


def test_splits_disjoint_and_fraction(geonrw_root: Path) -> None:
    def files(subset: torch.utils.data.Subset) -> list[str]:
        return [subset.dataset.file_list[i] for i in subset.indices]  # type: ignore[attr-defined]

    dm = GeoNRWDataModule(root=geonrw_root, train_fraction=0.5, seed=0)
    dm.setup('fit')
    dm.setup('test')
    train = files(dm.train_dataset)  # type: ignore[arg-type]
    val = files(dm.val_dataset)  # type: ignore[arg-type]
    test = dm.test_dataset.file_list  # type: ignore[union-attr]
    assert len(train) == 2 and len(val) == 2 and len(test) == 2

    def city(path: str) -> str:
        return os.path.basename(os.path.dirname(path))

    assert not {city(p) for p in train} & {city(p) for p in val}
    assert not {city(p) for p in train + val} & {city(p) for p in test}

    again = GeoNRWDataModule(root=geonrw_root, train_fraction=0.5, seed=0)
    again.setup('fit')
    assert files(again.train_dataset) == train  # type: ignore[arg-type]
    full = GeoNRWDataModule(root=geonrw_root)
    full.setup('fit')
    assert set(train) < set(files(full.train_dataset))  # type: ignore[arg-type]
    assert files(full.val_dataset) == val  # type: ignore[arg-type]


def test_errors(geonrw_root: Path) -> None:
    with pytest.raises(ValueError, match=r'train_fraction must be in \(0, 1\], got 2'):
        GeoNRWDataModule(root=geonrw_root, train_fraction=2)
    with pytest.raises(ValueError, match='patch_size'):
        GeoNRWDataModule(root=geonrw_root, patch_size=0)
    dm = GeoNRWDataModule(root=geonrw_root, train_fraction=0.1)
    with pytest.raises(ValueError, match=r'0\.1 of the 4 samples .* selects no sample'):
        dm.setup('fit')


def test_pretraining_datamodule(geonrw_root: Path) -> None:
    """RGB and DEM tiles, preprocessed as the weights saw them, two views each."""
    dm = GeoNRWPairDataModule(
        root=str(geonrw_root), tile_size=50, batch_size=4, patch_size=32, seed=0
    )
    dm.setup('fit')
    assert len(dm.train_dataset) == 24 and dm.val_dataset is None
    raw = next(iter(dm.train_dataloader()))
    assert raw['image1'].shape == (4, 3, 50, 50)
    dm.trainer = fake_trainer('train')  # type: ignore[assignment]
    batch = dm.on_after_batch_transfer(dict(raw), 0)
    assert batch['image1'].shape == (4, 2, 3, 32, 32)
    assert batch['image2'].shape == (4, 2, 1, 32, 32)
    for key in ('image1', 'image2'):
        assert 0 <= batch[key].min() and batch[key].max() <= 1
    # without augmentation: the modalities' preprocessing of the raw tiles
    dm.aug = dm.train_aug = torch.nn.Identity()  # type: ignore[assignment]
    plain = dm.on_after_batch_transfer(dict(raw), 0)
    torch.testing.assert_close(plain['image1'][:, 0], raw['image1'] / 255)
    torch.testing.assert_close(plain['image2'][:, 1], normalize_dem(raw['image2']))


def test_authors_protocol(geonrw_root: Path, tmp_path: Path) -> None:
    """The authors' scripts: tiles with masks, 224 px random resized crops
    (nearest) and flips on every split, train cities to train, test cities
    to score, and their fraction draw."""
    dm = GeoNRWDataModule(
        root=geonrw_root, batch_size=2, protocol='authors', tile_size=50
    )
    for split in ('train', 'val', 'test'):
        raw, batch = batch_of(dm, split)
        assert raw['image1'].shape[-2:] == raw['mask'].shape[-2:] == (50, 50)
        assert batch['image1'].shape == (2, 3, 224, 224)
        assert batch['image2'].shape == (2, 1, 224, 224)
        assert batch['mask'].shape == (2, 224, 224)
        # nearest: the crop holds only classes of the tile
        assert set(batch['mask'].unique().tolist()) <= set(
            raw['mask'].unique().tolist()
        )
    tiles = GeoNRWTiles(root=geonrw_root, split='test', tile_size=50, with_mask=True)
    assert dm.val_dataset is not None and len(dm.val_dataset) == len(tiles)
    with pytest.raises(ValueError, match="protocol must be 'ours' or 'authors'"):
        GeoNRWDataModule(root=geonrw_root, protocol='paper')  # type: ignore[arg-type]
    empty = GeoNRWDataModule(root=tmp_path, protocol='authors', tile_size=50)
    with pytest.raises(DatasetNotFoundError, match='Dataset not found in'):
        empty.setup('fit')
