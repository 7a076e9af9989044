import pytest
import torch
from torch.utils.data import Dataset, Subset

from torchgeo_decur.datamodules.utils import (
    PairedAugmentation,
    fraction_indices,
    subset_fraction,
)


class FakeDataset(Dataset[int]):
    def __init__(self, n: int) -> None:
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, index: int) -> int:
        return index


def test_fraction_size_and_determinism() -> None:
    ds = FakeDataset(1000)
    a = subset_fraction(ds, 0.1, seed=0)
    b = subset_fraction(ds, 0.1, seed=0)
    c = subset_fraction(ds, 0.1, seed=1)
    assert len(a) == 100
    assert list(a.indices) == list(b.indices)
    assert list(a.indices) != list(c.indices)
    assert len(set(a.indices)) == 100
    assert list(a.indices) == sorted(a.indices)


def test_fraction_known_indices_across_processes() -> None:
    # torch.randperm with a seeded CPU generator is platform independent
    expected = sorted(
        torch.randperm(20, generator=torch.Generator().manual_seed(3))[:5].tolist()
    )
    assert fraction_indices(20, 0.25, seed=3) == expected


def test_fraction_nested() -> None:
    small = set(fraction_indices(1000, 0.01, seed=7))
    large = set(fraction_indices(1000, 0.5, seed=7))
    assert small < large


def test_fraction_one_keeps_all() -> None:
    assert list(subset_fraction(FakeDataset(7), 1.0, seed=5).indices) == list(range(7))


def test_fraction_rounding() -> None:
    assert len(fraction_indices(4, 0.125)) == 1  # 0.5 rounds up
    assert len(fraction_indices(3, 0.5)) == 2
    assert len(fraction_indices(10, 0.01 * 50)) == 5


def test_fraction_flattens_subset() -> None:
    ds = FakeDataset(100)
    inner = Subset(ds, list(range(50, 100)))
    out = subset_fraction(inner, 0.2, seed=0)
    assert out.dataset is ds
    assert len(out) == 10
    assert all(50 <= i < 100 for i in out.indices)
    assert [out[i] for i in range(len(out))] == list(out.indices)


@pytest.mark.parametrize('fraction', [0, 0.0, -0.1, 1.5, float('nan'), True, '0.5'])
def test_fraction_out_of_range(fraction: object) -> None:
    with pytest.raises(ValueError, match=r'train_fraction must be in \(0, 1\]'):
        subset_fraction(FakeDataset(10), fraction, seed=0)  # type: ignore[arg-type]


def test_fraction_selecting_nothing() -> None:
    with pytest.raises(ValueError, match=r'train_fraction=0\.01 of the 4 samples'):
        subset_fraction(FakeDataset(4), 0.01, seed=0)
    with pytest.raises(ValueError, match='selects no sample'):
        subset_fraction(FakeDataset(0), 0.5, seed=0)
    with pytest.raises(ValueError, match='val_fraction'):
        subset_fraction(FakeDataset(4), 0.01, seed=0, name='val')


def test_paired_augmentation_same_params() -> None:
    import kornia.augmentation as K

    torch.manual_seed(0)
    aug = PairedAugmentation(
        K.RandomCrop((8, 8)),
        K.RandomHorizontalFlip(),
        K.RandomVerticalFlip(),
        mask_keys=('mask',),
    )
    image1 = torch.arange(6 * 3 * 16 * 16, dtype=torch.float32).reshape(6, 3, 16, 16)
    batch = {
        'image1': image1,
        'image2': image1[:, :1] * 2,
        'mask': image1[:, 0].long(),
        'label': torch.arange(6),
    }
    out = aug(batch)
    assert out['image1'].shape == (6, 3, 8, 8)
    assert out['image2'].shape == (6, 1, 8, 8)
    assert out['mask'].shape == (6, 8, 8)
    assert out['mask'].dtype == torch.long
    assert torch.equal(out['image2'], out['image1'][:, :1] * 2)
    assert torch.equal(out['mask'], out['image1'][:, 0].long())
    assert torch.equal(out['label'], batch['label'])
    assert not torch.equal(out['image1'], image1[:, :, :8, :8])


def test_paired_augmentation_identity() -> None:
    batch = {'image1': torch.zeros(1, 2, 3, 3), 'image2': torch.ones(1, 1, 3, 3)}
    assert PairedAugmentation()(batch) is batch
