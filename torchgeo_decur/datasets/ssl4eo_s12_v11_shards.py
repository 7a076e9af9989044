"""Co-located SSL4EO-S12 v1.1 modalities streamed from its WebDataset shards.

Besides the Zarr chunk files (:class:`~torchgeo_decur.datasets.SSL4EOS12V11`),
SSL4EO-S12 v1.1 is distributed as WebDataset tar shards, one folder per
modality, with more modalities (DEM, NDVI, land cover)::

    root/train/S1GRD/ssl4eos12_shard_000001.tar
    root/train/S2L2A/ssl4eos12_shard_000001.tar ...

Each member is one location's Zarr (format 2) zip store, ``<key>.zarr.zip``,
with ``bands`` (time, band, y, x), ``cloud_mask`` (Sentinel-2), ``center_lat``,
``center_lon`` and ``time``; the same shard name holds the same locations in
the same order in every modality, and Sentinel-2 is stored without v1.1's
offset. These facts come from issue 21's description and IBM's TerraMesh
loader, which reads the same layout; the fixture of the tests is written to
them.

:class:`SSL4EOS12V11Shards` streams the shards (local paths or any fsspec URL,
e.g. ``https://``) and yields the same samples as the Zarr reader. Shards are
split across processes and DataLoader workers without overlap: an epoch reads
every location of the shards once, whatever the number of processes and
workers.

.. versionadded:: 0.2
"""

import os
import random
import re
import tarfile
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Literal

import fsspec
import numpy as np
import torch
import torch.distributed as dist
from numpy.typing import NDArray
from torch.utils.data import IterableDataset, get_worker_info

from .multimodal import MultimodalDataset
from .ssl4eo_s12_v11 import (
    band_name,
    check_reader_arguments,
    clear_timestamps,
    finish_batch,
    has_data,
    to_v1_units,
)
from .zarr_zip import ZarrZipFile

__all__ = ('SHARD_MODALITIES', 'SSL4EOS12V11Shards', 'expand_shards')

#: The modality folders of the shards and the registered modality each
#: feeds (``None``: read, but no registered preprocessing).
SHARD_MODALITIES: dict[str, str | None] = {
    'S1GRD': 's1',
    'S2L1C': 's2c',
    'S2L2A': 's2a',
    'S2RGB': None,
    'DEM': 'dem',
    'NDVI': None,
    'LULC': None,
}

#: A numeric brace range of a shard pattern, ``{000001..000477}``.
_RANGE = re.compile(r'\{(\d+)\.\.(\d+)\}')


def expand_shards(pattern: str) -> list[str]:
    """Expand a shard name pattern with one numeric brace range.

    Args:
        pattern: e.g. ``'ssl4eos12_shard_{000001..000477}.tar'``; a name
            without braces is returned as is.

    Returns:
        The names, zero-padded as the range's first number is.

    Raises:
        ValueError: If the range is empty.

    .. versionadded:: 0.2
    """
    match = _RANGE.search(pattern)
    if match is None:
        return [pattern]
    first, last = match.group(1), match.group(2)
    if int(last) < int(first):
        msg = f'empty shard range {match.group(0)} in {pattern!r}'
        raise ValueError(msg)
    width = len(first)
    head, tail = pattern[: match.start()], pattern[match.end() :]
    return [f'{head}{n:0{width}d}{tail}' for n in range(int(first), int(last) + 1)]


class _Desynced(Exception):
    """The modalities of a shard stopped holding the same locations."""


class SSL4EOS12V11Shards(MultimodalDataset, IterableDataset):  # type: ignore[misc]
    """Co-located SSL4EO-S12 v1.1 modalities streamed from WebDataset shards.

    Samples are those of :class:`~torchgeo_decur.datasets.SSL4EOS12V11` (two
    views per modality, each a timestamp drawn at random, in v1's units;
    ``skipped_samples``, ``skipped_seasons`` and ``bad_files``; the same
    ``max_cloud``, ``return_mask``, ``return_metadata`` and ``finish``), plus
    ``'dem'`` (one timestamp: both views are it). The draws of each location
    come from ``(seed, epoch, shard, position)``, so an epoch reads the same
    views wherever the shard is read.

    Every epoch (:meth:`set_epoch`) orders the shards by ``(seed, epoch)``
    and deals them out round-robin to every DataLoader worker of every
    process (``rank * workers + worker``): no location is read twice and none
    is lost. Processes get equal numbers of shards only if the number of
    shards divides by ``world_size * workers``; give the shards that way for
    DDP, whose processes must take the same number of steps (SSL4EO-S12
    v1.1's 477 train shards hold 512 locations each). Locations of a shard
    stream in stored order.

    A member that is not a Zarr zip store, a location without a usable
    timestamp, or a location missing from one modality (the keys differ:
    the rest of that shard is skipped, since its streams no longer pair) is
    skipped and counted in the next sample, as bad tiles are.

    .. versionadded:: 0.2
    """

    #: The offset of the stored Sentinel-2 values (the shards have none).
    s2_offset = 0

    def __init__(
        self,
        root: str = 'data',
        split: str = 'train',
        modalities: Sequence[str] = ('S1GRD', 'S2L1C'),
        shards: str | Sequence[str] | None = None,
        transforms: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
        max_cloud: float | None = None,
        return_mask: bool = False,
        return_metadata: bool = False,
        finish: Literal['sample', 'batch'] = 'sample',
        seed: int = 0,
        rank: int | None = None,
        world_size: int | None = None,
    ) -> None:
        """Initialize a new SSL4EOS12V11Shards instance.

        Args:
            root: Root folder or fsspec URL of the shards (with ``train`` and
                ``val``).
            split: ``'train'`` or ``'val'``.
            modalities: Modality folders of ``image1``, ``image2``, ...: any of
                :data:`SHARD_MODALITIES`.
            shards: Shard file names (a list, or a pattern with one brace
                range, e.g. ``'ssl4eos12_shard_{000001..000477}.tar'``); None
                lists the first modality's folder (local paths, and servers
                that list folders).
            transforms: A function/transform that takes a sample and returns a
                transformed version.
            max_cloud: Largest share of cloud, cloud shadow and no-data pixels
                of a drawn Sentinel-2 timestamp; None ignores the cloud mask.
            return_mask: Whether samples hold the cloud mask of each
                Sentinel-2 view.
            return_metadata: Whether samples hold ``location``
                (``'<shard>:<key>'``) and ``center`` (latitude, longitude).
            finish: Where values are put into v1's units: per sample, or on
                the batch by :meth:`on_device`.
            seed: Seed of the shard order and the timestamp draws.
            rank: This process's rank; None for torch.distributed's (0 when
                it is not initialised).
            world_size: The number of processes; None for torch.distributed's.

        Raises:
            ValueError: If a modality or another argument is invalid.
            FileNotFoundError: If no shard is found (names where it looked).
        """
        check_reader_arguments(
            modalities, list(SHARD_MODALITIES), max_cloud, finish, 'shard'
        )
        self.root = str(root).rstrip('/')
        self.split = split
        self.folders = tuple(modalities)
        self.modalities = tuple(SHARD_MODALITIES[m] or m for m in modalities)
        self.keys = tuple(f'image{i + 1}' for i in range(len(modalities)))
        self.transforms = transforms
        self.max_cloud = max_cloud
        self.return_mask = return_mask
        self.return_metadata = return_metadata
        self.finish = finish
        self.seed = seed
        self.epoch = 0
        self.rank, self.world_size = rank, world_size
        self.shards = self._find_shards(shards)
        #: Bands of each key, read from the first location of the first shard.
        self.input_bands = self._read_bands()

    def _url(self, modality: str, shard: str) -> str:
        return f'{self.root}/{self.split}/{modality}/{shard}'

    def _find_shards(self, shards: str | Sequence[str] | None) -> list[str]:
        """The shard names, given or listed."""
        if isinstance(shards, str):
            return expand_shards(shards)
        if shards is not None:
            return list(shards)
        folder = f'{self.root}/{self.split}/{self.folders[0]}'
        try:
            fs, path = fsspec.core.url_to_fs(folder)
            names = sorted(os.path.basename(p) for p in fs.glob(f'{path}/*.tar'))
        except (OSError, ValueError) as err:
            msg = f'cannot list the shards in {folder} ({err}); pass shards='
            raise FileNotFoundError(msg) from err
        if not names:
            msg = f'no *.tar shards in {folder}'
            raise FileNotFoundError(msg)
        return names

    def _read_bands(self) -> dict[str, tuple[str, ...]]:
        """The band names of each modality, from its first shard's first member.

        Raises:
            FileNotFoundError: If a modality's first shard cannot be opened.
        """
        bands = {}
        for key, modality in zip(self.keys, self.folders, strict=True):
            url = self._url(modality, self.shards[0])
            try:
                with (
                    fsspec.open(url, 'rb') as f,
                    tarfile.open(fileobj=f, mode='r|') as tar,
                ):
                    member = next(m for m in tar if m.isfile())
                    content = tar.extractfile(member).read()  # type: ignore[union-attr]
            except (OSError, tarfile.TarError, StopIteration) as err:
                msg = f'cannot read the shard {url} ({err})'
                raise FileNotFoundError(msg) from err
            store = ZarrZipFile(f'{url}:{member.name}', content)
            names = store.column('band') if 'band' in store else None
            bands[key] = (
                tuple(band_name(str(b)) for b in names)
                if names is not None
                else tuple(f'band{i}' for i in range(store['bands'].shape[1]))
            )
        return bands

    def __bool__(self) -> bool:
        """A dataset of shards is there (``if dataset:`` must not ask its length)."""
        return True

    def __len__(self) -> int:
        """Not known before the shards are streamed.

        Raises:
            TypeError: Always (Lightning then counts batches as it goes).
        """
        msg = f'{type(self).__name__} streams its shards: its length is not known'
        raise TypeError(msg)

    def __getitem__(self, index: int) -> dict[str, Any]:
        """Not supported: the shards are streamed; iterate over the dataset.

        Raises:
            TypeError: Always.
        """
        msg = (
            f'{type(self).__name__} streams its shards; iterate over it (use '
            'SSL4EOS12V11 for random access to the Zarr chunk files)'
        )
        raise TypeError(msg)

    def set_epoch(self, epoch: int) -> None:
        """Start an epoch: a new shard order and new draws.

        Args:
            epoch: The epoch.
        """
        self.epoch = epoch

    def shards_of(
        self, rank: int, world_size: int, worker: int, workers: int
    ) -> list[str]:
        """The shards one worker of one process reads this epoch.

        Args:
            rank: The process.
            world_size: The number of processes.
            worker: The DataLoader worker (0 without workers).
            workers: The number of workers (1 without workers).

        Returns:
            Its shards, in reading order.
        """
        order = list(self.shards)
        random.Random(self.seed * 1_000_003 + self.epoch).shuffle(order)
        return order[rank * workers + worker :: world_size * workers]

    def _place(self) -> tuple[int, int, int, int]:
        """``(rank, world_size, worker, workers)`` of the calling worker."""
        distributed = dist.is_available() and dist.is_initialized()
        rank = (
            self.rank
            if self.rank is not None
            else (dist.get_rank() if distributed else 0)
        )
        world = self.world_size
        if world is None:
            world = dist.get_world_size() if distributed else 1
        info = get_worker_info()
        return rank, world, info.id if info else 0, info.num_workers if info else 1

    def __iter__(self) -> Iterator[dict[str, Any]]:
        """Stream the samples of this worker's shards.

        Yields:
            Samples as :class:`~torchgeo_decur.datasets.SSL4EOS12V11`'s.
        """
        bad: list[str] = []
        skipped = [0, 0]  # locations, timestamps
        for shard in self.shards_of(*self._place()):
            for position, members in self._members(shard, bad, skipped):
                # a str seed is hashed with SHA-512: the same in every process
                rng = random.Random(f'{self.seed}:{self.epoch}:{shard}:{position}')
                try:
                    sample = self._sample(shard, members, rng, skipped)
                except ValueError as err:
                    bad.append(f'{shard}:{members[0][0]}: {err}')
                    skipped[0] += 1
                    continue
                sample['skipped_samples'] = torch.tensor(skipped[0])
                sample['skipped_seasons'] = torch.tensor(skipped[1])
                sample['bad_files'] = '\n'.join(bad)
                bad.clear()
                skipped[:] = [0, 0]
                if self.transforms is not None:
                    sample = self.transforms(sample)
                yield sample

    def _members(
        self, shard: str, bad: list[str], skipped: list[int]
    ) -> Iterator[tuple[int, list[tuple[str, bytes]]]]:
        """The members of one shard, one ``(key, bytes)`` per modality.

        Streams stop pairing when a location is missing from one modality:
        the rest of the shard is skipped and named in *bad*.
        """
        streams = []
        try:
            for modality in self.folders:
                f = fsspec.open(self._url(modality, shard), 'rb').open()
                streams.append((f, tarfile.open(fileobj=f, mode='r|')))
            iterators = [_files(tar) for _, tar in streams]
            for position, members in enumerate(zip(*iterators, strict=False)):
                keys = {key for key, _ in members}
                if len(keys) > 1:
                    bad.append(
                        f'{shard}: locations differ between modalities at member '
                        f'{position} ({", ".join(k for k, _ in members)}); rest skipped'
                    )
                    skipped[0] += 1
                    return
                yield position, list(members)
        except (OSError, tarfile.TarError) as err:
            bad.append(f'{shard}: cannot be read ({err})')
        finally:
            for f, tar in streams:
                tar.close()
                f.close()

    def _sample(
        self,
        shard: str,
        members: list[tuple[str, bytes]],
        rng: random.Random,
        skipped: list[int],
    ) -> dict[str, Any]:
        """The sample of one location.

        Raises:
            ValueError: If a member cannot be read or no timestamp is usable.
        """
        try:
            stores = [ZarrZipFile(f'{shard}:{k}', content) for k, content in members]
        except OSError as err:
            raise ValueError(str(err)) from err
        usable = self._usable(stores, skipped)
        sample: dict[str, Any] = {}
        for key, modality, store in zip(self.keys, self.folders, stores, strict=True):
            times = store['bands'].shape[0]
            own = [t for t in usable if t < times] or list(range(times))
            picked = [self._draw(store, modality, own, rng, skipped) for _ in range(2)]
            draws = [t for t, _ in picked]
            views = np.stack([view for _, view in picked])
            if self.finish == 'sample':
                views = to_v1_units(views, modality, self.s2_offset)
            sample[key] = torch.from_numpy(np.ascontiguousarray(views))
            if self.return_mask and 'cloud_mask' in store:
                mask = store.timestamps('cloud_mask', draws)
                sample[f'mask{key[5:]}'] = torch.from_numpy(mask)
        if self.return_metadata:
            sample['location'] = f'{shard}:{members[0][0]}'
            first = stores[0]
            center = [
                float(first.column(name)) if name in first else float('nan')
                for name in ('center_lat', 'center_lon')
            ]
            sample['center'] = torch.tensor(center, dtype=torch.float64)
        return sample

    @staticmethod
    def _draw(
        store: ZarrZipFile,
        modality: str,
        times: list[int],
        rng: random.Random,
        skipped: list[int],
    ) -> tuple[int, NDArray[Any]]:
        """A timestamp with data and its view, drawn from *times*.

        Only the timestamps tried are decoded.

        Raises:
            ValueError: If none has data.
        """
        left = list(times)
        while left:
            t = rng.choice(left)
            view = store.timestamps('bands', [t])[0]
            if has_data(view, modality, 0):
                return t, view
            left.remove(t)
            skipped[1] += 1
        msg = f'{modality}: no timestamp with data'
        raise ValueError(msg)

    def _usable(self, stores: list[ZarrZipFile], skipped: list[int]) -> list[int]:
        """Timestamps within *max_cloud* in every Sentinel-2 modality.

        Raises:
            ValueError: If none is.
        """
        times = max(store['bands'].shape[0] for store in stores)
        usable = list(range(times))
        if self.max_cloud is None:
            return usable
        for store in stores:
            if 'cloud_mask' not in store:
                continue
            mask = store.timestamps('cloud_mask', usable)
            keep = clear_timestamps(mask, usable, self.max_cloud)
            skipped[1] += len(usable) - len(keep)
            usable = keep
        if not usable:
            msg = f'no timestamp with at most {self.max_cloud} cloud / no data'
            raise ValueError(msg)
        return usable

    def on_device(self, batch: dict[str, Any]) -> dict[str, Any]:
        """Put a batch of stored values into v1's units (``finish='batch'``).

        Args:
            batch: A collated batch.

        Returns:
            The batch with float32 images.
        """
        if self.finish == 'sample':
            return batch
        return finish_batch(batch, dict(zip(self.keys, self.folders, strict=True)), 0)


def _files(tar: tarfile.TarFile) -> Iterator[tuple[str, bytes]]:
    """``(key, bytes)`` of the files of a streamed tar, key without extensions."""
    for member in tar:
        if not member.isfile():
            continue
        f = tar.extractfile(member)
        if f is None:
            continue
        name = os.path.basename(member.name)
        yield name.split('.', 1)[0], f.read()
