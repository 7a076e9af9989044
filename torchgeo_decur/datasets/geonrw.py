"""GeoNRW (aerial RGB, DEM, land cover) with raw values."""

import os
import warnings
from typing import ClassVar

import numpy as np
import torch
from torchgeo.datasets import GeoNRW
from torchgeo.datasets.utils import Sample

__all__ = ('GeoNRWCities',)


class GeoNRWCities(GeoNRW):
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

    def __getitem__(self, index: int) -> Sample:
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
        if self.transforms is not None:
            sample = self.transforms(sample)
        return sample
