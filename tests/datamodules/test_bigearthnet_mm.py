import glob
import os
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
from lightning.pytorch import LightningModule, Trainer
from rasterio.enums import Resampling
from torchgeo.datasets import BigEarthNet

from torchgeo_decur.datamodules import BigEarthNetMMDataModule
from torchgeo_decur.datamodules.utils import authors_fraction_indices
from torchgeo_decur.modalities import S2_L1C_BANDS, get_modality
from torchgeo_decur.transforms.normalize import normalize_s1, normalize_s2

from ..conftest import fake_trainer

pytestmark = pytest.mark.filterwarnings(
    'ignore::rasterio.errors.NotGeoreferencedWarning'
)


def read_band(folder: str, band: str) -> np.ndarray:
    (path,) = glob.glob(os.path.join(folder, f'*_{band}.tif'))
    with rasterio.open(path) as f:
        return f.read(
            1,
            out_shape=(120, 120),
            out_dtype='float32',
            resampling=Resampling.bilinear,
        )


def first_batch(dm: BigEarthNetMMDataModule, split: str) -> dict:
    dm.setup('fit' if split in ('train', 'val') else split)
    loader = getattr(dm, f'{split}_dataloader')()
    batch = next(iter(loader))
    dm.trainer = fake_trainer(split)  # type: ignore[assignment]
    return dm.on_after_batch_transfer(batch, 0)


def test_batch_contract(bigearthnet_root: Path) -> None:
    dm = BigEarthNetMMDataModule(root=bigearthnet_root, batch_size=2)
    batch = first_batch(dm, 'val')
    assert set(batch) == {'image1', 'image2', 'label'}
    assert batch['image1'].shape == (1, 2, 120, 120)
    assert batch['image2'].shape == (1, 13, 120, 120)
    assert batch['label'].shape == (1, 19)
    assert batch['image1'].dtype == torch.float32
    assert batch['image2'].dtype == torch.float32
    assert batch['label'].dtype == torch.long
    assert dm.modalities == ('s1', 's2c')
    assert dm.num_classes == 19
    for key, name in zip(('image1', 'image2'), dm.modalities, strict=True):
        assert batch[key].shape[1] == get_modality(name).in_channels


def test_bands_in_order_with_b10_zeros(bigearthnet_root: Path) -> None:
    dm = BigEarthNetMMDataModule(root=bigearthnet_root, batch_size=2)
    batch = first_batch(dm, 'val')
    folders = BigEarthNet(bigearthnet_root, split='val').folders[0]

    s1 = np.stack([read_band(folders['s1'], b) for b in ('VV', 'VH')])
    expected_s1 = normalize_s1(torch.from_numpy(s1))
    torch.testing.assert_close(batch['image1'][0], expected_s1)

    image2 = batch['image2'][0]
    assert S2_L1C_BANDS[10] == 'B10'
    assert torch.equal(image2[10], torch.zeros(120, 120))
    for i, band in enumerate(S2_L1C_BANDS):
        if band == 'B10':
            continue
        name = band if band == 'B8A' else f'B{int(band[1:]):02d}'
        raw = torch.from_numpy(read_band(folders['s2'], name))
        torch.testing.assert_close(image2[i], normalize_s2(raw[None])[0])
        assert image2[i].abs().sum() > 0, band


def test_labels_match_torchgeo(bigearthnet_root: Path) -> None:
    dm = BigEarthNetMMDataModule(root=bigearthnet_root, batch_size=2)
    batch = first_batch(dm, 'test')
    expected = BigEarthNet(bigearthnet_root, split='test')[0]['label']
    assert torch.equal(batch['label'][0], expected)
    assert set(batch['label'].unique().tolist()) <= {0, 1}


def test_train_flips_same_for_both_modalities(bigearthnet_root: Path) -> None:
    dm = BigEarthNetMMDataModule(root=bigearthnet_root, batch_size=2)
    dm.setup('fit')
    raw = next(iter(dm.train_dataloader()))
    dm.trainer = fake_trainer('val')  # type: ignore[assignment]
    plain = dm.on_after_batch_transfer(dict(raw), 0)
    dm.trainer = fake_trainer('train')  # type: ignore[assignment]
    seen = set()
    for seed in range(4):
        torch.manual_seed(seed)
        aug = dm.on_after_batch_transfer(dict(raw), 0)
        for i in range(2):
            flips = [
                dims
                for dims in ((), (-1,), (-2,), (-2, -1))
                if torch.equal(aug['image2'][i], plain['image2'][i].flip(dims))
            ]
            assert flips, 'image2 is not a flip of the input'
            assert any(
                torch.equal(aug['image1'][i], plain['image1'][i].flip(d)) for d in flips
            )
            seen.update(flips)
        assert torch.equal(aug['label'], plain['label'])
    assert len(seen) > 1  # flips do happen


def test_resize(bigearthnet_root: Path) -> None:
    dm = BigEarthNetMMDataModule(root=bigearthnet_root, batch_size=2, size=64)
    batch = first_batch(dm, 'train')
    assert batch['image1'].shape == (2, 2, 64, 64)
    assert batch['image2'].shape == (2, 13, 64, 64)


def test_no_trainer_still_converts(bigearthnet_root: Path) -> None:
    dm = BigEarthNetMMDataModule(root=bigearthnet_root, batch_size=2, size=64)
    dm.setup('fit')
    batch = dm.on_after_batch_transfer(next(iter(dm.val_dataloader())), 0)
    assert batch['image2'].shape == (1, 13, 120, 120)


def test_train_fraction_disjoint_and_deterministic(bigearthnet_root: Path) -> None:
    def train_folders(seed: int) -> list[str]:
        dm = BigEarthNetMMDataModule(
            root=bigearthnet_root, train_fraction=0.5, seed=seed
        )
        dm.setup('fit')
        subset = dm.train_dataset
        assert len(subset) == 1  # type: ignore[arg-type]
        return [subset.dataset.folders[i]['s2'] for i in subset.indices]  # type: ignore[union-attr]

    assert train_folders(0) == train_folders(0)
    chosen = set(train_folders(0)) | set(train_folders(1))
    others = {
        f[key]
        for split in ('val', 'test')
        for f in BigEarthNet(bigearthnet_root, split=split).folders
        for key in ('s1', 's2')
    }
    assert chosen
    assert not chosen & others


def test_bad_fraction(bigearthnet_root: Path) -> None:
    with pytest.raises(ValueError, match=r'train_fraction must be in \(0, 1\], got 0'):
        BigEarthNetMMDataModule(root=bigearthnet_root, train_fraction=0)
    with pytest.raises(ValueError, match='train_fraction'):
        BigEarthNetMMDataModule(root=bigearthnet_root, train_fraction=1.01)
    dm = BigEarthNetMMDataModule(root=bigearthnet_root, train_fraction=0.01)
    with pytest.raises(ValueError, match=r'0\.01 of the 2 samples .* selects no'):
        dm.setup('fit')


def test_bad_arguments(bigearthnet_root: Path) -> None:
    with pytest.raises(ValueError, match='size'):
        BigEarthNetMMDataModule(root=bigearthnet_root, size=0)
    with pytest.raises(ValueError, match="unknown modality 'sar'"):
        BigEarthNetMMDataModule(root=bigearthnet_root, modalities=('sar', 's2c'))


def test_l2a_encoder_without_b10(bigearthnet_root: Path) -> None:
    # an encoder pretrained on L2A takes BigEarthNet's 12 bands as they are
    dm = BigEarthNetMMDataModule(root=bigearthnet_root, modalities=('s1', 's2a'))
    batch = first_batch(dm, 'val')
    l1c = first_batch(BigEarthNetMMDataModule(root=bigearthnet_root), 'val')
    assert batch['image2'].shape == (1, 12, 120, 120)
    keep = [i for i, b in enumerate(S2_L1C_BANDS) if b != 'B10']
    torch.testing.assert_close(batch['image2'], l1c['image2'][:, keep])


def test_small_train_split_keeps_its_batch(bigearthnet_root: Path) -> None:
    dm = BigEarthNetMMDataModule(root=bigearthnet_root, batch_size=64)
    dm.setup('fit')
    assert [len(b['label']) for b in dm.train_dataloader()] == [2]
    dm = BigEarthNetMMDataModule(root=bigearthnet_root, batch_size=1)
    dm.setup('fit')
    assert len(dm.train_dataloader()) == 2


class ShapeChecker(LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(1))
        self.seen: list[str] = []

    def _step(self, batch: dict, stage: str) -> torch.Tensor:
        assert set(batch) == {'image1', 'image2', 'label'}
        assert batch['image1'].shape[1:] == (2, 32, 32)
        assert batch['image2'].shape[1:] == (13, 32, 32)
        self.seen.append(stage)
        return (self.w * batch['image2'].mean()).sum()

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        return self._step(batch, 'train')

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        self._step(batch, 'val')

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.1)


def test_lightning_fit(bigearthnet_root: Path) -> None:
    dm = BigEarthNetMMDataModule(root=bigearthnet_root, batch_size=2, size=32)
    model = ShapeChecker()
    trainer = Trainer(
        accelerator='cpu',
        fast_dev_run=True,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(model, datamodule=dm)
    assert model.seen == ['train', 'val']


@pytest.mark.parametrize(('key', 'channels'), [('image1', 2), ('image2', 13)])
def test_as_image_for_torchgeo_tasks(
    bigearthnet_root: Path, key: str, channels: int
) -> None:
    paired = first_batch(BigEarthNetMMDataModule(root=bigearthnet_root), 'val')
    dm = BigEarthNetMMDataModule(root=bigearthnet_root, as_image=key)  # type: ignore[arg-type]
    batch = first_batch(dm, 'val')
    assert set(batch) == {'image', 'label'}
    assert batch['image'].shape[1] == channels
    torch.testing.assert_close(batch['image'], paired[key])
    assert dm.plot(batch) is None


def test_bad_as_image(bigearthnet_root: Path) -> None:
    with pytest.raises(ValueError, match="as_image must be 'image1', 'image2' or None"):
        BigEarthNetMMDataModule(root=bigearthnet_root, as_image='sar')  # type: ignore[arg-type]


def test_authors_protocol(bigearthnet_root: Path, tmp_path: Path) -> None:
    """The authors' scripts: 224 px random resized crops (the same for both
    modalities) and flips for training; Resize(256) + CenterCrop(224) for
    evaluation; and `test` scores the val split."""
    dm = BigEarthNetMMDataModule(
        root=bigearthnet_root, batch_size=2, protocol='authors'
    )
    train = first_batch(dm, 'train')
    assert train['image1'].shape == (2, 2, 224, 224)
    assert train['image2'].shape == (2, 13, 224, 224)
    val = first_batch(dm, 'val')
    assert val['image2'].shape[-2:] == (224, 224)
    # evaluation: the centre of the 120 px patch, upsampled to 256 px
    plain = first_batch(BigEarthNetMMDataModule(root=bigearthnet_root), 'val')
    centre = torch.nn.functional.interpolate(
        plain['image2'], size=256, mode='bilinear', align_corners=False
    )[..., 16:240, 16:240]
    torch.testing.assert_close(val['image2'], centre, atol=1e-4, rtol=0)
    dm.setup('test')
    val_folders = BigEarthNet(bigearthnet_root, split='val').folders
    assert dm.test_dataset is not None and len(dm.test_dataset) == len(val_folders)
    with pytest.raises(
        ValueError, match='crops 224 px as the authors did; got size=64'
    ):
        BigEarthNetMMDataModule(root=bigearthnet_root, size=64, protocol='authors')
    with pytest.raises(ValueError, match="protocol must be 'ours' or 'authors'"):
        BigEarthNetMMDataModule(root=bigearthnet_root, protocol='paper')  # type: ignore[arg-type]
    empty = BigEarthNetMMDataModule(root=tmp_path, protocol='authors')
    with pytest.raises(ValueError, match="protocol='authors' scores the val split"):
        empty.setup('test')


def test_authors_fraction_draw() -> None:
    """int(fraction * n) indices with replacement, as numpy's default_rng draws."""
    indices = authors_fraction_indices(1000, 0.1, 42)
    assert indices == np.random.default_rng(42).choice(1000, 100).tolist()
    assert len(indices) == 100 and len(set(indices)) < 100  # duplicates kept
    assert authors_fraction_indices(7, 1.0, 42) == list(range(7))
    with pytest.raises(ValueError, match='selects none'):
        authors_fraction_indices(10, 0.05, 42)
