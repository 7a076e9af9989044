"""CMX's training geometry for RGB-X segmentation: random scale, crop and pad.

CMX (Zhang et al. 2023, https://arxiv.org/abs/2203.04838; code
huaaaliu/RGBX_Semantic_Segmentation e251d86, ``dataloader/dataloader.py``
and ``utils/transforms.py``), with which the DeCUR authors scored their
SUN RGB-D encoders, trains on each image rescaled by a factor drawn from a
*set* (0.5 to 1.75 in steps of 0.25), then cropped at a random position to
the training size and, where smaller, padded around its centre: images with
0 (after normalisation, the mean), labels with the ignore index. Kornia has
no op for a scale drawn from a set, and its ``RandomCrop(pad_if_needed)``
pads masks with the images' fill value, so :class:`RandomScaleCropPad` does
this for one batch, sample by sample, on the batch's device.

.. versionadded:: 0.2
"""

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ('CMX_SCALES', 'RandomScaleCropPad')

#: CMX's training scales (``train_scale_array`` in its ``config.py``).
CMX_SCALES = (0.5, 0.75, 1.0, 1.25, 1.5, 1.75)


def _offset(length: int, crop: int) -> int:
    """A random crop start along one axis (0 when the image is not longer)."""
    if length <= crop:
        return 0
    return int(torch.randint(0, length - crop + 1, ()).item())


def _pad_centred(x: Tensor, size: tuple[int, int], value: float) -> Tensor:
    """Pad the last two dimensions of *x* around its centre to *size*.

    The extra pixel of an odd margin goes to the bottom / right, as CMX's
    ``pad_image_to_shape``.
    """
    pad_h = max(0, size[0] - x.shape[-2])
    pad_w = max(0, size[1] - x.shape[-1])
    if not pad_h and not pad_w:
        return x
    margins = (pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2)
    return F.pad(x, margins, value=value)


class RandomScaleCropPad(nn.Module):
    """Rescale each sample by a random factor of a set, crop and pad it.

    The same factor, crop and padding apply to all images and masks of a
    sample; images are resampled bilinearly, masks by nearest neighbour
    (OpenCV's ``INTER_LINEAR`` / ``INTER_NEAREST``, as CMX). The scaled size
    is truncated to whole pixels, as CMX's ``int(h * scale)``.

    .. versionadded:: 0.2
    """

    def __init__(
        self,
        size: int | Sequence[int],
        scales: Sequence[float] = CMX_SCALES,
        image_keys: Sequence[str] = ('image1', 'image2'),
        mask_keys: Sequence[str] = ('mask',),
        ignore_index: int = 255,
        image_fill: float = 0.0,
    ) -> None:
        """Initialize a new RandomScaleCropPad instance.

        Args:
            size: Output ``(height, width)`` in px, or one int for a square.
            scales: Factors to draw from, uniformly.
            image_keys: Batch keys of the images ``(N, C, H, W)``.
            mask_keys: Batch keys of the masks ``(N, H, W)``.
            ignore_index: Mask value of the padding.
            image_fill: Image value of the padding.

        Raises:
            ValueError: If *size* is not one or two positive ints or *scales*
                is empty or holds a factor that is not positive.
        """
        super().__init__()
        sizes = [size] if isinstance(size, int) else list(size)
        if len(sizes) not in (1, 2) or any(int(s) < 1 for s in sizes):
            msg = f'size must be one or two positive ints, got {size!r}'
            raise ValueError(msg)
        if not scales or any(s <= 0 for s in scales):
            msg = f'scales must be positive factors, got {list(scales)}'
            raise ValueError(msg)
        self.size = (int(sizes[0]), int(sizes[-1]))
        self.scales = tuple(float(s) for s in scales)
        self.image_keys = tuple(image_keys)
        self.mask_keys = tuple(mask_keys)
        self.ignore_index = ignore_index
        self.image_fill = image_fill

    def _one(self, batch: dict[str, Any], i: int) -> dict[str, Tensor]:
        """Scale, crop and pad sample *i* of *batch*."""
        height, width = batch[self.image_keys[0]].shape[-2:]
        scale = self.scales[int(torch.randint(len(self.scales), ()).item())]
        scaled = (int(height * scale), int(width * scale))
        top, left = _offset(scaled[0], self.size[0]), _offset(scaled[1], self.size[1])
        window = (
            slice(top, top + self.size[0]),
            slice(left, left + self.size[1]),
        )
        out = {}
        for key in self.image_keys:
            x = F.interpolate(
                batch[key][i : i + 1].float(),
                size=scaled,
                mode='bilinear',
                align_corners=False,
            )
            out[key] = _pad_centred(
                x[..., window[0], window[1]], self.size, self.image_fill
            )
        for key in self.mask_keys:
            mask = batch[key][i : i + 1]
            m = F.interpolate(
                mask.reshape(1, 1, height, width).float(), size=scaled, mode='nearest'
            )
            m = _pad_centred(m[..., window[0], window[1]], self.size, self.ignore_index)
            out[key] = m.reshape(1, *self.size).to(mask.dtype)
        return out

    def forward(self, batch: dict[str, Any]) -> dict[str, Any]:
        """Transform a batch.

        Args:
            batch: Batch with the configured image and mask keys, all of one
                height and width.

        Returns:
            A new dict with the images ``(N, C, *size)`` and masks
            ``(N, *size)``; other entries unchanged.

        Raises:
            ValueError: If an image or mask differs in height and width from
                the first image.
        """
        keys = self.image_keys + self.mask_keys
        shape = batch[self.image_keys[0]].shape[-2:]
        for key in keys:
            if batch[key].shape[-2:] != shape:
                msg = (
                    f'{key!r} is {tuple(batch[key].shape[-2:])} px, '
                    f'{self.image_keys[0]!r} {tuple(shape)} px: they must match'
                )
                raise ValueError(msg)
        samples = [self._one(batch, i) for i in range(len(batch[self.image_keys[0]]))]
        out = dict(batch)
        for key in keys:
            out[key] = torch.cat([s[key] for s in samples])
        return out

    def extra_repr(self) -> str:  # noqa: D102
        return (
            f'size={self.size}, scales={self.scales}, ignore_index={self.ignore_index}'
        )
