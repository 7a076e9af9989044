"""One rule for bad samples: skipped, counted and named, or raised."""

from pathlib import Path
from typing import Any

import pytest
import torch
from lightning.pytorch import Trainer

from torchgeo_decur.datamodules import BigEarthNetMMDataModule, GeoNRWPairDataModule
from torchgeo_decur.datasets.skipping import (
    ConstantImageError,
    SkippingDataset,
    check_not_constant,
    fallback_index,
)
from torchgeo_decur.tasks import DeCURTask, MultimodalMultiLabelClassificationTask


class Numbers(SkippingDataset):
    """Samples 0..n-1; those in *bad* raise, those in *flat* are constant."""

    def __init__(self, n: int, bad: set[int], flat: frozenset = frozenset(), **kw: Any):
        self.n, self.bad, self.flat = n, bad, flat
        self.set_bad_sample_policy(**kw)

    def __len__(self) -> int:
        return self.n

    def describe(self, index: int) -> str:
        return f'file{index}.tif'

    def load_sample(self, index: int) -> dict[str, Any]:
        if index in self.bad:
            raise OSError(f'cannot read file{index}.tif')
        image = torch.zeros(1, 4, 4) if index in self.flat else torch.rand(1, 4, 4)
        return {'image1': image + index, 'image2': torch.rand(1, 4, 4)}


def test_fallback_index() -> None:
    draws = [fallback_index(3, a, 10) for a in range(1, 50)]
    assert fallback_index(3, 0, 10) == 3 and 3 not in draws
    assert set(draws) <= set(range(10))
    assert draws == [fallback_index(3, a, 10) for a in range(1, 50)]  # fixed
    assert fallback_index(0, 5, 1) == 0


def test_check_not_constant() -> None:
    check_not_constant({'image1': torch.rand(2, 3, 3)}, ('image1', 'x'), 'f.tif')
    with pytest.raises(ConstantImageError, match=r'f\.tif: image1 is constant.*= 7'):
        check_not_constant({'image1': torch.full((2, 3, 3), 7.0)}, ('image1',), 'f.tif')


def test_skip_and_raise() -> None:
    ds = Numbers(
        6, bad={2}, flat=frozenset({4}), on_bad_sample='skip', max_sample_attempts=5
    )
    sample = ds[2]
    assert sample['skipped_samples'] >= 1
    assert sample['bad_files'].splitlines()[0] == 'cannot read file2.tif'
    assert 'file4.tif: image1 is constant' in ds[4]['bad_files']
    assert ds[0]['skipped_samples'] == 0
    strict = Numbers(6, bad={2}, on_bad_sample='raise', max_sample_attempts=5)
    with pytest.raises(OSError, match='file2'):
        strict[2]
    everything = Numbers(3, bad={0, 1, 2}, on_bad_sample='skip', max_sample_attempts=5)
    with pytest.raises(RuntimeError, match=r'3 samples in a row are bad.*\(of 3\)'):
        everything[0]
    with pytest.raises(ValueError, match='on_bad_sample'):
        Numbers(2, set(), on_bad_sample='warn', max_sample_attempts=2)
    with pytest.raises(ValueError, match='max_sample_attempts'):
        Numbers(2, set(), on_bad_sample='skip', max_sample_attempts=0)


@pytest.mark.filterwarnings('ignore::UserWarning')
def test_truncated_geonrw_dem_is_skipped_and_counted(geonrw_root: Path) -> None:
    """conf/decur_rgb_dem.yaml's data died on one truncated DEM; now it goes on."""
    dm = GeoNRWPairDataModule(
        root=str(geonrw_root), tile_size=50, batch_size=4, patch_size=32, seed=0
    )
    dm.setup('fit')
    dem = Path(dm.dataset.files[1][1])
    dem.write_bytes(dem.read_bytes()[:200])
    task = DeCURTask(
        modalities=['rgb', 'dem'],
        model1='resnet18',
        model2='resnet18',
        projector_dims=[32, 32],
        common_dim=24,
    )
    trainer = Trainer(
        max_epochs=1,
        accelerator='cpu',
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    with pytest.warns(
        UserWarning, match=rf'(?s)bad file\(s\) were skipped.*{dem.name}'
    ):
        trainer.fit(task, datamodule=dm)
    assert trainer.callback_metrics['train_skipped_samples'] == 4  # tiles 4-7


@pytest.mark.filterwarnings('ignore::UserWarning')
def test_transfer_task_logs_skips(bigearthnet_root: Path) -> None:
    """A fine-tuning run that asks to skip bad files goes on and counts them."""
    dm = BigEarthNetMMDataModule(
        root=bigearthnet_root, batch_size=2, size=32, on_bad_sample='skip'
    )
    dm.setup('fit')
    (vh,) = Path(dm.train_dataset.dataset.folders[0]['s1']).glob('*_VH.tif')
    vh.unlink()
    task = MultimodalMultiLabelClassificationTask(model='resnet18')
    trainer = Trainer(
        accelerator='cpu',
        max_epochs=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    with pytest.warns(UserWarning, match=r'(?s)bad file\(s\) were skipped.*band VH'):
        trainer.fit(task, datamodule=dm)
    assert trainer.callback_metrics['train_skipped_samples'] == 1
