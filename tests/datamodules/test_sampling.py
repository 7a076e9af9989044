import random

import numpy as np
import torch
from torch.utils.data import Dataset

from torchgeo_decur.datamodules.sampling import (
    SeededDataLoader,
    SeededDataset,
    SeededSampler,
    derive_seed,
)


def test_derive_seed() -> None:
    assert derive_seed(1, 2, 3) == derive_seed(1, 2, 3)
    assert len({derive_seed(1, 2, i) for i in range(100)}) == 100
    assert 0 <= derive_seed(7) < 2**62


def test_sampler_order_and_seeds_per_epoch() -> None:
    sampler = SeededSampler(range(10, 30), seed=3)
    first = list(sampler)
    assert sorted(i for i, _ in first) == list(range(10, 30))
    assert first == list(sampler)  # a function of (seed, epoch) only
    sampler.set_epoch(1)
    second = list(sampler)
    assert sorted(second) != sorted(first)  # new seeds
    assert [i for i, _ in second] != [i for i, _ in first]  # new order
    assert list(SeededSampler(range(10, 30), seed=4)) != first
    # evaluation: in order, the same seeds every epoch
    val = SeededSampler([5, 2, 9], seed=3, shuffle=False)
    keys = list(val)
    val.set_epoch(4)
    assert list(val) == keys and [i for i, _ in keys] == [5, 2, 9]


def test_sampler_shards_across_processes() -> None:
    shards = [
        list(SeededSampler(range(7), seed=0, num_replicas=2, rank=r)) for r in (0, 1)
    ]
    assert [len(s) for s in shards] == [4, 4]  # padded to 8
    indices = [i for s in shards for i, _ in s]
    assert set(indices) == set(range(7))
    seeds = [k for s in shards for _, k in s]
    assert len(set(seeds)) == 8  # every position its own seed
    assert len(SeededSampler(range(7), seed=0, num_replicas=2, rank=1)) == 4


def test_sampler_resumes_mid_epoch() -> None:
    sampler = SeededSampler(range(12), seed=1)
    sampler.set_epoch(2)
    whole = list(sampler)
    sampler.consumed_batches = 2
    state = sampler.state_dict(batch_size=4)
    assert state == {'seed': 1, 'epoch': 2, 'consumed_batches': 2, 'batch_size': 4}
    resumed = SeededSampler(range(12), seed=999)
    resumed.load_state_dict(state)
    resumed.set_epoch(2)  # Lightning calls it again: the skip stays
    assert list(resumed) == whole[8:]
    assert list(resumed) == whole  # the skip applies once
    resumed.set_epoch(3)
    assert resumed.consumed_batches == 0


def test_loader_state_is_the_samplers() -> None:
    from lightning.fabric.utilities.types import _Stateful

    def loader(seed: int) -> SeededDataLoader:
        ds = SeededDataset(UsesGlobalRandom())
        return SeededDataLoader(ds, batch_size=2, sampler=SeededSampler(range(4), seed))

    whole = [b['sample_seed'].tolist() for b in loader(5)]
    interrupted = loader(5)
    interrupted.sampler.consumed_batches = 1
    state = interrupted.state_dict()
    assert state == interrupted.sampler.state_dict(2)
    resumed = loader(0)
    assert isinstance(resumed, _Stateful)  # Lightning sees a resumable loader
    resumed.load_state_dict(state)
    resumed.load_state_dict(state)  # twice (datamodule and Lightning): one skip
    assert [b['sample_seed'].tolist() for b in resumed] == whole[1:]


class UsesGlobalRandom(Dataset[dict[str, object]]):
    def __len__(self) -> int:
        return 4

    def __getitem__(self, index: int) -> dict[str, object]:
        return {
            'py': random.random(),
            'np': float(np.random.rand()),  # noqa: NPY002
            'torch': torch.rand(()),
        }


def test_seeded_dataset() -> None:
    ds = SeededDataset(UsesGlobalRandom())
    assert len(ds) == 4
    random.seed(0)
    before = random.random()
    random.seed(0)
    a = ds[(1, 42)]
    assert random.random() == before  # the caller's generators are untouched
    b = ds[(3, 42)]
    assert a['py'] == b['py'] and a['np'] == b['np'] and a['torch'] == b['torch']
    assert a['sample_seed'] == 42
    assert ds[(1, 43)]['py'] != a['py']
