"""One Zarr (format 2) zip store, read a location at a time.

zarr 3 reads format-2 zip stores, and :class:`ZarrZipFile` opens them with
it: the arrays' metadata, the coordinates, and any array of any chunking.
For the one read a pretraining worker repeats, a location's timestamps of a
``(sample, time, ...)`` array stored one chunk per location and timestamp,
it reads the chunk's zip member and decodes it with the array's own codec
(numcodecs, the codec library zarr uses). Measured on SSL4EO-S12 v1.1-sized
chunks (13 x 264 x 264 int16, Blosc-LZ4; ``benchmarks/loader.py``), zarr 3
spends 1-2 ms per ``array[i, t]`` in its asynchronous machinery on top of
the ~1 ms that reading and decoding the chunk takes; a DeCUR sample reads
four such chunks. Any other layout (chunks spanning locations, Fortran
order, filters) is read through zarr.

A local file is memory-mapped, and a stored (uncompressed) zip member, as
zarr writes them, is decoded straight from the map after its CRC-32 is
checked, as :mod:`zipfile` checks it: no copy of the compressed bytes (a
tenth of a sample's read time). Compressed members, and stores read over
fsspec, go through :mod:`zipfile`.

.. versionadded:: 0.2
"""

import io
import json
import mmap
import os
import struct
import zipfile
import zlib
from pathlib import Path
from typing import Any

import fsspec
import numcodecs
import numpy as np
import zarr
from numpy.typing import NDArray
from zarr.core.buffer import default_buffer_prototype
from zarr.storage import MemoryStore, ZipStore

__all__ = ('ZarrZipFile',)


def _memory_store(archive: zipfile.ZipFile) -> MemoryStore:
    """A read-only zarr store of the members of an in-memory zip file."""
    buffer = default_buffer_prototype().buffer
    members = {
        name: buffer.from_bytes(archive.read(name))
        for name in archive.namelist()
        if not name.endswith('/')
    }
    return MemoryStore(members, read_only=True)


class ZarrZipFile:
    """A Zarr format 2 zip store: its arrays, opened once, and fast chunk reads.

    .. versionadded:: 0.2
    """

    def __init__(
        self, path: str | os.PathLike[str], content: bytes | None = None
    ) -> None:
        """Open a store.

        Args:
            path: The ``*.zarr.zip`` file (a path or an fsspec URL, read
                with range requests), or the name of *content*.
            content: The zip file's bytes (e.g. a member of a tar shard);
                None reads *path*.

        Raises:
            OSError: If it is not a readable zip file of a Zarr format 2
                store (the message names the file).
        """
        url = '://' in str(path) and content is None
        self.path: Path | str = str(path) if url or content is not None else Path(path)
        self._in_memory = content is not None
        try:
            if content is None and url:
                self._zip = zipfile.ZipFile(fsspec.open(str(path), 'rb').open())
            elif content is None:
                self._zip = zipfile.ZipFile(self.path)
            else:
                self._zip = zipfile.ZipFile(io.BytesIO(content))
            members = self._zip.namelist()
            self._map = self._memory_map(content)
        except Exception as err:  # zipfile errors, a truncated file
            msg = f'{self.path}: not a readable Zarr zip store ({err})'
            raise OSError(msg) from err
        if '.zgroup' not in members:
            msg = f'{self.path}: not a readable Zarr zip store (no .zgroup)'
            raise OSError(msg)
        self._names = {m[: -len('/.zarray')] for m in members if m.endswith('/.zarray')}
        self._group: Any = None
        self._arrays: dict[str, Any] = {}
        self._layouts: dict[tuple[str, int], dict[str, Any] | None] = {}
        self._columns: dict[str, NDArray[Any]] = {}

    def _memory_map(self, content: bytes | None) -> memoryview | None:
        """The zip file's bytes without a copy: *content*, or the mapped file."""
        if content is not None:
            return memoryview(content)
        if isinstance(self.path, str) or os.path.getsize(self.path) == 0:
            return None
        with open(self.path, 'rb') as f:  # the map outlives the descriptor
            return memoryview(mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ))

    def _member(self, key: str) -> bytes | memoryview:
        """A member's bytes, its CRC-32 checked; from the map when it is stored.

        Raises:
            KeyError: If there is no such member.
            zipfile.BadZipFile: If its header, size or CRC-32 is wrong.
        """
        info = self._zip.getinfo(key)
        view = self._map
        if (
            view is None
            or info.compress_type != zipfile.ZIP_STORED
            or info.flag_bits & 1
        ):
            return self._zip.read(key)
        start = info.header_offset
        header = view[start : start + 30]
        if bytes(header[:4]) != b'PK\x03\x04':
            msg = f'{self.path}: bad local header of member {key!r}'
            raise zipfile.BadZipFile(msg)
        name_length, extra_length = struct.unpack('<HH', header[26:30])
        begin = start + 30 + name_length + extra_length
        data = view[begin : begin + info.file_size]
        if len(data) != info.file_size:
            msg = f'{self.path}: member {key!r} is truncated'
            raise zipfile.BadZipFile(msg)
        if zlib.crc32(data) != info.CRC:
            msg = f'{self.path}: bad CRC-32 for member {key!r}'
            raise zipfile.BadZipFile(msg)
        return data

    @property
    def group(self) -> Any:
        """The zarr group, opened when first needed (chunk reads do not).

        Raises:
            OSError: If zarr cannot open it (names the file).
        """
        if self._group is None:
            path = self.path
            try:
                if self._in_memory:
                    store: Any = _memory_store(self._zip)
                elif isinstance(path, str):
                    store = f'zip::{path}'
                else:
                    store = ZipStore(path, mode='r', read_only=True)
                self._group = zarr.open_group(store=store, mode='r', zarr_format=2)
            except Exception as err:
                msg = f'{path}: not a readable Zarr zip store ({err})'
                raise OSError(msg) from err
        return self._group

    def __getstate__(self) -> dict[str, Any]:
        """Refuse to be pickled: each process opens its own files.

        Raises:
            TypeError: Always.
        """
        msg = f'{type(self).__name__} of {self.path} is not picklable; reopen it'
        raise TypeError(msg)

    def __contains__(self, name: str) -> bool:
        """Whether the store has an array *name*."""
        return name in self._names

    def __getitem__(self, name: str) -> Any:
        """The zarr array *name* (its metadata read once).

        Raises:
            KeyError: If there is none (names the file).
        """
        if name not in self._arrays:
            if name not in self._names:
                msg = f'{self.path} has no {name!r} array'
                raise KeyError(msg)
            self._arrays[name] = self.group[name]
        return self._arrays[name]

    def column(self, name: str) -> NDArray[Any]:
        """A whole (small) array, e.g. a coordinate, read once.

        Args:
            name: The array.

        Returns:
            Its values.
        """
        if name not in self._columns:
            self._columns[name] = np.asarray(self[name][...])
        return self._columns[name]

    def _layout(self, name: str, lead: int) -> dict[str, Any] | None:
        """How to read a chunk of *name* directly, None if it cannot be.

        Direct reads need one chunk per index of the *lead* first dimensions,
        each chunk whole in the others.
        """
        if (name, lead) not in self._layouts:
            self._layouts[name, lead] = None
            meta = json.loads(self._zip.read(f'{name}/.zarray'))
            shape, chunks = meta['shape'], meta['chunks']
            if (
                len(shape) > lead
                and chunks[:lead] == [1] * lead
                and chunks[lead:] == shape[lead:]
                and meta.get('order', 'C') == 'C'
                and not meta.get('filters')
            ):
                compressor = meta.get('compressor')
                self._layouts[name, lead] = {
                    'shape': tuple(chunks[lead:]),
                    'dtype': np.dtype(meta['dtype']),
                    'codec': numcodecs.get_codec(compressor) if compressor else None,
                    'fill': meta.get('fill_value'),
                    'sep': meta.get('dimension_separator', '.'),
                }
        return self._layouts[name, lead]

    def location(self, name: str, index: int, times: list[int]) -> NDArray[Any]:
        """Some timestamps of one location of a ``(sample, time, ...)`` array.

        Args:
            name: The array (e.g. ``'bands'``).
            index: The location (first dimension).
            times: The timestamps (second dimension).

        Returns:
            ``(len(times), ...)``, in the array's dtype.
        """
        layout = self._layout(name, 2)
        if layout is None:
            selection = (index, times, *[slice(None)] * (self[name].ndim - 2))
            return np.asarray(self[name].get_orthogonal_selection(selection))
        out = np.empty((len(times), *layout['shape']), layout['dtype'])
        for k, t in enumerate(times):
            self._chunk(name, layout, (index, t), out[k])
        return out

    def timestamps(self, name: str, times: list[int]) -> NDArray[Any]:
        """Some timestamps of a ``(time, ...)`` array (one location's file).

        Args:
            name: The array (e.g. ``'bands'``).
            times: The timestamps (first dimension).

        Returns:
            ``(len(times), ...)``, in the array's dtype.
        """
        layout = self._layout(name, 1)
        if layout is None:
            selection = (times, *[slice(None)] * (self[name].ndim - 1))
            return np.asarray(self[name].get_orthogonal_selection(selection))
        out = np.empty((len(times), *layout['shape']), layout['dtype'])
        for k, t in enumerate(times):
            self._chunk(name, layout, (t,), out[k])
        return out

    def _chunk(
        self,
        name: str,
        layout: dict[str, Any],
        lead: tuple[int, ...],
        out: NDArray[Any],
    ) -> None:
        """Decode one chunk into *out*; the fill value where it was never written."""
        sep = layout['sep']
        indices = [*lead, *[0] * len(layout['shape'])]
        key = f'{name}/' + sep.join(str(i) for i in indices)
        try:
            data = self._member(key)  # checks the member's CRC-32
        except KeyError:
            out[...] = layout['fill'] if layout['fill'] is not None else 0
            return
        if layout['codec'] is not None:
            layout['codec'].decode(data, out=out)
        else:
            out[...] = np.frombuffer(data, dtype=layout['dtype']).reshape(out.shape)
