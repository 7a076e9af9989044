"""Co-located modalities of SSL4EO-S12 v1.1, read from its Zarr chunk files.

SSL4EO-S12 v1.1 (Blumenstiel et al., 2025, https://arxiv.org/abs/2503.00168;
https://github.com/DLR-MF-DAS/SSL4EO-S12-v1.1, CC-BY-4.0) packs 246,144
locations into 3,846 zip files of Zarr (format 2) stores, 64 locations with
four timestamps each::

    root/train/S1GRD/ssl4eos12_train_seasonal_data_000001.zarr.zip
    root/train/S2L1C/ssl4eos12_train_seasonal_data_000001.zarr.zip
    root/val/S2L2A/ssl4eos12_val_seasonal_data_000001.zarr.zip ...

The same file name and sample index are the same location in every modality
(Sentinel-1 is co-registered on the Sentinel-2 grid). Each store holds
``bands`` (sample, time, band, y, x): Sentinel-2 as int16 digital numbers
plus 1000 (the maintainers' standardisation means show it: the cirrus band
B10 averages 1021.8 in v1.1 against about 21 in v1), Sentinel-1 as float16
dB; ``cloud_mask`` (sample, time, y, x) for Sentinel-2 (0 land, 1 water,
2 snow, 3 thin cloud, 4 thick cloud, 5 cloud shadow, 6 no data); and per
location its ``sample`` id, centre, CRS, per timestamp ``file_id`` and
``time_``.

:class:`SSL4EOS12V11` reads them with zarr 3 (which reads format-2 zip
stores) and returns what :class:`~torchgeo_decur.datasets.SSL4EOS12Pair`
returns for v1, in v1's units, so the published weights' preprocessing
applies unchanged.

.. versionadded:: 0.2
"""

import os
import random
import re
import warnings
from collections import OrderedDict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, ClassVar, Literal

import fsspec
import numpy as np
import torch
from numpy.typing import NDArray
from torch import Tensor
from torchgeo.datasets import DatasetNotFoundError

from .multimodal import MultimodalDataset
from .skipping import fallback_index
from .zarr_zip import ZarrZipFile

__all__ = (
    'CLOUDY_CLASSES',
    'CLOUD_CLASSES',
    'S2_OFFSET',
    'SSL4EOS12V11',
    'V11_MODALITIES',
    'band_name',
    'check_reader_arguments',
    'clear_timestamps',
    'finish_batch',
    'has_data',
    'to_v1_units',
)

#: The offset v1.1's Zarr files add to Sentinel-2 digital numbers.
S2_OFFSET = 1000

#: Classes of v1.1's ``cloud_mask``.
CLOUD_CLASSES = {
    0: 'land',
    1: 'water',
    2: 'snow',
    3: 'thin cloud',
    4: 'thick cloud',
    5: 'cloud shadow',
    6: 'no data',
}

#: Classes that count against a timestamp with ``max_cloud``: clouds,
#: their shadows and no data.
CLOUDY_CLASSES = (3, 4, 5, 6)

#: v1.1's modality folders and the registered modality each one feeds
#: (``None``: read, but no registered preprocessing).
V11_MODALITIES: dict[str, str | None] = {
    'S1GRD': 's1',
    'S2L1C': 's2c',
    'S2L2A': 's2a',
    'S2RGB': None,
}

#: Open stores kept per modality and process (a file holds 64 locations).
_OPEN_FILES = 8


def band_name(name: str) -> str:
    """A v1.1 band name in the plugin's (and v1's) spelling.

    Args:
        name: As in v1.1's ``band`` coordinate: ``'vv'``, ``'B01'``, ``'B8A'``.

    Returns:
        ``'VV'``, ``'B1'``, ``'B8A'``; RGB bands (``'R'``) unchanged.

    .. versionadded:: 0.2
    """
    match = re.fullmatch(r'B0*(\d+A?)', name)
    return f'B{match.group(1)}' if match else name.upper()


#: What the numpy dtype kinds of :attr:`SSL4EOS12V11.dtype_kinds` mean.
_KIND_NAMES = {'f': 'floating point', 'u': 'unsigned integer', 'i': 'integer'}


def check_reader_arguments(
    modalities: Sequence[str],
    known: Sequence[str],
    max_cloud: float | None,
    finish: str,
    kind: str = 'v1.1',
) -> None:
    """Check the arguments both v1.1 readers share.

    Args:
        modalities: The modality folders asked for.
        known: The folders the format has.
        max_cloud: The cloud share limit, or None.
        finish: ``'sample'`` or ``'batch'``.
        kind: What the folders are called in the error (``'v1.1'``,
            ``'shard'``).

    Raises:
        ValueError: Naming the argument and the value.

    .. versionadded:: 0.2
    """
    unknown = [m for m in modalities if m not in known]
    if unknown or not modalities or len(set(modalities)) != len(modalities):
        msg = (
            f'modalities must be distinct {kind} folders of {list(known)}, '
            f'got {list(modalities)}'
        )
        raise ValueError(msg)
    if max_cloud is not None and not 0 <= max_cloud <= 1:
        msg = f'max_cloud must be in [0, 1] or None, got {max_cloud}'
        raise ValueError(msg)
    if finish not in ('sample', 'batch'):
        msg = f"finish must be 'sample' or 'batch', got {finish!r}"
        raise ValueError(msg)


def clear_timestamps(
    mask: NDArray[Any], times: list[int], max_cloud: float
) -> list[int]:
    """The timestamps whose cloud mask is not all no data and clear enough.

    Args:
        mask: ``cloud_mask`` of *times*, ``(len(times), H, W)``.
        times: The timestamps of *mask*.
        max_cloud: Largest share of :data:`CLOUDY_CLASSES` pixels kept.

    Returns:
        The kept timestamps, in order.

    .. versionadded:: 0.2
    """
    no_data = (mask == 6).mean(axis=(1, 2))
    cloudy = np.isin(mask, CLOUDY_CLASSES).mean(axis=(1, 2))
    return [
        t
        for t, empty, share in zip(times, no_data, cloudy, strict=True)
        if empty < 1 and share <= max_cloud
    ]


def has_data(view: NDArray[Any], modality: str, offset: int = S2_OFFSET) -> bool:
    """Whether a stored view holds any data.

    Args:
        view: ``(C, H, W)`` as stored.
        modality: v1.1's modality folder.
        offset: The offset of the Sentinel-2 values as stored.

    Returns:
        False for an all no-data view: Sentinel-2 without a value above
        *offset*, Sentinel-1 without a finite non-zero pixel, others all zero.

    .. versionadded:: 0.2
    """
    flat = view.reshape(-1)
    # most views answer from their first pixels; the whole view otherwise
    for part in (flat[:_FIRST_PIXELS], flat):
        if modality in ('S2L1C', 'S2L2A'):
            found = part.size > 0 and part.max() > offset
        elif modality == 'S1GRD':
            found = _finite_nonzero(part).any()
        else:
            found = part.any()
        if found:
            return True
    return False


#: Pixels :func:`has_data` looks at before the whole view.
_FIRST_PIXELS = 4096


def _finite_nonzero(values: NDArray[Any]) -> NDArray[np.bool_]:
    """Which values are finite and non-zero.

    For float16 (v1.1's Sentinel-1) on the bits: numpy's float16 arithmetic
    is emulated and took 0.4 ms per 2 x 264 x 264 view, a fifth of a
    sample's read. A half is finite and non-zero when its magnitude bits are
    not all zero and its exponent bits are not all one.
    """
    if values.dtype == np.float16:
        magnitude = values.view(np.uint16) & 0x7FFF
        return (magnitude != 0) & (magnitude < 0x7C00)
    return np.isfinite(values) & (values != 0)


def to_v1_units(
    views: NDArray[Any], modality: str, offset: int = S2_OFFSET
) -> NDArray[np.float32]:
    """Stored v1.1 views in the v1 reader's units, float32.

    Sentinel-2: the offset of 1000 removed, values below it (no data,
    negative L2A reflectance) clipped to 0, as v1's unsigned files hold
    them; Sentinel-1 dB with non-finite pixels filled with the band's median
    (v1's reader fills thin no-data borders the same way; an all no-data
    band becomes 0); RGB bytes as they are. The same code as the batch's
    (:func:`finish_batch`).

    Args:
        views: ``(V, C, H, W)`` as stored.
        modality: v1.1's modality folder.
        offset: The offset of the Sentinel-2 values as stored (1000 in the
            Zarr chunk files, 0 in the WebDataset shards).

    Returns:
        ``(V, C, H, W)`` float32.

    .. versionadded:: 0.2
    """
    batch = finish_batch({'v': torch.from_numpy(views)}, {'v': modality}, offset)
    return batch['v'].numpy()


def finish_batch(
    batch: dict[str, Any], folders: dict[str, str], offset: int = S2_OFFSET
) -> dict[str, Any]:
    """A collated batch of stored v1.1 values in v1's units, on its device.

    What :func:`to_v1_units` does per sample, on whole batches (the lower
    median of an even number of pixels, as :func:`torch.nanmedian`).

    Args:
        batch: The batch.
        folders: v1.1's modality folder of each image key.
        offset: The offset of the stored Sentinel-2 values.

    Returns:
        A new batch with float32 images.

    .. versionadded:: 0.2
    """
    out = dict(batch)
    for key, modality in folders.items():
        x = out[key].float()
        if modality in ('S2L1C', 'S2L2A'):
            x = (x - offset).clamp_min_(0)
        elif modality == 'S1GRD':
            x = _fill_nonfinite_batch(x)
        out[key] = x
    return out


def _fill_nonfinite_batch(x: Tensor) -> Tensor:
    """The Sentinel-1 fill of every image and band of a batch ``(..., H, W)``."""
    finite = torch.isfinite(x)
    if bool(finite.all()):
        return x
    flat = torch.where(finite, x, torch.nan).flatten(-2)
    medians = torch.nanmedian(flat, dim=-1).values.nan_to_num(0.0)
    return torch.where(finite, x, medians[..., None, None])


class _BadLocation(Exception):
    """No usable timestamp of a modality of a location."""


class SSL4EOS12V11(MultimodalDataset):
    """Co-located SSL4EO-S12 v1.1 modalities from the Zarr chunk files, for DeCUR.

    A sample holds two views per modality, each a timestamp drawn at random
    (independently for each view, as
    :class:`~torchgeo_decur.datasets.SSL4EOS12Pair` draws v1's seasons, with
    Python's :mod:`random`, which the datamodule seeds per sample)::

        {'image1': Tensor[2, 2, 264, 264],    # S1GRD vv, vh (dB), views a, b
         'image2': Tensor[2, 13, 264, 264]}   # S2L1C digital numbers

    in the units of the v1 reader: Sentinel-2 digital numbers **without**
    v1.1's offset of 1000 (values below it, no data and negative L2A
    reflectance, clipped to 0, as v1's unsigned files hold them), Sentinel-1
    dB as float32. Only the chunks of the drawn timestamps of one location
    are read (a file is never loaded whole); a worker keeps the last few
    stores open.

    Cloud handling (Sentinel-2 modalities, from ``cloud_mask``):

    * ``max_cloud=None`` (default) ignores the mask;
    * ``max_cloud=f`` draws only timestamps whose share of thin and thick
      cloud, cloud shadow and no-data pixels is at most *f*, in every
      modality's views (Sentinel-1 too, so that both draw from the same
      seasons); the timestamps left out count in ``skipped_seasons``;
    * ``return_mask=True`` adds ``mask<k>`` (``[2, H, W]`` uint8, the mask of
      each view) for each Sentinel-2 key, e.g. to mask a loss.

    A timestamp that is all no data (Sentinel-2 mask class 6 everywhere, or
    Sentinel-1 without a finite pixel) is never drawn; a location with no
    usable timestamp in a modality, or whose files cannot be read, is
    replaced by another location (a fixed draw per index), and each sample
    counts what was replaced (``skipped_samples``, ``skipped_seasons``) and
    names it (``bad_files``: file, sample id and reason), which
    :class:`~torchgeo_decur.tasks.DeCURTask` logs, as for v1. A location
    missing from a modality's file (a different ``sample`` id at the same
    index) is such a bad location.

    If you use this dataset in your research, please cite:

    * https://arxiv.org/abs/2503.00168 (SSL4EO-S12 v1.1)
    * https://arxiv.org/abs/2211.07044 (SSL4EO-S12)

    .. versionadded:: 0.2
    """

    #: The offset of the stored Sentinel-2 values.
    s2_offset = S2_OFFSET

    #: numpy dtype kinds of each modality's ``bands``.
    dtype_kinds: ClassVar[dict[str, str]] = {
        'S1GRD': 'f',
        'S2L1C': 'i',
        'S2L2A': 'i',
        'S2RGB': 'u',
    }

    def __init__(
        self,
        root: str | os.PathLike[str] = 'data',
        split: str = 'train',
        modalities: Sequence[str] = ('S1GRD', 'S2L1C'),
        transforms: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
        max_cloud: float | None = None,
        return_mask: bool = False,
        return_metadata: bool = False,
        finish: Literal['sample', 'batch'] = 'sample',
        max_location_attempts: int = 10,
    ) -> None:
        """Initialize a new SSL4EOS12V11 instance.

        Lists the files of the first modality in ``root/split`` and reads the
        number of locations of each (its ``bands`` metadata only).

        Args:
            root: Root directory of SSL4EO-S12 v1.1, with ``train`` and ``val``.
            split: ``'train'`` or ``'val'`` (the folder under *root*).
            modalities: Modality folders, in the order of ``image1``,
                ``image2``, ...: any of ``S1GRD``, ``S2L1C``, ``S2L2A``,
                ``S2RGB``.
            transforms: A function/transform that takes a sample and returns a
                transformed version.
            max_cloud: Largest share of cloud, cloud shadow and no-data pixels
                of a Sentinel-2 timestamp that is drawn; None ignores clouds.
            return_mask: Whether samples hold the cloud mask of each
                Sentinel-2 view.
            return_metadata: Whether samples hold ``location`` (``'<file>:<sample
                id>'`` of the location read) and ``center`` (latitude,
                longitude); :meth:`metadata` gives the rest.
            finish: Where the stored values are turned into v1's units: in
                every sample (``'sample'``), or on the batch by
                :meth:`on_device` (``'batch'``: the workers hand over the
                int16 / float16 values as stored, half the bytes, and the
                conversion runs on the device).
            max_location_attempts: Locations tried for one sample before giving
                up with a :class:`RuntimeError`.

        Raises:
            DatasetNotFoundError: If ``root/split`` does not exist.
            FileNotFoundError: If a modality folder is missing or holds no
                ``*.zarr.zip``.
            ValueError: If a modality, *max_cloud* or *max_location_attempts*
                is invalid.
        """
        check_reader_arguments(modalities, list(V11_MODALITIES), max_cloud, finish)
        if max_location_attempts < 1:
            msg = f'max_location_attempts must be >= 1, got {max_location_attempts}'
            raise ValueError(msg)
        self.finish = finish
        self.root = (
            os.fspath(root).rstrip('/') if '://' in str(root) else os.fspath(root)
        )
        self.split = split
        self.folders = tuple(modalities)
        #: Registered modality names of ``image1``, ``image2``, ...
        self.modalities = tuple(V11_MODALITIES[m] or m for m in modalities)
        self.keys = tuple(f'image{i + 1}' for i in range(len(modalities)))
        self.transforms = transforms
        self.max_cloud = max_cloud
        self.return_mask = return_mask
        self.return_metadata = return_metadata
        self.max_location_attempts = max_location_attempts
        self._stores: dict[str, OrderedDict[str, Any]] = {}
        fs, folder = fsspec.core.url_to_fs(f'{self.root}/{split}')
        if not fs.isdir(folder):
            raise DatasetNotFoundError(self)
        self.files = self._list_files(fs, folder)
        #: ``(file name, sample index)`` of every location.
        self.locations = self._index()
        #: Bands of each key in channel order (the files' own, renamed).
        self.input_bands = {
            key: self._band_names(modality)
            for key, modality in zip(self.keys, self.folders, strict=True)
        }

    def _index(self) -> list[tuple[str, int]]:
        """Every location of the files, counted in the first modality's.

        A file that cannot be read there is left out with a warning that
        names it (its locations cannot be counted).
        """
        locations: list[tuple[str, int]] = []
        unreadable = []
        for name in self.files:
            try:
                n = self._open(self.folders[0], name)['bands'].shape[0]
            except (OSError, KeyError) as err:
                unreadable.append(str(err))
                continue
            locations += [(name, i) for i in range(n)]
        if unreadable:
            msg = (
                f'{len(unreadable)} of {len(self.files)} files left out: '
                + '; '.join(unreadable[:5])
            )
            warnings.warn(msg, UserWarning, stacklevel=3)
        return locations

    def _band_names(self, modality: str) -> tuple[str, ...]:
        """The bands of a modality, from the first of its files that opens.

        Raises:
            OSError: If none does.
        """
        problems = []
        for name in self.files:
            try:
                group = self._open(modality, name)
            except OSError as err:
                problems.append(str(err))
                continue
            return tuple(band_name(str(b)) for b in group['band'][:])
        msg = f'no readable {modality} file: ' + '; '.join(problems[:3])
        raise OSError(msg)

    def _list_files(self, fs: Any, folder: str) -> list[str]:
        """The ``*.zarr.zip`` names every modality folder holds."""
        found: list[set[str]] = []
        for modality in self.folders:
            path = f'{folder}/{modality}'
            if not fs.isdir(path):
                msg = f'modality folder not found: {self._where(modality)}'
                raise FileNotFoundError(msg)
            found.append({os.path.basename(p) for p in fs.glob(f'{path}/*.zarr.zip')})
        common = sorted(set.intersection(*found))
        if not common:
            where = [self._where(m) for m in self.folders]
            msg = f'no *.zarr.zip in all of {where}'
            raise FileNotFoundError(msg)
        return common

    def _where(self, modality: str, name: str | None = None) -> str:
        """The path or URL of a modality folder, or of one of its files."""
        if '://' in self.root:
            return '/'.join(
                [self.root, self.split, modality, *([name] if name else [])]
            )
        return os.fspath(
            Path(self.root, self.split, modality, *([name] if name else []))
        )

    def __getstate__(self) -> dict[str, Any]:
        """Pickle without open stores (each DataLoader worker opens its own)."""
        state = self.__dict__.copy()
        state['_stores'] = {}
        return state

    def _open(self, modality: str, name: str) -> Any:
        """The zarr group of one file, kept open among the last few."""
        stores = self._stores.setdefault(modality, OrderedDict())
        if name in stores:
            stores.move_to_end(name)
            return stores[name]
        group = ZarrZipFile(self._where(modality, name))
        stores[name] = group
        if len(stores) > _OPEN_FILES:
            stores.popitem(last=False)
        return group

    def __len__(self) -> int:
        """Return the number of locations.

        Returns:
            Length of the dataset.
        """
        return len(self.locations)

    def __getitem__(self, index: int) -> dict[str, Any]:
        """Return two views of each modality at one location.

        Args:
            index: Index of the location.

        Returns:
            ``{'image1': Tensor[2, C1, H, W], ...}`` float32, raw values (dB,
            digital numbers without offset); with *return_mask*, ``mask<k>``
            for each Sentinel-2 key; and ``skipped_samples``,
            ``skipped_seasons`` and ``bad_files``.

        Raises:
            RuntimeError: If no usable location is found in
                ``max_location_attempts`` draws.
        """
        bad: list[str] = []
        replaced = [0]
        for attempt in range(self.max_location_attempts):
            try:
                sample = self._load_location(
                    self._fallback(index, attempt), bad, replaced
                )
                break
            except _BadLocation:
                continue
        else:
            msg = (
                f'no usable location in {self.max_location_attempts} draws for '
                f'index {index}: ' + '; '.join(bad[-3:])
            )
            raise RuntimeError(msg)
        if self.return_metadata:
            sample.update(self._short_metadata(self._fallback(index, attempt)))
        sample['skipped_samples'] = torch.tensor(attempt)
        sample['skipped_seasons'] = torch.tensor(replaced[0])
        sample['bad_files'] = '\n'.join(bad)
        if self.transforms is not None:
            sample = self.transforms(sample)
        return sample

    def _fallback(self, index: int, attempt: int) -> int:
        """The location tried at an attempt (:func:`fallback_index`)."""
        return fallback_index(index, attempt, len(self))

    def _load_location(
        self, index: int, bad: list[str], replaced: list[int]
    ) -> dict[str, Any]:
        """Read the views of every modality of one location.

        Raises:
            _BadLocation: If a file cannot be read, the location differs
                between modalities, or a modality has no usable timestamp.
        """
        name, i = self.locations[index]
        try:
            groups = [self._open(m, name) for m in self.folders]
            return self._read_location(groups, name, i, bad, replaced)
        except _BadLocation:
            raise
        except Exception as err:  # a corrupt chunk: zip, codec or shape errors
            bad.append(f'{name}[{i}]: {type(err).__name__}: {err}')
            for modality in self.folders:  # reopen next time
                self._stores.get(modality, OrderedDict()).pop(name, None)
            raise _BadLocation from err

    def _read_location(
        self,
        groups: list[ZarrZipFile],
        name: str,
        i: int,
        bad: list[str],
        replaced: list[int],
    ) -> dict[str, Any]:
        """The views of every modality of location *i* of the file *name*.

        Raises:
            _BadLocation: If the location differs between modalities, or a
                modality has no usable timestamp.
        """
        ids = [str(g.column('sample')[i]) for g in groups]
        if len(set(ids)) > 1:
            where = ', '.join(
                f'{m} {s}' for m, s in zip(self.folders, ids, strict=True)
            )
            bad.append(
                f'{name}[{i}]: not the same location in every modality ({where})'
            )
            raise _BadLocation
        usable = self._usable_times(groups, name, i, ids[0], bad, replaced)
        sample: dict[str, Any] = {}
        for key, modality, group in zip(self.keys, self.folders, groups, strict=True):
            draws = [random.choice(usable) for _ in range(2)]
            views = self._read(group, modality, i, draws)  # both views at once
            for v, t in enumerate(draws):
                if has_data(views[v], modality, self.s2_offset):
                    continue
                replaced[0] += 1  # all no data: another usable timestamp
                others = [u for u in usable if u != t] or usable
                draws[v] = random.choice(others)
                views[v] = self._read(group, modality, i, draws[v : v + 1])[0]
                if not has_data(views[v], modality, self.s2_offset):
                    bad.append(f'{name}[{i}] {modality} sample {ids[0]}: no data')
                    raise _BadLocation
            if self.finish == 'sample':
                views = to_v1_units(views, modality, self.s2_offset)
            sample[key] = torch.from_numpy(np.ascontiguousarray(views))
            if self.return_mask and 'cloud_mask' in group:
                masks = group.location('cloud_mask', i, draws)
                sample[f'mask{key[5:]}'] = torch.from_numpy(masks)
        return sample

    def _usable_times(
        self,
        groups: list[Any],
        name: str,
        i: int,
        sample_id: str,
        bad: list[str],
        replaced: list[int],
    ) -> list[int]:
        """Timestamps of a location that are not all no data (or too cloudy).

        Timestamps left out count in *replaced*; a location left without any
        is named in *bad*.

        Raises:
            _BadLocation: If none is left.
        """
        times = groups[0]['bands'].shape[1]
        usable = list(range(times))
        if self.max_cloud is None:  # no data is found in the images read
            return usable
        for group in groups:
            if 'cloud_mask' not in group:
                continue
            mask = group.location('cloud_mask', i, usable)  # (time, y, x), small
            keep = clear_timestamps(mask, usable, self.max_cloud)
            replaced[0] += len(usable) - len(keep)
            usable = keep
        if not usable:
            bad.append(
                f'{name}[{i}] sample {sample_id}: no timestamp with at most '
                f'{self.max_cloud} cloud / no data in {list(self.folders)}'
            )
            raise _BadLocation
        return usable

    def _read(
        self, group: ZarrZipFile, modality: str, i: int, times: list[int]
    ) -> NDArray[Any]:
        """Timestamps of one location as stored, ``(T, C, H, W)``.

        Only the chunks of those timestamps are read.

        Raises:
            TypeError: If the stored dtype is not the modality's (names the
                file).
        """
        raw = group.location('bands', i, times)
        kind = self.dtype_kinds[modality]
        if raw.dtype.kind != kind and not (kind == 'i' and raw.dtype.kind == 'u'):
            msg = (
                f'{group.path}: bands are {raw.dtype}, expected '
                f'{_KIND_NAMES[kind]} numbers for {modality}'
            )
            raise TypeError(msg)
        return raw

    def on_device(self, batch: dict[str, Any]) -> dict[str, Any]:
        """Turn a batch of stored values into v1's units, on its device.

        Does nothing unless ``finish='batch'``; then as
        :func:`~torchgeo_decur.datasets.ssl4eo_s12_v11.to_v1_units` does per
        sample.

        Args:
            batch: A collated batch.

        Returns:
            The batch with float32 images in v1's units.
        """
        if self.finish == 'sample':
            return batch
        keys = dict(zip(self.keys, self.folders, strict=True))
        return finish_batch(batch, keys, self.s2_offset)

    def _short_metadata(self, index: int) -> dict[str, Any]:
        """What a sample holds with *return_metadata*."""
        name, i = self.locations[index]
        group = self._open(self.folders[0], name)
        lat = float(group['center_lat'][i]) if 'center_lat' in group else float('nan')
        lon = float(group['center_lon'][i]) if 'center_lon' in group else float('nan')
        return {
            'location': f'{name}:{group["sample"][i]}',
            'center': torch.tensor([lat, lon], dtype=torch.float64),
        }

    def metadata(self, index: int) -> dict[str, Any]:
        """Where and when a location is, from its first modality's file.

        Args:
            index: Index of the location.

        Returns:
            ``{'file', 'sample', 'sample_id', 'center_lat', 'center_lon',
            'crs', 'file_id', 'time'}``; per timestamp for the last two.

        .. versionadded:: 0.2
        """
        name, i = self.locations[index]
        group = self._open(self.folders[0], name)
        out: dict[str, Any] = {'file': name, 'sample': i}
        out['sample_id'] = str(group['sample'][i])
        for key in ('center_lat', 'center_lon', 'crs'):
            if key in group:
                out[key] = group[key][i].item()
        if 'file_id' in group:
            out['file_id'] = [str(v) for v in group['file_id'][i]]
        if 'time_' in group:
            out['time'] = np.asarray(group['time_'][i]).tolist()
        return out
