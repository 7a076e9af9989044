import torch

from torchgeo_decur.lab import BimodalTrifeature, TrifeaturePairDataModule
from torchgeo_decur.lab.trifeature import synergy_map

from ..conftest import fake_trainer

LABELS = BimodalTrifeature.label_keys


def test_batches() -> None:
    dm = TrifeaturePairDataModule(
        batch_size=4, patch_size=24, num_pairs=16, size=32, sample_seed=0
    )
    assert dm.modalities == ('trifeature1', 'trifeature2')
    dm.setup('fit')
    assert isinstance(dm.dataset, BimodalTrifeature)
    assert len(dm.train_dataset) == 16 and dm.val_dataset is None  # type: ignore[arg-type]
    raw = next(iter(dm.train_dataloader()))
    assert raw['image1'].shape == (4, 3, 32, 32)
    assert raw['image1'].dtype == torch.uint8
    dm.trainer = fake_trainer('train')  # type: ignore[assignment]
    batch = dm.on_after_batch_transfer(dict(raw), 0)
    for key in ('image1', 'image2'):
        assert batch[key].shape == (4, 2, 3, 24, 24)
        assert batch[key].dtype == torch.float32
        assert 0 <= batch[key].min() and batch[key].max() <= 1
    # the labels pass through
    for key in LABELS:
        assert batch[key].shape == (4,) and batch[key].dtype == torch.int64
        assert torch.equal(batch[key], raw[key])
    # without augmentation: the raw images divided by 255, twice
    dm.aug = dm.train_aug = torch.nn.Identity()  # type: ignore[assignment]
    plain = dm.on_after_batch_transfer(dict(raw), 0)
    for key in ('image1', 'image2'):
        for view in (0, 1):
            torch.testing.assert_close(plain[key][:, view], raw[key].float() / 255)


def test_dataset_arguments() -> None:
    dm = TrifeaturePairDataModule(
        batch_size=2, num_pairs=6, size=16, biased=True, seed=5, synergy_seed=2
    )
    assert dm.kwargs['split'] == 'train'
    dm.setup('fit')
    ds = dm.dataset
    assert isinstance(ds, BimodalTrifeature)
    assert (ds.num_pairs, ds.size, ds.biased, ds.seed) == (6, 16, True, 5)
    labels = ds.labels
    assert torch.equal(labels['colour2'], synergy_map(2)[labels['texture1']])
    assert (labels['synergy'] == 1).all()


def test_seeds() -> None:
    # seed generates the data, sample_seed orders and augments it
    a = TrifeaturePairDataModule(batch_size=2, num_pairs=8, size=16, sample_seed=1)
    b = TrifeaturePairDataModule(batch_size=2, num_pairs=8, size=16, sample_seed=2)
    c = TrifeaturePairDataModule(
        batch_size=2, num_pairs=8, size=16, seed=1, sample_seed=1
    )
    assert (a.seed, b.seed) == (1, 2)
    images = []
    for dm in (a, b, c):
        dm.setup('fit')
        assert isinstance(dm.dataset, BimodalTrifeature)
        images.append(dm.dataset.image1)
    assert torch.equal(images[0], images[1])
    assert not torch.equal(images[0], images[2])


def test_validation_split() -> None:
    dm = TrifeaturePairDataModule(
        batch_size=2, num_pairs=20, size=16, patch_size=16, val_fraction=0.2
    )
    dm.setup('fit')
    assert len(dm.train_dataset) == 16 and len(dm.val_dataset) == 4  # type: ignore[arg-type]
    loader = dm.val_dataloader()
    assert isinstance(loader, torch.utils.data.DataLoader)
    raw = next(iter(loader))
    dm.trainer = fake_trainer('val')  # type: ignore[assignment]
    batch = dm.on_after_batch_transfer(dict(raw), 0)
    assert batch['image2'].shape == (2, 2, 3, 16, 16)
    assert torch.equal(batch['shape'], raw['shape'])
