"""Pixel normalisation of each modality, as the DeCUR encoders were pretrained.

Small tensor functions shared by the pretraining dataset and the downstream
datamodules, so that an encoder sees the same value ranges in both. They work
on a single image ``[C, H, W]`` or on a batch ``[..., C, H, W]`` (any leading
dimensions), on any device, and never modify their input in place.

.. versionadded:: 0.1
"""

import math

import torch
from torch import Tensor

from .modalities import S1_MEAN, S1_STD

#: Divisor of Sentinel-2 digital numbers (reflectance scale factor).
S2_SCALE = 10000.0


def _check_image(x: Tensor, name: str, channels: int | None = None) -> None:
    """Check that *x* is a floating point image ``[..., C, H, W]``.

    Args:
        x: Tensor to check.
        name: Modality named in error messages.
        channels: Required number of channels ``C``, or None for any.

    Raises:
        ValueError: If *x* has fewer than 3 dimensions, the wrong number of
            channels or an integer dtype.
    """
    if x.ndim < 3:
        msg = f'{name} input must be [..., C, H, W], got shape {tuple(x.shape)}'
        raise ValueError(msg)
    if channels is not None and x.shape[-3] != channels:
        msg = (
            f'{name} input must have {channels} channels at dim -3, '
            f'got shape {tuple(x.shape)}'
        )
        raise ValueError(msg)
    if not torch.is_floating_point(x):
        msg = f'{name} input must be a floating point tensor, got {x.dtype}'
        raise ValueError(msg)


def image_quantiles(x: Tensor, q: float) -> tuple[Tensor, Tensor]:
    """Lower and upper *q* quantiles of every channel of every image.

    Linear interpolation between order statistics, as :func:`torch.quantile`
    and :func:`numpy.quantile` (``method='linear'``) do, computed with one sort
    over the flattened pixels ``[..., C, H * W]`` (no size limit, unlike
    :func:`torch.quantile`).

    Args:
        x: Images ``[..., C, H, W]``.
        q: Quantile in [0, 0.5]; the upper quantile is ``1 - q``.

    Returns:
        ``(low, high)``, each of shape ``[..., C, 1, 1]``.

    Raises:
        ValueError: If *q* is not in [0, 0.5].

    .. versionadded:: 0.1
    """
    if not 0 <= q <= 0.5:
        msg = f'quantile q must be in [0, 0.5], got {q!r}'
        raise ValueError(msg)
    flat = x.flatten(-2).sort(dim=-1).values
    n = flat.shape[-1]

    def pick(p: float) -> Tensor:
        pos = p * (n - 1)
        i = math.floor(pos)
        j = min(i + 1, n - 1)
        frac = pos - i
        lo, hi = flat[..., i], flat[..., j]
        return (lo + frac * (hi - lo))[..., None, None]

    return pick(q), pick(1 - q)


def normalize_s1(
    x: Tensor,
    tail: float = 0.02,
    mean: tuple[float, ...] = S1_MEAN,
    std: tuple[float, ...] = S1_STD,
) -> Tensor:
    """Normalise Sentinel-1 backscatter in dB as in DeCUR pretraining.

    Each band of each image is clipped to its own ``[tail, 1 - tail]``
    quantiles (2 % tails by default), then standardised with the fixed
    per-band dataset statistics: ``(x - mean) / std`` with VV -12.59 / 5.26
    and VH -20.26 / 5.91 dB.

    Args:
        x: Backscatter in dB, ``[..., 2, H, W]`` with bands (VV, VH).
        tail: Fraction of pixels clipped at each end, per image and band.
        mean: Per-band mean in dB.
        std: Per-band standard deviation in dB.

    Returns:
        Normalised float tensor of the same shape.

    Raises:
        ValueError: If *x* is not a float ``[..., 2, H, W]`` tensor or
            *tail* is not in [0, 0.5].

    .. versionadded:: 0.1
    """
    _check_image(x, 'Sentinel-1', len(mean))
    low, high = image_quantiles(x, tail)
    x = torch.minimum(torch.maximum(x, low), high)
    m = torch.tensor(mean, dtype=x.dtype, device=x.device)[:, None, None]
    s = torch.tensor(std, dtype=x.dtype, device=x.device)[:, None, None]
    return (x - m) / s


def normalize_s2(x: Tensor) -> Tensor:
    """Normalise Sentinel-2 digital numbers as in DeCUR pretraining.

    ``x / 10000 * 255``, clipped to [0, 255] (kept as float, not rounded).
    Zero-filled bands (e.g. B10 added to L2A data) stay zero.

    Args:
        x: Digital numbers (L1C or L2A), ``[..., C, H, W]``.

    Returns:
        Normalised float tensor of the same shape, in [0, 255].

    Raises:
        ValueError: If *x* is not a float ``[..., C, H, W]`` tensor.

    .. versionadded:: 0.1
    """
    _check_image(x, 'Sentinel-2')
    return (x / S2_SCALE * 255.0).clamp(0.0, 255.0)


def normalize_dem(x: Tensor, eps: float = 1e-6) -> Tensor:
    """Standardise a digital elevation model per image.

    ``(x - mean) / max(std, eps)`` where mean and (population) standard
    deviation are taken over the pixels of each image and channel, so the
    absolute elevation and the unit of the file do not matter. A flat image
    maps to zeros.

    Args:
        x: Elevation, ``[..., C, H, W]`` (usually ``C = 1``).
        eps: Lower bound of the standard deviation.

    Returns:
        Normalised float tensor of the same shape.

    Raises:
        ValueError: If *x* is not a float ``[..., C, H, W]`` tensor.

    .. versionadded:: 0.1
    """
    _check_image(x, 'DEM')
    mean = x.mean(dim=(-2, -1), keepdim=True)
    std = x.std(dim=(-2, -1), keepdim=True, correction=0)
    return (x - mean) / std.clamp_min(eps)
