import pytest
import torch
from lightning.pytorch import Trainer
from torch import Tensor
from torchgeo.datasets import NonGeoDataset

from torchgeo_decur.datamodules import ModalityPreprocessing, PairedDataModule
from torchgeo_decur.datamodules.utils import match_bands
from torchgeo_decur.datasets import MultimodalDataset
from torchgeo_decur.modalities import get_modality


class PermutedPair(MultimodalDataset):
    """RGB stored as B, G, R and a DEM, raw values, two views each."""

    input_bands = {'image1': ('B', 'G', 'R'), 'image2': ('DEM',)}

    def __init__(self, length: int = 6) -> None:
        self.length = length

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> dict[str, Tensor]:
        g = torch.Generator().manual_seed(index)
        return {
            'image1': torch.rand(2, 3, 20, 20, generator=g) * 255,
            'image2': torch.rand(2, 1, 20, 20, generator=g) * 300 + 50,
        }


def test_generic_datamodule_matches_bands_and_preprocesses() -> None:
    dm = PairedDataModule(
        PermutedPair, ('rgb', 'dem'), batch_size=3, patch_size=20, val_fraction=0.5
    )
    dm.setup('fit')
    assert len(dm.train_dataset) == len(dm.val_dataset) == 3
    dm.aug = dm.train_aug = dm.val_aug = torch.nn.Identity()  # look at preprocessing
    dm.trainer = Trainer(accelerator='cpu', logger=False)
    dm.trainer.training = True
    raw = next(iter(dm.train_dataloader()))
    out = dm.on_after_batch_transfer(dict(raw), 0)
    # B, G, R reordered to the modality's R, G, B, then / 255
    torch.testing.assert_close(out['image1'], raw['image1'][:, :, [2, 1, 0]] / 255)
    dem = get_modality('dem').normalizer()(raw['image2'])
    torch.testing.assert_close(out['image2'], dem)


def test_generic_datamodule_augments_views() -> None:
    dm = PairedDataModule(
        PermutedPair, ('rgb', 'dem'), batch_size=2, patch_size=8, val_fraction=0.0
    )
    dm.setup('fit')
    dm.trainer = Trainer(accelerator='cpu', logger=False)
    dm.trainer.training = True
    out = dm.on_after_batch_transfer(next(iter(dm.train_dataloader())), 0)
    assert out['image1'].shape == (2, 2, 3, 8, 8)
    assert out['image2'].shape == (2, 2, 1, 8, 8)
    assert dm.val_dataloader() == []


class OneImageEach(NonGeoDataset):
    """One raw image per modality (e.g. an RGB tile and its HHA)."""

    def __len__(self) -> int:
        return 4

    def __getitem__(self, index: int) -> dict[str, Tensor]:
        g = torch.Generator().manual_seed(index)
        return {
            'image1': torch.randint(0, 256, (3, 20, 20), generator=g).to(torch.uint8),
            'image2': torch.randint(0, 256, (3, 20, 20), generator=g).to(torch.uint8),
        }


def test_one_image_per_modality_gives_two_views_standardised_last() -> None:
    dm = PairedDataModule(
        OneImageEach,
        ('rgb_indoor', 'hha'),
        batch_size=2,
        patch_size=8,
        val_fraction=0.0,
        seed=0,
    )
    dm.setup('fit')
    dm.trainer = Trainer(accelerator='cpu', logger=False)
    dm.trainer.training = True
    raw = next(iter(dm.train_dataloader()))
    assert raw['image1'].shape == (2, 3, 20, 20)
    out = dm.on_after_batch_transfer(dict(raw), 0)
    assert out['image1'].shape == out['image2'].shape == (2, 2, 3, 8, 8)
    assert not torch.equal(out['image1'][:, 0], out['image1'][:, 1])  # own draws
    # the augmentation saw [0, 1]; the standardisation came last, so without
    # the augmentation the views are the standardised images
    dm.aug = dm.train_aug = torch.nn.Identity()
    out = dm.on_after_batch_transfer(dict(raw), 0)
    expected = get_modality('hha').normalizer(standardize=False)(raw['image2'].float())
    torch.testing.assert_close(out['image2'][:, 1], expected)


def test_generic_datamodule_errors() -> None:
    with pytest.raises(ValueError, match='two or more modalities'):
        PairedDataModule(PermutedPair, ('rgb',))
    with pytest.raises(ValueError, match="unknown modality 'lidar'"):
        PairedDataModule(PermutedPair, ('rgb', 'lidar'))
    with pytest.raises(ValueError, match='batch_size'):
        PairedDataModule(PermutedPair, ('rgb', 'dem'), batch_size=1)
    with pytest.raises(ValueError, match='val_fraction'):
        PairedDataModule(PermutedPair, ('rgb', 'dem'), val_fraction=1.0)


def test_modality_preprocessing() -> None:
    pre = ModalityPreprocessing({'a': get_modality('s2a')}, {'a': ('B2', 'B4')})
    x = torch.full((1, 2, 4, 4), 5000.0)
    x[:, 1] = 2000
    out = pre({'a': x, 'other': 1})
    assert out['other'] == 1
    assert out['a'].shape == (1, 12, 4, 4)
    bands = get_modality('s2a').bands
    assert out['a'][0, bands.index('B2')].max() == 0.5
    assert out['a'][0, bands.index('B4')].max() == 0.2
    assert out['a'][0, bands.index('B8')].abs().max() == 0  # filled with zeros
    # integers are converted; a missing key is an error naming the modality
    assert pre({'a': x.int()})['a'].dtype == torch.float32
    with pytest.raises(KeyError, match="no 'a' \\(s2a\\)"):
        pre({'b': x})


class OldStylePair(NonGeoDataset):
    """A dataset written for 0.1: input_bands without the base class."""

    input_bands = {'image1': ('B', 'G', 'R')}

    def __len__(self) -> int:
        return 1

    def __getitem__(self, index: int) -> dict[str, Tensor]:
        return {'image1': torch.zeros(3, 4, 4)}


def test_modality_preprocessing_takes_the_dataset() -> None:
    """The declared bands and finishing step of a MultimodalDataset are used;
    undeclared ones on another dataset are refused, not ignored."""
    dataset = PermutedPair()
    pre = ModalityPreprocessing({'image1': 'rgb', 'image2': 'dem'}, dataset)
    raw = torch.utils.data.default_collate([dataset[0], dataset[1]])
    out = pre(raw)
    torch.testing.assert_close(out['image1'], raw['image1'][:, :, [2, 1, 0]] / 255)
    # in a Subset too
    subset = torch.utils.data.Subset(dataset, [1])
    torch.testing.assert_close(
        ModalityPreprocessing({'image1': 'rgb'}, subset)(raw)['image1'],
        out['image1'],
    )
    with pytest.raises(TypeError, match='OldStylePair declares input_bands'):
        ModalityPreprocessing({'image1': 'rgb'}, OldStylePair())
    # a plain dataset without declarations: bands as the modality's
    plain = ModalityPreprocessing({'image1': 'rgb'}, [dataset[0]])
    torch.testing.assert_close(plain(raw)['image1'], raw['image1'] / 255)
    with pytest.raises(ValueError, match=r'image2 \(rgb\) has 1 channels'):
        ModalityPreprocessing({'image2': 'rgb'})(raw)


def test_match_bands() -> None:
    x = torch.arange(3.0).reshape(1, 3, 1, 1).expand(2, 3, 2, 2)
    out = match_bands(x, ('B', 'G', 'R'), ('R', 'G', 'B', 'N'))
    assert out[0, :, 0, 0].tolist() == [2.0, 1.0, 0.0, 0.0]
    assert match_bands(x, 'BGR', 'BGR') is x
    with pytest.raises(ValueError, match='has 3 channels but its bands are'):
        match_bands(x, ('A', 'B'), ('A',))
    with pytest.raises(ValueError, match='none of the bands'):
        match_bands(x, 'BGR', ('X',), 'thermal')


def test_val_split_deterministic_and_small_loaders() -> None:
    dm = PairedDataModule(PermutedPair, ('rgb', 'dem'), batch_size=2, val_fraction=0.5)
    dm.setup('fit')
    train, val = list(dm.train_dataset.indices), list(dm.val_dataset.indices)
    assert len(train) == len(val) == 3
    assert sorted(train + val) == list(range(6))
    dm2 = PairedDataModule(PermutedPair, ('rgb', 'dem'), batch_size=2, val_fraction=0.5)
    dm2.setup('validate')
    assert list(dm2.val_dataset.indices) == val
    # 3 training samples, batch 2: one full batch; validation keeps 2 + drops 1
    train_loader = dm.train_dataloader()
    assert train_loader.drop_last and len(train_loader) == 1
    val_loader = dm.val_dataloader()
    assert val_loader.drop_last and len(val_loader) == 1
    small = PairedDataModule(
        PermutedPair, ('rgb', 'dem'), batch_size=8, val_fraction=0.5
    )
    small.setup('fit')
    assert not small.train_dataloader().drop_last  # one batch of 3


def test_state_dict_carries_the_seed() -> None:
    dm = PairedDataModule(PermutedPair, ('rgb', 'dem'), seed=123, batch_size=2)
    assert dm.state_dict() == {'seed': 123, 'train_position': None}
    dm.setup('fit')
    loader = dm.train_dataloader()
    whole = list(loader)
    dm.train_sampler.consumed_batches = 1  # the datamodule counts them
    state = dm.state_dict()
    assert state['train_position']['consumed_batches'] == 1
    other = PairedDataModule(PermutedPair, ('rgb', 'dem'), batch_size=2)
    other.load_state_dict(state)
    assert other.seed == 123
    other.setup('fit')
    rest = list(other.train_dataloader())  # continues after the batch trained on
    assert len(rest) == len(whole) - 1
    torch.testing.assert_close(rest[0]['image1'], whole[1]['image1'])
    torch.manual_seed(5)
    a = PairedDataModule(PermutedPair, ('rgb', 'dem')).seed
    torch.manual_seed(5)
    assert PairedDataModule(PermutedPair, ('rgb', 'dem')).seed == a
