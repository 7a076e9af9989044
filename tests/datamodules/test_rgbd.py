from pathlib import Path

import kornia.augmentation as K
import pytest
import torch
from lightning.pytorch import LightningModule, Trainer
from torch import Tensor

from torchgeo_decur.datamodules import (
    NYUDepthV2DataModule,
    NYUDepthV2PairDataModule,
    SUNRGBDDataModule,
    SUNRGBDPairDataModule,
)
from torchgeo_decur.datasets import SUNRGBD, NYUDepthV2
from torchgeo_decur.modalities import get_modality

from ..conftest import fake_trainer

SIZE = (40, 48)  # the fixtures' images (SUN RGB-D's resized to it)
PATCH = 16

PAIR = [
    (SUNRGBDPairDataModule, 'sunrgbd_root', {'size': SIZE}),
    (NYUDepthV2PairDataModule, 'nyuv2_root', {}),
]
SEGMENTATION = [
    (SUNRGBDDataModule, 'sunrgbd_root', {'size': SIZE}, 37),
    (NYUDepthV2DataModule, 'nyuv2_root', {}, 40),
]


def transfer(dm: object, batch: dict) -> dict:
    """What Lightning does around moving a batch to the device."""
    return dm.on_after_batch_transfer(dm.on_before_batch_transfer(batch, 0), 0)  # type: ignore[attr-defined]


@pytest.mark.parametrize(('cls', 'fixture', 'kwargs'), PAIR, ids=['sun', 'nyu'])
def test_pair_batches(
    cls: type, fixture: str, kwargs: dict, request: pytest.FixtureRequest
) -> None:
    root = request.getfixturevalue(fixture)
    dm = cls(
        root=root, batch_size=2, patch_size=PATCH, val_fraction=0.5, seed=0, **kwargs
    )
    assert dm.modalities == ('rgb_indoor', 'hha')
    dm.setup('fit')
    assert dm.dataset.mask is False  # no labels read in pretraining
    assert len(dm.train_dataset) == len(dm.val_dataset) == 2
    assert not set(dm.train_dataset.indices) & set(dm.val_dataset.indices)
    raw = next(iter(dm.train_dataloader()))
    skips = {'skipped_samples', 'bad_files'}  # bad files are skipped and named
    assert set(raw) == {'image1', 'image2', 'sample_seed', *skips}
    assert raw['image1'].dtype == raw['image2'].dtype == torch.uint8
    assert raw['image1'].shape == raw['image2'].shape == (2, 3, *SIZE)

    dm.trainer = Trainer(accelerator='cpu', logger=False)
    dm.trainer.training = True
    out = transfer(dm, raw)
    assert set(out) == {'image1', 'image2', *skips}  # the task logs the counts
    for key in ('image1', 'image2'):  # two augmented views per modality
        assert out[key].shape == (2, 2, 3, PATCH, PATCH)
        assert out[key].dtype == torch.float32
        assert not torch.allclose(out[key][:, 0], out[key][:, 1])
    # reproducible: the augmentation is a function of the samples' seeds
    torch.testing.assert_close(transfer(dm, raw)['image2'], out['image2'])

    dm.trainer.training, dm.trainer.validating = False, True
    val = transfer(dm, next(iter(dm.val_dataloader())))
    assert val['image1'].shape == (2, 2, 3, PATCH, PATCH)


class ViewCheck(LightningModule):
    """A tiny module that checks the batches it trains on."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(()))
        self.seen: list[tuple[int, ...]] = []

    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        for key in ('image1', 'image2'):
            assert batch[key].shape[1:] == (2, 3, PATCH, PATCH)
            assert torch.isfinite(batch[key]).all()
        self.seen.append(tuple(batch['image1'].shape))
        return self.weight * batch['image1'].mean() + self.weight**2

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.1)


def test_pair_fast_dev_run(nyuv2_root: Path) -> None:
    dm = NYUDepthV2PairDataModule(
        root=nyuv2_root, batch_size=2, patch_size=PATCH, val_fraction=0.0, seed=0
    )
    module = ViewCheck()
    trainer = Trainer(
        accelerator='cpu',
        fast_dev_run=True,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(module, datamodule=dm)
    assert module.seen == [(2, 2, 3, PATCH, PATCH)]


def test_pair_ignores_mask_argument(sunrgbd_root: Path) -> None:
    dm = SUNRGBDPairDataModule(root=sunrgbd_root, size=SIZE, mask=True)
    assert dm.kwargs['mask'] is False


def batch_of(dm: object, split: str) -> tuple[dict, dict]:
    dm.setup('test' if split == 'test' else 'fit')  # type: ignore[attr-defined]
    raw = next(iter(getattr(dm, f'{split}_dataloader')()))
    dm.trainer = fake_trainer(split)  # type: ignore[attr-defined]
    return raw, dm.on_after_batch_transfer(dict(raw), 0)  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ('cls', 'fixture', 'kwargs', 'classes'), SEGMENTATION, ids=['sun', 'nyu']
)
def test_eval_batch_contract(
    cls: type, fixture: str, kwargs: dict, classes: int, request: pytest.FixtureRequest
) -> None:
    root = request.getfixturevalue(fixture)
    dm = cls(root=root, batch_size=2, patch_size=PATCH, **kwargs)
    assert dm.num_classes == classes and dm.ignore_index == 255
    assert dm.modalities == ('rgb_indoor', 'hha')
    raw, batch = batch_of(dm, 'test')
    assert set(batch) == {'image1', 'image2', 'mask'}
    assert batch['image1'].shape == batch['image2'].shape == (2, 3, *SIZE)
    assert batch['mask'].shape == (2, *SIZE) and batch['mask'].dtype == torch.long
    assert batch['image1'].dtype == batch['image2'].dtype == torch.float32
    # preprocessed as the modalities say; masks untouched
    for key, name in (('image1', 'rgb_indoor'), ('image2', 'hha')):
        expected = get_modality(name).normalizer()(raw[key].float())
        torch.testing.assert_close(batch[key], expected)
    assert torch.equal(batch['mask'], raw['mask'])
    values = set(batch['mask'].unique().tolist())
    assert 255 in values and values <= {*range(classes), 255}


@pytest.mark.parametrize(
    ('cls', 'fixture', 'kwargs', 'classes'), SEGMENTATION, ids=['sun', 'nyu']
)
def test_train_same_crop_and_flip(
    cls: type, fixture: str, kwargs: dict, classes: int, request: pytest.FixtureRequest
) -> None:
    root = request.getfixturevalue(fixture)
    dm = cls(root=root, batch_size=2, patch_size=PATCH, val_fraction=0.5, **kwargs)
    flips = {type(m) for m in dm.train_aug.modules()}
    assert K.RandomHorizontalFlip in flips and K.RandomVerticalFlip not in flips
    dm.setup('fit')
    raw = next(iter(dm.train_dataloader()))
    # tie the modalities: HHA = RGB, mask from the red channel
    raw['image2'] = raw['image1'].clone()
    raw['mask'] = raw['image1'][:, 0].long() // 26
    dm.trainer = fake_trainer('train')
    mean, std = get_modality('rgb_indoor').standardization  # type: ignore[misc]
    for seed in range(3):
        torch.manual_seed(seed)
        out = dm.on_after_batch_transfer(dict(raw), 0)
        assert out['image1'].shape == (2, 3, PATCH, PATCH)
        assert out['mask'].shape == (2, PATCH, PATCH)
        assert out['mask'].dtype == torch.long
        torch.testing.assert_close(out['image2'], out['image1'])
        red = ((out['image1'][:, 0] * std[0] + mean[0]) * 255).round().long()
        assert torch.equal(out['mask'], red // 26)


@pytest.mark.parametrize(
    ('cls', 'fixture', 'kwargs', 'classes'), SEGMENTATION, ids=['sun', 'nyu']
)
def test_splits_disjoint_and_fraction(
    cls: type, fixture: str, kwargs: dict, classes: int, request: pytest.FixtureRequest
) -> None:
    root = request.getfixturevalue(fixture)

    def names(subset: torch.utils.data.Subset) -> list[str]:
        return [subset.dataset.files[i]['rgb'].name for i in subset.indices]  # type: ignore[attr-defined]

    dm = cls(root=root, val_fraction=0.25, train_fraction=0.5, seed=0, **kwargs)
    dm.setup('fit')
    dm.setup('test')
    train, val = names(dm.train_dataset), names(dm.val_dataset)
    test = [p['rgb'].name for p in dm.test_dataset.files]
    assert len(train) == 2 and len(val) == 1 and len(test) == 2
    assert not set(train) & set(val) and not set(train + val) & set(test)

    again = cls(root=root, val_fraction=0.25, train_fraction=0.5, seed=0, **kwargs)
    again.setup('fit')
    assert names(again.train_dataset) == train
    full = cls(root=root, val_fraction=0.25, **kwargs)
    full.setup('fit')
    assert set(train) < set(names(full.train_dataset))
    assert names(full.val_dataset) == val  # the split does not depend on seed
    assert len(full.train_dataset) + len(full.val_dataset) == 4

    none = cls(root=root, val_fraction=0.0, **kwargs)
    none.setup('fit')
    assert len(none.train_dataset) == 4 and none.val_dataloader() == []


def test_as_image(nyuv2_root: Path) -> None:
    dm = NYUDepthV2DataModule(root=nyuv2_root, batch_size=2, as_image='image2')
    _, batch = batch_of(dm, 'test')
    assert set(batch) == {'image', 'mask'} and batch['image'].shape == (2, 3, *SIZE)


def test_sunrgbd_needs_one_size_per_batch(sunrgbd_root: Path) -> None:
    dm = SUNRGBDDataModule(root=sunrgbd_root, batch_size=2, size=None)
    dm.setup('test')  # img-000001 is 40 x 48, img-000002 42 x 54
    with pytest.raises(RuntimeError, match='stack expects each tensor'):
        next(iter(dm.test_dataloader()))
    assert SUNRGBDDataModule(root=sunrgbd_root).kwargs['size'] == (480, 640)


def test_missing_image(nyuv2_root: Path) -> None:
    (nyuv2_root / 'RGB' / '0005.jpg').unlink()
    dm = NYUDepthV2DataModule(root=nyuv2_root)
    with pytest.raises(FileNotFoundError, match=r'train\.txt, line 3 .*0005\.jpg'):
        dm.setup('fit')


def test_patch_larger_than_image(nyuv2_root: Path) -> None:
    dm = NYUDepthV2DataModule(root=nyuv2_root, batch_size=2, patch_size=64)
    with pytest.raises(ValueError, match='patch_size=64 exceeds the image size 40'):
        batch_of(dm, 'train')
    _, batch = batch_of(dm, 'val')  # no crop outside training
    assert batch['image1'].shape[-2:] == SIZE


def test_errors(nyuv2_root: Path) -> None:
    with pytest.raises(ValueError, match=r'train_fraction must be in \(0, 1\]'):
        NYUDepthV2DataModule(root=nyuv2_root, train_fraction=2)
    with pytest.raises(ValueError, match='patch_size'):
        NYUDepthV2DataModule(root=nyuv2_root, patch_size=0)
    with pytest.raises(ValueError, match=r'val_fraction must be in \[0, 1\)'):
        SUNRGBDDataModule(root=nyuv2_root, val_fraction=1.0)
    with pytest.raises(ValueError, match='batch_size must be >= 2'):
        NYUDepthV2PairDataModule(root=nyuv2_root, batch_size=1)
    dm = NYUDepthV2DataModule(root=nyuv2_root, train_fraction=0.1)
    with pytest.raises(ValueError, match=r'0\.1 of the 3 samples'):
        dm.setup('fit')


def test_num_classes_match_datasets() -> None:
    assert SUNRGBDDataModule.num_classes == SUNRGBD.num_classes
    assert NYUDepthV2DataModule.num_classes == NYUDepthV2.num_classes


@pytest.mark.parametrize(
    ('cls', 'fixture', 'kwargs', 'classes'), SEGMENTATION, ids=['sun', 'nyu']
)
def test_authors_protocol(
    cls: type, fixture: str, kwargs: dict, classes: int, request: pytest.FixtureRequest
) -> None:
    """CMX's protocol: every training image, validated on the test list; the
    training batches flipped, rescaled from CMX's set, cropped and padded to
    patch_size with the ignore index; the same geometry for RGB, HHA, mask."""
    root = request.getfixturevalue(fixture)
    dm = cls(
        root=root,
        batch_size=2,
        patch_size=(32, 56),
        val_fraction=0.0,
        protocol='authors',
        **kwargs,
    )
    dm.setup('fit')
    test = [p['rgb'].name for p in dm.val_dataset.files]
    assert len(dm.train_dataset) == 4 and len(test) == 2
    assert dm.test_dataset is dm.val_dataset
    raw = next(iter(dm.train_dataloader()))
    raw['image2'] = raw['image1'].clone()
    raw['mask'] = raw['image1'][:, 0].long() // 26
    dm.trainer = fake_trainer('train')
    mean, std = get_modality('rgb_indoor').standardization  # type: ignore[misc]
    padded = 0
    for seed in range(6):
        torch.manual_seed(seed)
        out = dm.on_after_batch_transfer(dict(raw), 0)
        assert out['image1'].shape == out['image2'].shape == (2, 3, 32, 56)
        assert out['mask'].shape == (2, 32, 56) and out['mask'].dtype == torch.long
        torch.testing.assert_close(out['image2'], out['image1'])
        pad = out['mask'] == 255
        padded += int(pad.any())
        assert (out['image1'].permute(1, 0, 2, 3)[:, pad] == 0).all()
        red = ((out['image1'][:, 0] * std[0] + mean[0]) * 255).round().long()
        # bilinear images against nearest-neighbour masks agree off the edges
        agree = (out['mask'] == red // 26)[~pad].float().mean()
        assert agree > 0.6
    assert padded  # 56 px is wider than the 48 px images at scales <= 1
    _, batch = batch_of(dm, 'val')  # whole test images, unscaled
    assert batch['image1'].shape[-2:] == SIZE


def test_authors_protocol_errors(nyuv2_root: Path) -> None:
    with pytest.raises(ValueError, match='protocol must be one of'):
        NYUDepthV2DataModule(root=nyuv2_root, protocol='cmx')
    with pytest.raises(ValueError, match="protocol='authors' needs patch_size"):
        NYUDepthV2DataModule(
            root=nyuv2_root, patch_size=None, val_fraction=0.0, protocol='authors'
        )
    with pytest.raises(ValueError, match=r'set val_fraction to 0, got 0\.1'):
        NYUDepthV2DataModule(root=nyuv2_root, protocol='authors')


def test_authors_protocol_needs_the_test_list(nyuv2_root: Path) -> None:
    """CMX validates on the test list: without it, fit names the file."""
    (nyuv2_root / 'test.txt').unlink()
    dm = NYUDepthV2DataModule(
        root=nyuv2_root, patch_size=32, val_fraction=0.0, protocol='authors'
    )
    with pytest.raises(FileNotFoundError, match=r'test\.txt is missing'):
        dm.setup('fit')
