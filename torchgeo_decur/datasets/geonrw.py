"""GeoNRW (aerial RGB, DEM, land cover) with raw values."""

import os
import warnings
from collections.abc import Callable
from typing import Any, ClassVar, Literal

import numpy as np
import rasterio
import torch
from rasterio.errors import NotGeoreferencedWarning, RasterioIOError
from rasterio.windows import Window
from torchgeo.datasets import GeoNRW
from torchgeo.datasets.utils import Sample

from .skipping import SkippingDataset

__all__ = ('GeoNRWCities', 'GeoNRWTiles')


class GeoNRWCities(GeoNRW, SkippingDataset):
    """TorchGeo's :class:`~torchgeo.datasets.GeoNRW`, raw, on the cities present.

    Two changes to TorchGeo 0.10's reader:

    * it raises :class:`~torchgeo.datasets.DatasetNotFoundError` unless the
      folder of every city of the split exists; this subclass uses the
      cities of the split that are present (with a :class:`UserWarning`
      naming the missing ones), so that a partial copy, such as the test
      fixtures, loads. When no city of the split is present it behaves as
      TorchGeo's (extracts the archive, downloads it, or raises);
    * samples hold raw values, one key per modality::

        {'image1': float32 [3, H, W],  # R, G, B, 0-255
         'image2': float32 [1, H, W],  # elevation in metres
         'mask': int64 [H, W]}         # class indices 0..10

      (TorchGeo's own divides the RGB by 255 and names it ``image``). The
      preprocessing is the modalities' (``rgb``, ``dem``), on the batch.

    .. versionadded:: 0.1
    """

    #: Bands of ``image1`` and ``image2``, in channel order.
    input_bands: ClassVar[dict[str, tuple[str, ...]]] = {
        'image1': ('R', 'G', 'B'),
        'image2': ('DEM',),
    }

    def __init__(
        self,
        *args: Any,
        on_bad_sample: Literal['raise', 'skip'] = 'raise',
        max_sample_attempts: int = 10,
        **kwargs: Any,
    ) -> None:
        """Initialize a new GeoNRWCities instance.

        Args:
            *args: Arguments of TorchGeo's :class:`~torchgeo.datasets.GeoNRW`
                (``root``, ``split``, ``transforms``, ``download``, ``checksum``).
            on_bad_sample: What a bad tile (an unreadable or constant image)
                does: ``'raise'`` its error (the default: a replaced test tile
                would change the metric silently) or ``'skip'`` it (another
                tile is read, counted and named:
                :mod:`~torchgeo_decur.datasets.skipping`).
            max_sample_attempts: Tiles tried for one index before giving up.
            **kwargs: Keyword arguments of TorchGeo's GeoNRW.
        """
        self.set_bad_sample_policy(on_bad_sample, max_sample_attempts)
        super().__init__(*args, **kwargs)

    def _verify(self) -> None:
        """Verify that the data is present; keep the cities found on disk."""
        present = tuple(
            c for c in self.city_names if os.path.isdir(os.path.join(self.root, c))
        )
        if present and len(present) < len(self.city_names):
            missing = [c for c in self.city_names if c not in present]
            msg = (
                f'GeoNRW {self.split} split: {len(missing)} of '
                f'{len(self.city_names)} city folders missing in {self.root} '
                f'({", ".join(missing[:5])}{", ..." if len(missing) > 5 else ""}); '
                f'using the {len(present)} present'
            )
            warnings.warn(msg, UserWarning, stacklevel=2)
            self.city_names = present
            return
        super()._verify()

    __getitem__ = SkippingDataset.__getitem__

    def describe(self, index: int) -> str:
        """Name the files of a tile, for messages.

        Args:
            index: Index of the tile.

        Returns:
            The tile's path stem (``<folder>/<x>_<y>``).
        """
        path = self.file_list[index]
        stem = '_'.join(os.path.basename(path).split('_')[:2])
        return os.path.join(os.path.dirname(path), stem)

    def load_sample(self, index: int) -> Sample:
        """Return the RGB image, the DEM and the mask of one tile.

        Args:
            index: Index of the tile.

        Returns:
            ``{'image1', 'image2', 'mask'}``, raw values.
        """
        path = self.file_list[index]
        utm_coords = os.path.basename(path).split('_')[:2]
        folder = os.path.dirname(path)
        arrays = {
            modality: np.asarray(
                self.readers[modality](
                    os.path.join(folder, self.modality_filenames[modality](utm_coords))
                )
            )
            for modality in self.modalities
        }
        sample: Sample = {
            'image1': torch.from_numpy(
                arrays['rgb'].astype(np.float32).transpose(2, 0, 1).copy()
            ),
            'image2': torch.from_numpy(arrays['dem'].astype(np.float32))[None],
            'mask': torch.from_numpy(arrays['seg'].astype(np.int64)),
        }
        return sample


class GeoNRWTiles(SkippingDataset):
    """GeoNRW scenes cut into square tiles, read on the fly: DeCUR pretraining.

    The DeCUR authors pretrain on GeoNRW's training scenes cut into 250 x 250
    px tiles, 16 per 1000 x 1000 px scene, row by row, and discard the
    labels. This dataset indexes those tiles without copying anything: tile
    ``k`` of a scene is a window read from its ``rgb.jp2`` and ``dem.tif``
    (a scene whose side is not a multiple of *tile_size* loses its last
    partial row and column, as the authors' cropping does). The scenes are
    those of :class:`GeoNRWCities` (the cities of *split* present under
    *root*). Samples hold raw values, one image per modality::

        {'image1': float32 [3, T, T],  # R, G, B, 0-255
         'image2': float32 [1, T, T]}  # elevation in metres

    which :class:`~torchgeo_decur.datamodules.PairedDataModule` preprocesses
    (``rgb``, ``dem``) and augments twice on the device.

    .. versionadded:: 0.1
    """

    #: Bands of ``image1`` and ``image2``, in channel order.
    input_bands: ClassVar[dict[str, tuple[str, ...]]] = GeoNRWCities.input_bands

    def __init__(
        self,
        root: str | os.PathLike[str] = 'data',
        split: str = 'train',
        tile_size: int = 250,
        transforms: Callable[[Sample], Sample] | None = None,
        on_bad_sample: Literal['raise', 'skip'] = 'skip',
        max_sample_attempts: int = 10,
        with_mask: bool = False,
        **kwargs: Any,
    ) -> None:
        """Initialize a new GeoNRWTiles instance.

        Args:
            root: Root directory of GeoNRW (with one folder per city).
            split: ``'train'`` (the authors' pretraining scenes) or ``'test'``.
            tile_size: Side of the tiles in pixels (250 in the paper).
            transforms: A function/transform that takes a sample and returns a
                transformed version.
            on_bad_sample: What a bad tile (an unreadable file, a window it
                lacks, a constant image) does: ``'skip'`` it (another tile is
                read, counted and named) or ``'raise'`` its error.
            max_sample_attempts: Tiles tried for one index before giving up.
            with_mask: Also return the tile of the land-cover mask
                (``'mask'``, int64 ``[T, T]``, from ``<x>_<y>_seg.tif``), as
                the authors' GeoNRW transfer scripts train and score on these
                tiles.
            **kwargs: Further arguments of :class:`GeoNRWCities` (``download``,
                ``checksum``).

        Raises:
            ValueError: If *tile_size* is not positive or exceeds the scenes.
            DatasetNotFoundError: If the dataset is not found.
        """
        if tile_size < 1:
            msg = f'tile_size must be >= 1, got {tile_size}'
            raise ValueError(msg)
        self.set_bad_sample_policy(on_bad_sample, max_sample_attempts)
        self.scenes = GeoNRWCities(root=root, split=split, **kwargs)
        self.tile_size = tile_size
        self.transforms = transforms
        self.with_mask = with_mask
        suffixes = ('rgb.jp2', 'dem.tif', 'seg.tif')[: 3 if with_mask else 2]
        self.files = [
            tuple(os.path.join(os.path.dirname(path), f'{stem}_{s}') for s in suffixes)
            for path in self.scenes.file_list
            for stem in ['_'.join(os.path.basename(path).split('_')[:2])]
        ]
        self.scene_size = self._scene_size() if self.files else (0, 0)
        rows, cols = (side // tile_size for side in self.scene_size)
        if self.files and not rows * cols:
            msg = (
                f'tile_size={tile_size} exceeds the scenes of {root} '
                f'({self.scene_size[0]} x {self.scene_size[1]} px)'
            )
            raise ValueError(msg)
        self.grid = (rows, cols)

    def _scene_size(self) -> tuple[int, int]:
        """Height and width of the first scene's DEM (GeoNRW: 1000 x 1000)."""
        path = self.files[0][1]
        with warnings.catch_warnings():
            warnings.simplefilter('ignore', NotGeoreferencedWarning)
            with rasterio.open(path) as f:
                return f.height, f.width

    def __len__(self) -> int:
        """Return the number of tiles.

        Returns:
            Scenes times tiles per scene.
        """
        return len(self.files) * self.grid[0] * self.grid[1]

    def tile(self, index: int) -> tuple[int, int, int]:
        """Scene, row and column of a tile.

        Args:
            index: Index of the tile.

        Returns:
            ``(scene index, row, column)``, tiles numbered row by row.

        Raises:
            IndexError: If *index* is out of range.
        """
        if not 0 <= index < len(self):
            msg = f'tile index {index} out of range for {len(self)} tiles'
            raise IndexError(msg)
        per_scene = self.grid[0] * self.grid[1]
        scene, k = divmod(index, per_scene)
        row, col = divmod(k, self.grid[1])
        return scene, row, col

    def _read(self, path: str, window: Window) -> np.ndarray:
        """Read a window of every band of *path* as float32.

        Raises:
            ValueError: If the file cannot be read or is smaller than the window.
        """
        try:
            with warnings.catch_warnings():
                warnings.simplefilter('ignore', NotGeoreferencedWarning)
                with rasterio.open(path) as f:
                    if (f.height, f.width) != self.scene_size:
                        msg = (
                            f'{path} is {f.height} x {f.width} px, the scenes of '
                            f'this dataset {self.scene_size[0]} x '
                            f'{self.scene_size[1]}'
                        )
                        raise ValueError(msg)
                    array: np.ndarray = f.read(window=window, out_dtype='float32')
        except RasterioIOError as err:
            msg = f'cannot read {path}: {err}'
            raise ValueError(msg) from err
        return array

    def describe(self, index: int) -> str:
        """Name the files and window of a tile, for messages.

        Args:
            index: Index of the tile.

        Returns:
            The RGB and DEM paths and the tile's row and column.
        """
        scene, row, col = self.tile(index)
        return f'{", ".join(self.files[scene])} (tile row {row}, column {col})'

    def load_sample(self, index: int) -> Sample:
        """Return the RGB and DEM of one tile.

        Args:
            index: Index of the tile.

        Returns:
            ``{'image1': [3, T, T], 'image2': [1, T, T]}``, raw values, and
            ``'mask'`` ``[T, T]`` if *with_mask*.
        """
        scene, row, col = self.tile(index)
        t = self.tile_size
        window = Window(col * t, row * t, t, t)
        rgb_path, dem_path = self.files[scene][:2]
        sample: Sample = {
            'image1': torch.from_numpy(self._read(rgb_path, window)),
            'image2': torch.from_numpy(self._read(dem_path, window)),
        }
        if self.with_mask:
            mask = self._read(self.files[scene][2], window)[0]
            sample['mask'] = torch.from_numpy(mask.astype(np.int64))
        return sample
