"""Pixel preprocessing of each modality, as the published DeCUR encoders saw it.

Small tensor functions and the :class:`~torch.nn.Module` versions that the
modalities (:mod:`torchgeo_decur.modalities`) use, so that an encoder sees
the same value ranges in pretraining, in transfer and in the weight entries'
transforms. They work on a single image ``[C, H, W]`` or on a batch
``[..., C, H, W]`` (any leading dimensions, e.g. ``[B, V, C, H, W]`` views),
on any device, and never modify their input in place. The built-in ones map
raw values to ``[0, 1]``.

The formulas follow the DeCUR authors' code that produced the published
checkpoints (https://github.com/zhu-xlab/DeCUR), which differs from the
paper's text in places; the user guide lists each difference and its reason.

.. versionadded:: 0.1
"""

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

#: Sentinel-1 GRD (VV, VH) means and standard deviations in dB over SSL4EO-S12,
#: as in the DeCUR authors' pretraining code.
S1_MEAN = (-12.54847273, -20.19237134)
S1_STD = (5.25697717, 5.91150917)

#: Divisor of Sentinel-2 digital numbers (reflectance scale factor).
S2_SCALE = 10000.0

#: Fraction of pixels clipped at each end, per image and band, before the
#: Sentinel-1 and DEM stretches (the authors' "cut out 2% outliers").
TAIL = 0.01

#: Added to the DEM percentile range, as the authors' GeoNRW reader does.
DEM_EPS = 1e-5

#: ImageNet's per-channel mean and standard deviation (channels R, G, B).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


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
    if q == 0:  # the extremes: no sort needed
        flat = x.flatten(-2)
        return flat.amin(dim=-1)[..., None, None], flat.amax(dim=-1)[..., None, None]
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
    integers; here it stays float (a difference below 1/255). ``tail=0``
    skips the percentile clip: the authors' 8-bit SAR files, as their job
    scripts read them, were stretched without it (see the user guide).

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
    return _sigma_stretch(x, mean, std, tail, 'Sentinel-1')


def _sigma_stretch(
    x: Tensor,
    mean: tuple[float, ...],
    std: tuple[float, ...],
    tail: float,
    name: str,
) -> Tensor:
    """Percentile clip per image and band, then stretch mean +- 2 std to [0, 1].

    Args:
        x: Images ``[..., C, H, W]``.
        mean: Per-band mean.
        std: Per-band standard deviation.
        tail: Fraction of pixels clipped at each end.
        name: Input named in error messages.

    Returns:
        The stretched images.
    """
    _check_image(x, name, len(mean))
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
    :func:`torchgeo_decur.models.convert_input_layer`).

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


class SigmaStretch(nn.Module):
    """Percentile clip, then a linear stretch of ``mean +- 2 std`` onto [0, 1].

    The module form of :func:`normalize_s1`, for any number of bands: each band
    of each image is clipped to its ``[tail, 1 - tail]`` quantiles, then mapped
    with ``clip((x - (mean - 2 std)) / (4 std), 0, 1)``.

    .. versionadded:: 0.1
    """

    def __init__(
        self,
        mean: tuple[float, ...] = S1_MEAN,
        std: tuple[float, ...] = S1_STD,
        tail: float = TAIL,
    ) -> None:
        """Initialize a new SigmaStretch instance.

        Args:
            mean: Per-band mean.
            std: Per-band standard deviation.
            tail: Fraction of pixels clipped at each end, per image and band.

        Raises:
            ValueError: If *mean* and *std* differ in length or a std is not
                positive.
        """
        super().__init__()
        if len(mean) != len(std) or any(s <= 0 for s in std):
            msg = (
                'mean and std must have the same length and std > 0, '
                f'got mean={mean}, std={std}'
            )
            raise ValueError(msg)
        self.mean = tuple(mean)
        self.std = tuple(std)
        self.tail = tail

    def forward(self, x: Tensor) -> Tensor:
        """Preprocess *x* ``[..., C, H, W]``."""
        return _sigma_stretch(x, self.mean, self.std, self.tail, 'input')

    def extra_repr(self) -> str:  # noqa: D102
        return f'mean={self.mean}, std={self.std}, tail={self.tail}'


class PercentileStretch(nn.Module):
    """Per-image percentile clip and min-max stretch to [0, 1] (DEM).

    The module form of :func:`normalize_dem`.

    .. versionadded:: 0.1
    """

    def __init__(self, tail: float = TAIL, eps: float = DEM_EPS) -> None:
        """Initialize a new PercentileStretch instance.

        Args:
            tail: Fraction of pixels clipped at each end, per image and channel.
            eps: Added to the percentile range.
        """
        super().__init__()
        self.tail = tail
        self.eps = eps

    def forward(self, x: Tensor) -> Tensor:
        """Preprocess *x* ``[..., C, H, W]``."""
        return normalize_dem(x, self.tail, self.eps)

    def extra_repr(self) -> str:  # noqa: D102
        return f'tail={self.tail}, eps={self.eps}'


class Scale(nn.Module):
    """Divide by a constant, optionally clipping to [0, 1].

    ``Scale(10000, clip=True)`` is :func:`normalize_s2`, ``Scale(255)`` is
    :func:`normalize_rgb`.

    .. versionadded:: 0.1
    """

    def __init__(self, divisor: float, clip: bool = False) -> None:
        """Initialize a new Scale instance.

        Args:
            divisor: The constant.
            clip: Whether to clip the result to [0, 1].

        Raises:
            ValueError: If *divisor* is zero.
        """
        super().__init__()
        if divisor == 0:
            raise ValueError('divisor must not be 0')
        self.divisor = float(divisor)
        self.clip = clip

    def forward(self, x: Tensor) -> Tensor:
        """Preprocess *x* ``[..., C, H, W]``."""
        _check_image(x, 'input')
        out = x / self.divisor
        return out.clamp(0.0, 1.0) if self.clip else out

    def extra_repr(self) -> str:  # noqa: D102
        return f'divisor={self.divisor:g}, clip={self.clip}'


class Standardize(nn.Module):
    """Subtract a mean and divide by a standard deviation, per channel.

    ``(x - mean[c]) / std[c]`` for ``[..., C, H, W]`` tensors, as
    ``torchvision.transforms.Normalize`` but for batches on any device and
    with the channel count checked.

    .. versionadded:: 0.1
    """

    def __init__(self, mean: Sequence[float], std: Sequence[float]) -> None:
        """Initialize a new Standardize instance.

        Args:
            mean: Mean of each channel.
            std: Standard deviation of each channel.

        Raises:
            ValueError: If *mean* and *std* differ in length or are empty, or a
                standard deviation is not positive.
        """
        super().__init__()
        if len(mean) != len(std) or not mean:
            msg = f'mean and std need one value per channel, got {mean} and {std}'
            raise ValueError(msg)
        if any(s <= 0 for s in std):
            msg = f'std must be positive, got {list(std)}'
            raise ValueError(msg)
        self.register_buffer(
            'mean', torch.tensor(mean, dtype=torch.float32)[:, None, None], False
        )
        self.register_buffer(
            'std', torch.tensor(std, dtype=torch.float32)[:, None, None], False
        )

    def forward(self, x: Tensor) -> Tensor:
        """Standardize *x* ``[..., C, H, W]``."""
        _check_image(x, 'input', len(self.mean))
        mean = self.mean.to(x.device, x.dtype)
        std = self.std.to(x.device, x.dtype)
        return (x - mean) / std

    def extra_repr(self) -> str:  # noqa: D102
        mean = ', '.join(f'{v:g}' for v in self.mean.flatten().tolist())
        std = ', '.join(f'{v:g}' for v in self.std.flatten().tolist())
        return f'mean=({mean}), std=({std})'
