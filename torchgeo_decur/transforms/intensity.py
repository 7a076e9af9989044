"""Kornia-style intensity augmentations for multispectral images in [0, 1].

Kornia's :class:`~kornia.augmentation.RandomBrightness` *adds* a shift and its
:class:`~kornia.augmentation.RandomContrast` *multiplies*; its
:class:`~kornia.augmentation.ColorJitter` blends contrast with one mean over
all channels, which pulls every band of a multispectral image towards the
same value. DeCUR (after BYOL and the SSL4EO-S12 code) multiplies for
brightness and blends each band with its own mean for contrast, so that
reflectances of 0-0.3 are never shifted below zero and the spectral shape of
an image survives. :class:`RandomBrightnessContrast` does exactly that, on the
batch and on any device.
"""

from typing import Any

import torch
from kornia.augmentation import IntensityAugmentationBase2D
from kornia.augmentation.random_generator import PlainUniformGenerator
from torch import Tensor

__all__ = ('RandomBrightnessContrast',)


def _factor_range(value: float | tuple[float, float], name: str) -> tuple[float, float]:
    """Turn a jitter strength or a range into a ``(low, high)`` factor range.

    Args:
        value: Strength ``s`` (range ``(max(0, 1 - s), 1 + s)``) or a range.
        name: Argument named in error messages.

    Returns:
        The range.

    Raises:
        ValueError: If the range is empty or negative.
    """
    if isinstance(value, int | float):
        low, high = max(0.0, 1.0 - float(value)), 1.0 + float(value)
    else:
        low, high = (float(v) for v in value)
    if not 0 <= low <= high:
        msg = f'{name} must be a strength >= 0 or a range 0 <= low <= high, got {value}'
        raise ValueError(msg)
    return low, high


class RandomBrightnessContrast(IntensityAugmentationBase2D):
    r"""Multiplicative brightness, then mean-preserving contrast, jointly with p.

    For each selected image, with factors :math:`b` and :math:`c` drawn
    uniformly from *brightness* and *contrast*:

    .. math::

        y = \mathrm{clip}(x \cdot b, 0, 1), \qquad
        z = \mathrm{clip}((y - \bar y_k) \cdot c + \bar y_k, 0, 1)

    where :math:`\bar y_k` is the mean of channel :math:`k` of that image. So
    the mean of every channel is scaled by :math:`b` (unless values clip),
    and the spectral shape of the image is kept. Both operations are applied
    together with probability *p*, as DeCUR's ``RandomApply([RandomBrightness,
    RandomContrast], p=0.8)``.

    Inputs are expected in ``[0, 1]``.

    .. versionadded:: 0.1
    """

    def __init__(
        self,
        brightness: float | tuple[float, float] = 0.4,
        contrast: float | tuple[float, float] = 0.4,
        p: float = 0.8,
        same_on_batch: bool = False,
        keepdim: bool = False,
    ) -> None:
        """Initialize a new RandomBrightnessContrast instance.

        Args:
            brightness: Strength ``s`` (factors in ``(1 - s, 1 + s)``) or a
                range of brightness factors.
            contrast: Strength or range of contrast factors.
            p: Probability of transforming an image.
            same_on_batch: Apply the same factors to the whole batch.
            keepdim: Whether to keep the output shape the same as input (True)
                or broadcast it to the batch form (False).

        Raises:
            ValueError: If a range is empty or negative.
        """
        super().__init__(p=p, same_on_batch=same_on_batch, keepdim=keepdim)
        self.brightness = _factor_range(brightness, 'brightness')
        self.contrast = _factor_range(contrast, 'contrast')
        self._param_generator = PlainUniformGenerator(
            (self.brightness, 'brightness', None, None),
            (self.contrast, 'contrast', None, None),
        )

    def apply_transform(
        self,
        input: Tensor,
        params: dict[str, Tensor],
        flags: dict[str, Any],
        transform: Tensor | None = None,
    ) -> Tensor:
        """Apply the transform.

        Args:
            input: Images ``[B, C, H, W]`` in [0, 1].
            params: Generated parameters (``brightness``, ``contrast``: ``[B]``).
            flags: Static parameters.
            transform: The geometric transformation tensor (unused).

        Returns:
            The augmented images.
        """
        shape = (-1,) + (1,) * (input.ndim - 1)
        b = params['brightness'].to(input).view(shape)
        c = params['contrast'].to(input).view(shape)
        y = (input * b).clamp(0.0, 1.0)
        mean = y.mean(dim=(-2, -1), keepdim=True)
        return torch.lerp(mean, y, c).clamp(0.0, 1.0)
