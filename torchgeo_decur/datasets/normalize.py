"""Pixel preprocessing of each modality, as the published DeCUR encoders saw it.

Small tensor functions shared by the pretraining dataset, the downstream
datamodules and the weight entries' transforms, so that an encoder sees the
same value ranges everywhere. They work on a single image ``[C, H, W]`` or on
a batch ``[..., C, H, W]`` (any leading dimensions), on any device, and never
modify their input in place. Every output lies in ``[0, 1]``.

The formulas follow the DeCUR authors' code that produced the published
checkpoints (https://github.com/zhu-xlab/DeCUR), which differs from the
paper's text in places; the user guide lists each difference and its reason.

.. versionadded:: 0.1
"""

import math

import torch
from torch import Tensor

from .modalities import S1_MEAN, S1_STD

#: Divisor of Sentinel-2 digital numbers (reflectance scale factor).
S2_SCALE = 10000.0

#: Fraction of pixels clipped at each end, per image and band, before the
#: Sentinel-1 and DEM stretches (the authors' "cut out 2% outliers").
TAIL = 0.01

#: Added to the DEM percentile range, as the authors' GeoNRW reader does.
DEM_EPS = 1e-5


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
    tail: float = TAIL,
    mean: tuple[float, ...] = S1_MEAN,
    std: tuple[float, ...] = S1_STD,
) -> Tensor:
    """Preprocess Sentinel-1 backscatter in dB as DeCUR's published weights saw it.

    Each band of each image is clipped to its own ``[tail, 1 - tail]``
    quantiles (1st and 99th percentiles by default), then stretched linearly
    from ``mean - 2 std`` to ``mean + 2 std`` onto ``[0, 1]`` and clipped::

        clip((x - (mean - 2 std)) / (4 std), 0, 1)

    with the SSL4EO-S12 statistics VV -12.548 / 5.257 and VH -20.192 / 5.912 dB.
    The authors compute the percentiles over both bands (and all four
    seasons) pooled; here they are per image and band, so that a view does
    not depend on the other seasons drawn. The difference only shows where a
    percentile falls inside ``mean +- 2 std`` of its band, since the stretch
    clips there anyway. The authors then store the result as 8-bit
    integers; here it stays float (a difference below 1/255).

    Args:
        x: Backscatter in dB, ``[..., 2, H, W]`` with bands (VV, VH).
        tail: Fraction of pixels clipped at each end, per image and band.
        mean: Per-band mean in dB.
        std: Per-band standard deviation in dB.

    Returns:
        Float tensor of the same shape, in [0, 1].

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
    return ((x - (m - 2 * s)) / (4 * s)).clamp(0.0, 1.0)


def normalize_s2(x: Tensor) -> Tensor:
    """Preprocess Sentinel-2 digital numbers as DeCUR's published weights saw it.

    ``clip(x / 10000, 0, 1)``. The authors store ``x / 10000 * 255`` as 8-bit
    integers and ``ToTensor`` divides by 255 again, so the encoders saw
    reflectance in ``[0, 1]``, as TorchGeo's ``SENTINEL2_ALL_DECUR`` entry
    expects. Zero-filled bands (e.g. B10 added to L2A data) stay zero.

    Args:
        x: Digital numbers (L1C or L2A), ``[..., C, H, W]``.

    Returns:
        Float tensor of the same shape, in [0, 1].

    Raises:
        ValueError: If *x* is not a float ``[..., C, H, W]`` tensor.

    .. versionadded:: 0.1
    """
    _check_image(x, 'Sentinel-2')
    return (x / S2_SCALE).clamp(0.0, 1.0)


def normalize_dem(x: Tensor, tail: float = TAIL, eps: float = DEM_EPS) -> Tensor:
    """Preprocess a digital elevation model as DeCUR's GeoNRW weights saw it.

    Each image is clipped to its own 1st and 99th percentiles ``p1``, ``p99``
    and stretched to ``(x - p1) / (p99 - p1 + eps)``, in ``[0, 1)``, so the
    absolute elevation and the unit of the file do not matter. A flat image
    maps to zeros. The authors repeat the result on three channels; a
    one-channel encoder whose first-layer weights are the sum over those
    three gives the same output (see
    :func:`torchgeo_decur.models.weights.convert_input_layer`).

    Args:
        x: Elevation, ``[..., C, H, W]`` (usually ``C = 1``).
        tail: Fraction of pixels clipped at each end, per image and channel.
        eps: Added to the percentile range.

    Returns:
        Float tensor of the same shape, in [0, 1].

    Raises:
        ValueError: If *x* is not a float ``[..., C, H, W]`` tensor.

    .. versionadded:: 0.1
    """
    _check_image(x, 'DEM')
    low, high = image_quantiles(x, tail)
    x = torch.minimum(torch.maximum(x, low), high)
    return (x - low) / (high - low + eps)


def normalize_rgb(x: Tensor) -> Tensor:
    """Preprocess 8-bit RGB: ``x / 255``.

    Args:
        x: Image with values in [0, 255], ``[..., C, H, W]``.

    Returns:
        Float tensor of the same shape, in [0, 1].

    Raises:
        ValueError: If *x* is not a float ``[..., C, H, W]`` tensor.

    .. versionadded:: 0.1
    """
    _check_image(x, 'RGB')
    return x / 255.0
