import random
from pathlib import Path

import kornia.augmentation as K
import pytest
import torch
from lightning.pytorch import LightningModule, Trainer
from torch import Tensor
from torch.utils.data import default_collate

from torchgeo_decur.datamodules import SSL4EOS12PairDataModule
from torchgeo_decur.datasets import SSL4EOS12Pair
from torchgeo_decur.modalities import get_modality
from torchgeo_decur.transforms import MultiViewAugmentation, normalize_s1, normalize_s2

SIZE = 36  # tile size of the fixture
PATCH = 32


def datamodule(root: Path, **kwargs: object) -> SSL4EOS12PairDataModule:
    kwargs = {'batch_size': 2, 'patch_size': PATCH, 'val_fraction': 0.0, **kwargs}
    return SSL4EOS12PairDataModule(root=root, size=SIZE, **kwargs)  # type: ignore[arg-type]


def test_train_batches(ssl4eo_root: Path) -> None:
    dm = datamodule(ssl4eo_root)
    dm.setup('fit')
    assert len(dm.train_dataset) == 2
    assert dm.val_dataloader() == []
    loader = dm.train_dataloader()
    assert loader.drop_last
    batches = list(loader)
    assert len(batches) == 1
    batch = batches[0]
    # raw values from the workers; coarser S2 bands at their stored size
    assert batch['image1'].shape == (2, 2, 2, SIZE, SIZE)
    assert batch['image2'].shape == (2, 2, 4, SIZE, SIZE)
    assert batch['image2@18'].shape == (2, 2, 6, 18, 18)
    assert batch['image2@6'].shape == (2, 2, 3, 6, 6)
    assert batch['image1'].max() < 0  # dB

    assert batch['sample_seed'].shape == (2,)
    dm.trainer = Trainer(accelerator='cpu', max_epochs=1, logger=False)
    dm.trainer.training = True
    out = transfer(dm, batch)
    assert dm.train_sampler.consumed_batches == 1
    assert out['image1'].shape == (2, 2, 2, PATCH, PATCH)
    assert out['image2'].shape == (2, 2, 13, PATCH, PATCH)
    # the four views of a sample are augmented independently
    assert not torch.allclose(out['image1'][0, 0], out['image1'][0, 1])
    assert not torch.allclose(out['image2'][1, 0], out['image2'][1, 1])
    assert set(out) == {
        'image1',
        'image2',
        'skipped_samples',
        'skipped_seasons',
        'bad_files',
    }
    # the augmentation of a batch is a function of its samples' seeds
    again = transfer(dm, batch)
    torch.testing.assert_close(again['image2'], out['image2'])
    for key in ('image1', 'image2'):  # preprocessed to [0, 1] on the batch
        assert 0 <= out[key].min() and out[key].max() <= 1 + 1e-6

    dm.trainer.validating = True
    assert transfer(dm, batch)['image1'].shape[-1] == PATCH


def transfer(dm: SSL4EOS12PairDataModule, batch: dict) -> dict:
    """What Lightning does around moving a batch to the device."""
    return dm.on_after_batch_transfer(dm.on_before_batch_transfer(batch, 0), 0)


def test_preprocessing_on_the_batch(ssl4eo_root: Path) -> None:
    """Without augmentation, a batch is the modalities' preprocessing of the
    full samples the dataset gives on its own."""
    dm = datamodule(ssl4eo_root, patch_size=SIZE)
    dm.setup('fit')
    dm.aug = dm.train_aug = dm.val_aug = torch.nn.Identity()
    dm.trainer = Trainer(accelerator='cpu', max_epochs=1, logger=False)
    dm.trainer.training = True
    random.seed(0)  # the same season draws for both
    batch = default_collate([dm.train_dataset[i] for i in range(2)])
    random.seed(0)
    full = SSL4EOS12Pair(ssl4eo_root)
    samples = default_collate([full[i] for i in range(2)])
    out = dm.on_after_batch_transfer(batch, 0)
    torch.testing.assert_close(out['image1'], normalize_s1(samples['image1']))
    torch.testing.assert_close(out['image2'], normalize_s2(samples['image2']))
    assert dm.modality_of == {
        'image1': get_modality('s1'),
        'image2': get_modality('s2c'),
    }


def test_augmentations(ssl4eo_root: Path) -> None:
    dm = datamodule(ssl4eo_root, optical='s2a')
    assert isinstance(dm.train_aug, MultiViewAugmentation)
    assert dm.aug is dm.train_aug is dm.val_aug
    # the modalities preprocess: TorchGeo's default Normalize is replaced
    assert K.Normalize not in {
        type(m) for m in dm.aug.augmentations['image1'].modules()
    }
    s2 = dm.train_aug.augmentations['image2']
    assert s2(torch.rand(1, 12, SIZE, SIZE)).shape == (1, 12, PATCH, PATCH)


def test_one_sample_validation_split_is_not_used(ssl4eo_root: Path) -> None:
    """Two locations: a validation split of one cannot form a batch of 2."""
    for fraction in (0.5, 0.05):
        dm = datamodule(ssl4eo_root, val_fraction=fraction)
        with pytest.warns(UserWarning, match=r'validation split of 1.*all 2 samples'):
            dm.setup('fit')
        assert dm.val_dataset is None and dm.val_dataloader() == []
        assert len(dm.train_dataset) == 2


def test_invalid_arguments(ssl4eo_root: Path) -> None:
    with pytest.raises(ValueError, match='val_fraction'):
        datamodule(ssl4eo_root, val_fraction=1.0)
    with pytest.raises(ValueError, match='batch_size'):
        datamodule(ssl4eo_root, batch_size=1)


class _Model(LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.layer = torch.nn.Linear(2 + 13, 1)
        self.shapes: list[tuple[int, ...]] = []

    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        self.shapes.append(tuple(batch['image2'].shape))
        x = torch.cat([batch['image1'], batch['image2']], dim=2).mean(dim=(1, 3, 4))
        return self.layer(x).mean()

    def validation_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:
        raise AssertionError('no validation data with val_fraction=0')

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.1)


@pytest.mark.filterwarnings('ignore:Total length of `list` across ranks is zero')
def test_fit(ssl4eo_root: Path) -> None:
    dm = datamodule(ssl4eo_root)
    model = _Model()
    trainer = Trainer(
        accelerator='cpu',
        fast_dev_run=True,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(model, dm)
    assert model.shapes == [(2, 2, 13, PATCH, PATCH)]
