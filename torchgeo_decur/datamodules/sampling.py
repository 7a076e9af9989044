"""Reproducible, resumable sampling for long pretraining runs.

Every random choice of the data pipeline is made a function of a run seed,
the epoch and the position of the sample in the epoch, instead of a stream
that depends on how many numbers were drawn before (and by which DataLoader
worker):

* :class:`SeededSampler` orders the samples of an epoch and gives each its own
  seed, from ``(seed, epoch)`` only; it shards them across processes as
  :class:`~torch.utils.data.DistributedSampler` does;
* :class:`SeededDataset` reads each sample with Python's, NumPy's and torch's
  generators seeded from its seed (e.g. the season draws of
  :class:`~torchgeo_decur.datasets.SSL4EOS12Pair`) and hands the seed on, so
  the datamodule can seed the augmentation of each batch from its samples;
* the sampler's :meth:`~SeededSampler.state_dict` says how far into the epoch
  the run got, and :meth:`~SeededSampler.load_state_dict` skips that far,
  without reading anything, when a run resumes mid-epoch (the datamodule
  keeps it in checkpoints; :class:`SeededDataLoader` also exposes it to
  Lightning, which then knows the loader resumes mid-epoch).

Together they make an interrupted-and-resumed run read and augment the same
views as an uninterrupted one.

.. versionadded:: 0.1
"""

import contextlib
import random
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, Dataset, DistributedSampler

__all__ = ('SeededDataLoader', 'SeededDataset', 'SeededSampler', 'derive_seed')

#: Seeds are drawn below this bound (fits torch and Python generators).
_SEED_BOUND = 2**62


def derive_seed(*parts: int) -> int:
    """A seed that depends on *parts* only (NumPy's ``SeedSequence``).

    Args:
        *parts: Non-negative integers, e.g. ``(run seed, epoch, position)``.

    Returns:
        An integer in ``[0, 2**62)``.

    .. versionadded:: 0.1
    """
    state = np.random.SeedSequence([int(p) for p in parts]).generate_state(2)
    return int((int(state[0]) << 32 | int(state[1])) % _SEED_BOUND)


class SeededSampler(DistributedSampler):  # type: ignore[type-arg]
    """Per-epoch order and per-sample seeds from the run seed and the epoch.

    Yields ``(index, sample_seed)`` for the *indices* it was given (e.g. the
    training split of a dataset), in an order drawn from ``(seed, epoch)``
    if *shuffle* (else in order), each with a seed drawn from ``(seed, epoch,
    position)``, or from ``(seed, position)`` when *shuffle* is False, so that
    evaluation sees the same views every epoch. As a
    :class:`~torch.utils.data.DistributedSampler` (which it subclasses, so
    that Lightning keeps it and calls :meth:`set_epoch`), each of
    *num_replicas* processes takes every *num_replicas*-th sample, the epoch
    padded with its first samples to a multiple of *num_replicas*.

    :attr:`consumed_batches` counts the batches of the current epoch that were
    trained on (the datamodule increments it); :meth:`state_dict` and
    :meth:`load_state_dict` carry it over a resume.

    .. versionadded:: 0.1
    """

    def __init__(
        self,
        indices: Sequence[int],
        seed: int,
        shuffle: bool = True,
        num_replicas: int | None = None,
        rank: int | None = None,
    ) -> None:
        """Initialize a new SeededSampler instance.

        Args:
            indices: Dataset indices to sample.
            seed: Seed of the run.
            shuffle: Whether to reorder the samples every epoch.
            num_replicas: Number of processes; the world size if None and
                torch.distributed is initialised, else 1.
            rank: Rank of this process; the global rank if None and
                torch.distributed is initialised, else 0.
        """
        distributed = dist.is_available() and dist.is_initialized()
        if num_replicas is None:
            num_replicas = dist.get_world_size() if distributed else 1
        if rank is None:
            rank = dist.get_rank() if distributed else 0
        super().__init__(
            list(indices),  # type: ignore[arg-type]
            num_replicas=num_replicas,
            rank=rank,
            shuffle=shuffle,
            seed=seed,
        )
        self.indices = list(indices)
        #: Batches of the current epoch trained on.
        self.consumed_batches = 0
        self._skip = 0

    def set_epoch(self, epoch: int) -> None:
        """Start an epoch: a new order and new seeds (if it is a new epoch).

        Args:
            epoch: Epoch number.
        """
        if epoch != self.epoch:
            self.consumed_batches = 0
            self._skip = 0
        super().set_epoch(epoch)

    def keys(self) -> list[tuple[int, int]]:
        """The ``(index, sample_seed)`` keys of this process for the epoch.

        Returns:
            The keys, in order, before any skip.
        """
        n = len(self.indices)
        if self.shuffle:
            generator = torch.Generator().manual_seed(
                derive_seed(self.seed, self.epoch)
            )
            order = torch.randperm(n, generator=generator).tolist()
        else:
            order = list(range(n))
        if len(order) < self.total_size:  # pad, as DistributedSampler does
            order += (order * (self.total_size // max(n, 1) + 1))[
                : self.total_size - len(order)
            ]
        keys = []
        for position in range(self.rank, self.total_size, self.num_replicas):
            if self.shuffle:
                sample_seed = derive_seed(self.seed, self.epoch, position)
            else:
                sample_seed = derive_seed(self.seed, position)
            keys.append((self.indices[order[position]], sample_seed))
        return keys

    def __iter__(self) -> Iterator[tuple[int, int]]:  # type: ignore[override]
        """Iterate over this process's keys, after the samples already trained on.

        Yields:
            ``(index, sample_seed)``.
        """
        skip, self._skip = self._skip, 0
        yield from self.keys()[skip:]

    def __len__(self) -> int:
        """The number of samples of this process in a whole epoch.

        Returns:
            The number of samples.
        """
        return self.num_samples

    def state_dict(self, batch_size: int) -> dict[str, int]:
        """Where the run is in the epoch.

        Args:
            batch_size: Size of the batches (to turn batches into samples).

        Returns:
            ``{'seed', 'epoch', 'consumed_batches', 'batch_size'}``.
        """
        return {
            'seed': self.seed,
            'epoch': self.epoch,
            'consumed_batches': self.consumed_batches,
            'batch_size': batch_size,
        }

    def load_state_dict(self, state: dict[str, int]) -> None:
        """Continue where a saved run stopped: its epoch, after its batches.

        Args:
            state: A :meth:`state_dict`.
        """
        self.seed = state['seed']
        self.epoch = state['epoch']
        self.consumed_batches = state['consumed_batches']
        self._skip = state['consumed_batches'] * state['batch_size']


@contextlib.contextmanager
def _seeded(seed: int) -> Iterator[None]:
    """Seed Python's, NumPy's and torch's CPU generators; restore them after.

    Args:
        seed: The seed.

    Yields:
        Nothing.
    """
    # NumPy's legacy global generator on purpose: it is what datasets use
    py_state, np_state = random.getstate(), np.random.get_state()  # noqa: NPY002
    with torch.random.fork_rng(devices=[]):
        random.seed(seed)
        np.random.seed(seed % 2**32)  # noqa: NPY002
        # the CPU generator only: torch.manual_seed would also seed (and
        # initialise) the accelerators' generators, which fork_rng does not
        # restore, and costs ~0.2 ms per sample
        torch.random.default_generator.manual_seed(seed)
        try:
            yield
        finally:
            random.setstate(py_state)
            np.random.set_state(np_state)  # noqa: NPY002


class SeededDataset(Dataset[dict[str, Any]]):
    """Read each sample with the random generators seeded from its seed.

    Takes the ``(index, sample_seed)`` keys of :class:`SeededSampler`: the
    wrapped dataset's ``dataset[index]`` runs with Python's, NumPy's and torch's
    generators seeded with ``sample_seed`` (and restored afterwards), so that
    its random choices depend on nothing else; the sample gets a
    ``sample_seed`` entry.

    .. versionadded:: 0.1
    """

    def __init__(self, dataset: Dataset[dict[str, Any]]) -> None:
        """Initialize a new SeededDataset instance.

        Args:
            dataset: The dataset, indexed by integers, returning dicts.
        """
        self.dataset = dataset

    def __len__(self) -> int:
        """Return the length of the wrapped dataset.

        Returns:
            The number of samples.
        """
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, key: tuple[int, int]) -> dict[str, Any]:
        """Read one sample with seeded generators.

        Args:
            key: ``(index, sample_seed)``.

        Returns:
            The sample, with ``sample_seed``.
        """
        index, seed = key
        with _seeded(seed):
            sample = dict(self.dataset[index])
        sample['sample_seed'] = torch.tensor(seed, dtype=torch.int64)
        return sample


class SeededDataLoader(DataLoader):  # type: ignore[type-arg]
    """A data loader over a :class:`SeededSampler` that says where it stands.

    Its :meth:`state_dict` and :meth:`load_state_dict` are its sampler's, so
    Lightning (which saves and restores the state of loaders that have them)
    treats it as resumable mid-epoch. Loading the same state twice (from the
    datamodule's state and from Lightning's) is harmless: it sets the
    position, it does not advance it.

    .. versionadded:: 0.1
    """

    sampler: SeededSampler

    def state_dict(self) -> dict[str, int]:
        """Where the run is in the epoch (see :meth:`SeededSampler.state_dict`).

        Returns:
            The sampler's state for this loader's batch size.
        """
        assert self.batch_size is not None  # always set by the datamodule
        return self.sampler.state_dict(self.batch_size)

    def load_state_dict(self, state: dict[str, int]) -> None:
        """Continue where a saved run stopped.

        Args:
            state: A :meth:`state_dict`.
        """
        self.sampler.load_state_dict(state)
