"""An optical + thermal sensor pair for DeCUR, outside torchgeo-decur.

The worked example of the user guide ("Your own sensor pair"): a dataset, a
registered modality and a thin datamodule, and nothing edited in the library.
Train it with ``torchgeo fit --config thermal.yaml`` (with this folder's
parent on ``PYTHONPATH``).
"""

import kornia.augmentation as K
import torch
from torch import Tensor, nn

from torchgeo_decur.datamodules import PairedDataModule
from torchgeo_decur.datasets import MultimodalDataset
from torchgeo_decur.modalities import Modality, register_modality


def thermal_augmentation(size: int, in_channels: int) -> nn.Module:
    """Crop and flips: brightness and contrast would change temperatures."""
    return K.AugmentationSequential(
        K.RandomResizedCrop(size=(size, size), scale=(0.2, 1.0)),
        K.RandomHorizontalFlip(),
        K.RandomVerticalFlip(),
        data_keys=['input'],
    )


class KelvinToUnit(nn.Module):
    """Brightness temperature in Kelvin to [0, 1] (200 K to 350 K).

    Works on any ``[..., C, H, W]`` tensor: the datamodule preprocesses whole
    batches of views, ``[B, 2, C, H, W]``, on the device.
    """

    def forward(self, x: Tensor) -> Tensor:
        return ((x - 200.0) / 150.0).clamp(0.0, 1.0)


register_modality(
    Modality(
        name='thermal',
        bands=('LWIR',),
        normalization=KelvinToUnit,
        augmentation=thermal_augmentation,
        description='brightness temperature: clip((x - 200 K) / 150 K, 0, 1)',
        raw='brightness temperature in Kelvin',
    )
)


class OpticalThermalPair(MultimodalDataset):
    """Co-registered 8-bit RGB and thermal images (here: generated).

    Samples hold two views of each modality in raw values, as
    :class:`~torchgeo_decur.datamodules.PairedDataModule` expects:
    ``{'image1': [2, 3, H, W] (0-255), 'image2': [2, 1, H, W] (Kelvin)}``.
    """

    #: Bands of each key, in channel order (the datamodule matches them).
    input_bands = {'image1': ('R', 'G', 'B'), 'image2': ('LWIR',)}

    def __init__(self, root: str = 'data', length: int = 8, size: int = 48) -> None:
        self.root = root
        self.length = length
        self.size = size

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> dict[str, Tensor]:
        g = torch.Generator().manual_seed(index)
        scene = torch.rand(1, 1, 6, 6, generator=g)
        scene = nn.functional.interpolate(scene, size=self.size, mode='bilinear')[0]
        rgb = (
            255 * scene.expand(3, -1, -1) * torch.tensor([0.9, 0.7, 0.5])[:, None, None]
        )
        kelvin = 270 + 40 * scene  # warm where bright
        return {
            'image1': torch.stack([rgb, rgb.flip(-1)]),
            'image2': torch.stack([kelvin, kelvin.flip(-1)]),
        }


class OpticalThermalDataModule(PairedDataModule):
    """DeCUR pretraining on optical + thermal pairs."""

    def __init__(
        self,
        batch_size: int = 4,
        num_workers: int = 0,
        patch_size: int = 32,
        val_fraction: float = 0.0,
        root: str = 'data',
    ) -> None:
        super().__init__(
            OpticalThermalPair,
            ('rgb', 'thermal'),
            batch_size,
            num_workers,
            patch_size,
            val_fraction,
            root=root,
        )
