"""Modalities: what an input of one sensor is, in one object.

A :class:`Modality` says everything the plugin needs to know about one kind of
input: its bands (and which of them to render as RGB), how raw values become
encoder inputs (an :class:`~torch.nn.Module` that works on whole batches on
any device), its pretraining augmentation and the evaluation transforms of
the weight entries. Datasets, datamodules, tasks, the export and the weight
entries all ask the registry (:func:`get_modality`); nothing else in the
plugin branches on a modality's name.

A new sensor needs one call, from any module (e.g. the package that holds
your dataset, which your YAML imports through a ``class_path``)::

    import kornia.augmentation as K
    from torchgeo_decur.modalities import Modality, register_modality
    from torchgeo_decur.transforms import Scale, sar_augmentation

    register_modality(
        Modality(
            name='thermal',
            bands=('LWIR',),
            normalization=lambda: Scale(330.0, clip=True),  # Kelvin -> [0, 1]
            augmentation=sar_augmentation,  # crop, grayscale, blur, flips
        )
    )

.. versionadded:: 0.1
"""

import difflib
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

import torch
import torchvision.transforms.v2 as T
from torch import Tensor, nn

from .transforms.augmentation import (
    dem_augmentation,
    hha_augmentation,
    indoor_rgb_augmentation,
    optical_augmentation,
    rgb_augmentation,
    sar_augmentation,
)
from .transforms.normalize import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    S1_MEAN,
    S1_STD,
    PercentileStretch,
    Scale,
    SigmaStretch,
    Standardize,
)

__all__ = (
    'Modality',
    'get_modality',
    'in_channels_for',
    'modalities',
    'modality_record',
    'modality_transforms',
    'register_modality',
)


@dataclass(frozen=True)
class Modality:
    """One input modality: bands, preprocessing, augmentation, eval transforms.

    Attributes:
        name: Short name used in configs, checkpoints, weight metadata and file
            names (e.g. ``'s1'``, ``'thermal'``).
        bands: Band names in the order of the channels the encoder takes.
        normalization: Factory of the preprocessing module, from raw values to
            encoder inputs; the module maps ``[..., C, H, W]`` tensors (whole
            batches, any device) and is applied after transfer to the device.
        augmentation: Factory of the pretraining augmentation,
            ``augmentation(size, in_channels)``, mapping ``[B, C, H, W]`` to
            ``[B, C, size, size]`` (see :mod:`torchgeo_decur.transforms`).
        description: What the preprocessing does, in words; recorded in
            checkpoints, exports and weight metadata.
        raw: What the raw input is (unit, range), as datasets return it and
            the weight entries' transforms expect it.
        rgb_bands: Bands to render as red, green, blue in plots: three bands
            as they are, two as the composite (first, second, first -
            second) usual for SAR, none for the first band as grey.
        raw_check: Returns a message when a tensor does not look like the raw
            input (e.g. already normalised), else None; the evaluation
            transforms warn with it.
        standardization: Per-band ``(mean, std)`` applied *after* the
            augmentation in pretraining (the pipelines expect ``[0, 1]``), and
            after the normalization everywhere else, e.g. ImageNet's
            constants; None for none. See :meth:`normalizer`.

    .. versionadded:: 0.1
    """

    name: str
    bands: tuple[str, ...]
    normalization: Callable[[], nn.Module]
    augmentation: Callable[[int, int], nn.Module]
    description: str = ''
    raw: str = ''
    rgb_bands: tuple[str, ...] = ()
    raw_check: Callable[[Tensor], str | None] | None = field(default=None)
    standardization: tuple[tuple[float, ...], tuple[float, ...]] | None = None

    def __post_init__(self) -> None:
        """Validate the description.

        Raises:
            ValueError: If the name is empty, the bands are empty, or an RGB band
                is not one of the bands.
        """
        if not self.name or not isinstance(self.name, str):
            msg = f'a modality needs a non-empty name, got {self.name!r}'
            raise ValueError(msg)
        object.__setattr__(self, 'bands', tuple(self.bands))
        object.__setattr__(self, 'rgb_bands', tuple(self.rgb_bands))
        if not self.bands:
            msg = f'modality {self.name!r} needs at least one band'
            raise ValueError(msg)
        if self.standardization is not None:
            mean, std = (tuple(float(v) for v in t) for t in self.standardization)
            if len(mean) != len(self.bands) or len(std) != len(self.bands):
                msg = (
                    f'modality {self.name!r}: standardization needs one mean and '
                    f'one std per band ({len(self.bands)}), got {mean} and {std}'
                )
                raise ValueError(msg)
            object.__setattr__(self, 'standardization', (mean, std))
        missing = [b for b in self.rgb_bands if b not in self.bands]
        if missing:
            msg = (
                f'modality {self.name!r}: rgb_bands {missing} are not among '
                f'{self.bands}'
            )
            raise ValueError(msg)

    @property
    def in_channels(self) -> int:
        """Number of input channels (bands)."""
        return len(self.bands)

    @property
    def rgb_indices(self) -> tuple[int, ...]:
        """Channel indices of :attr:`rgb_bands` (the first channel if none)."""
        if not self.rgb_bands:
            return (0,)
        return tuple(self.bands.index(b) for b in self.rgb_bands)

    def normalizer(self, standardize: bool = True) -> nn.Module:
        """A new preprocessing module (raw values to encoder inputs).

        Args:
            standardize: Whether to include the :attr:`standardization`. The
                pretraining datamodules leave it out here, since the
                augmentation works on ``[0, 1]`` and
                :meth:`augmenter` applies it last.

        Returns:
            The module, for ``[..., C, H, W]`` tensors.
        """
        normalize = self.normalization()
        if standardize and self.standardization is not None:
            return nn.Sequential(normalize, Standardize(*self.standardization))
        return normalize

    def augmenter(self, size: int) -> nn.Module:
        """A new pretraining augmentation for patches of *size* pixels.

        The :attr:`standardization`, if any, is applied after it.

        Args:
            size: Output patch size in pixels.

        Returns:
            The augmentation, ``[B, C, H, W]`` to ``[B, C, size, size]``.
        """
        augment = self.augmentation(size, self.in_channels)
        if self.standardization is not None:
            return nn.Sequential(augment, Standardize(*self.standardization))
        return augment

    def eval_transforms(self, size: int = 224) -> nn.Module:
        """Evaluation transforms, from the raw input to the encoder's.

        The preprocessing, on the raw image as the DeCUR authors applied it
        to whole tiles, then ``Resize(size * 8 / 7)`` and ``CenterCrop(size)``
        as TorchGeo's SSL4EO weight entries. A tensor that does not look like
        the raw input gets a :class:`UserWarning` naming the expected range.

        Args:
            size: Side length of the centre crop.

        Returns:
            A module for tensors ``(C, H, W)`` or ``(N, C, H, W)``.
        """
        return nn.Sequential(
            _CheckedNormalization(self),
            T.Resize((round(size * 8 / 7),) * 2, antialias=True),
            T.CenterCrop(size),
        )

    def record(self) -> dict[str, object]:
        """What checkpoints, exports and weight metadata record of it.

        Returns:
            ``{'name', 'bands', 'normalisation'}``.
        """
        return {
            'name': self.name,
            'bands': list(self.bands),
            'normalisation': self.description,
        }


class _CheckedNormalization(nn.Module):
    """A modality's preprocessing that warns on implausible raw input."""

    def __init__(self, modality: Modality) -> None:
        super().__init__()
        self.name = modality.name
        self.description = modality.description
        self.check = modality.raw_check
        self.normalize = modality.normalizer()

    def forward(self, x: Tensor) -> Tensor:
        """Preprocess *x* of shape ``(..., C, H, W)``."""
        x = x if torch.is_floating_point(x) else x.float()
        if self.check is not None:
            problem = self.check(x)
            if problem is not None:
                warnings.warn(
                    f'{problem} (modality {self.name!r}: {self.description})',
                    UserWarning,
                    stacklevel=2,
                )
        out: Tensor = self.normalize(x)
        return out


_REGISTRY: dict[str, Modality] = {}


def register_modality(modality: Modality, replace: bool = False) -> Modality:
    """Make a modality known to every part of the plugin by its name.

    Args:
        modality: The modality.
        replace: Whether to replace a different modality of the same name.

    Returns:
        *modality*, so that the call can be used as an expression.

    Raises:
        TypeError: If *modality* is not a :class:`Modality`.
        ValueError: If another modality of that name is registered and
            *replace* is False.

    .. versionadded:: 0.1
    """
    if not isinstance(modality, Modality):
        msg = f'register_modality takes a Modality, got {type(modality).__name__}'
        raise TypeError(msg)
    known = _REGISTRY.get(modality.name)
    if known is not None and known != modality and not replace:
        msg = (
            f'a different modality {modality.name!r} is registered already; '
            'pass replace=True to replace it'
        )
        raise ValueError(msg)
    _REGISTRY[modality.name] = modality
    return modality


def get_modality(name: str) -> Modality:
    """Look up a registered modality by name.

    Args:
        name: Modality name.

    Returns:
        The modality.

    Raises:
        ValueError: If no modality of that name is registered.

    .. versionadded:: 0.1
    """
    try:
        return _REGISTRY[name]
    except KeyError:
        known = ', '.join(sorted(_REGISTRY))
        msg = (
            f'unknown modality {name!r}; registered: {known} (register yours with '
            'torchgeo_decur.modalities.register_modality)'
        )
        raise ValueError(msg) from None


def modalities() -> Mapping[str, Modality]:
    """The registered modalities, by name (a read-only view).

    Returns:
        ``{name: Modality}``.

    .. versionadded:: 0.1
    """
    return MappingProxyType(_REGISTRY)


def in_channels_for(name: str, in_channels: int | None = None) -> int:
    """The number of input channels of a modality, given or registered.

    Args:
        name: Modality name.
        in_channels: Number of channels, if given; None takes the registered
            modality's number of bands.

    Returns:
        The number of channels.

    Raises:
        ValueError: If *name* is not registered (with the registered names
            closest to it), if *in_channels* is not positive, or if it differs
            from the registered modality's number of bands.

    .. versionadded:: 0.1
    .. versionchanged:: 0.2
       An unregistered name is an error also when *in_channels* is given: a
       typo (``s2`` for ``s2c``) trained and exported encoders without bands.
    """
    known = _REGISTRY.get(name)
    if known is None:
        close = difflib.get_close_matches(name, list(_REGISTRY), n=3)
        hint = f' (did you mean {", ".join(map(repr, close))}?)' if close else ''
        msg = (
            f'modality {name!r} is not registered{hint}. A sensor of your own is '
            'declared once with register_modality(Modality(name, bands, ...)), '
            'so that its bands and preprocessing are recorded with the weights'
        )
        raise ValueError(msg)
    if in_channels is None:
        return known.in_channels
    if in_channels < 1:
        msg = f'in_channels must be >= 1, got {in_channels} for modality {name!r}'
        raise ValueError(msg)
    if known is not None and in_channels != known.in_channels:
        msg = (
            f'modality {name!r} has {known.in_channels} bands '
            f'({", ".join(known.bands)}), but in_channels gives {in_channels} for it'
        )
        raise ValueError(msg)
    return in_channels


def modality_transforms(name: str, size: int = 224) -> nn.Module:
    """Evaluation transforms of a registered modality, from raw input.

    See :meth:`torchgeo_decur.modalities.Modality.eval_transforms`.

    Args:
        name: Modality name.
        size: Side length of the centre crop.

    Returns:
        A module for tensors ``(C, H, W)`` or ``(N, C, H, W)``.

    Raises:
        ValueError: If *name* is not a registered modality.

    .. versionadded:: 0.1
    """
    return get_modality(name).eval_transforms(size)


def modality_record(name: str) -> dict[str, object]:
    """What checkpoints and exports record of a modality, registered or not.

    Args:
        name: Modality name.

    Returns:
        ``{'name', 'bands', 'normalisation'}``; bands and normalisation are None
        for a modality that is not registered.

    .. versionadded:: 0.1
    """
    known = _REGISTRY.get(name)
    if known is None:
        return {'name': name, 'bands': None, 'normalisation': None}
    return known.record()


# --------------------------------------------------------------------------- #
# Built-in modalities
# --------------------------------------------------------------------------- #

#: Sentinel-2 L1C band order of SSL4EO-S12 (13 bands, B10 included).
S2_L1C_BANDS = (
    'B1', 'B2', 'B3', 'B4', 'B5', 'B6', 'B7', 'B8', 'B8A', 'B9', 'B10', 'B11', 'B12'
)  # fmt: skip

#: Sentinel-2 L2A band order (12 bands, no B10).
S2_L2A_BANDS = tuple(b for b in S2_L1C_BANDS if b != 'B10')


def _range(x: Tensor) -> str:
    return f'[{float(x.min()):.4g}, {float(x.max()):.4g}]'


def _check_db(x: Tensor) -> str | None:
    if x.numel() and bool((x >= 0).all()):
        return (
            f'Sentinel-1 input expected in dB (mostly -35 to 5), got values in '
            f'{_range(x)}: linear backscatter or already normalised?'
        )
    return None


def _check_digital_numbers(x: Tensor) -> str | None:
    if x.numel() and bool(x.max() <= 2.0) and bool(x.max() > 0):
        return (
            f'Sentinel-2 input expected as digital numbers (reflectance x 10000, '
            f'0 to about 10000), got values in {_range(x)}: already divided by '
            '10000?'
        )
    return None


def _check_8bit(x: Tensor) -> str | None:
    if x.numel() and bool(x.max() <= 1.0) and bool(x.max() > 0):
        return (
            f'8-bit input expected (0 to 255), got values in {_range(x)}: '
            'already divided by 255?'
        )
    return None


def _s2_scale() -> nn.Module:
    return Scale(10000.0, clip=True)


def _scale_8bit() -> nn.Module:
    return Scale(255.0)


#: ImageNet's constants as the DeCUR authors applied them to SUN RGB-D: to
#: channels read by OpenCV (reversed), so R and disparity get the third
#: constant and B and angle the first; listed here in the modalities' order.
_IMAGENET_AS_READ_BY_OPENCV = (IMAGENET_MEAN[::-1], IMAGENET_STD[::-1])

_S2_DESCRIPTION = 'digital numbers: clip(x / 10000, 0, 1)'

for _modality in (
    Modality(
        name='s1',
        bands=('VV', 'VH'),
        normalization=SigmaStretch,
        augmentation=sar_augmentation,
        description=(
            'dB; per image and band clipped to the 1st and 99th percentiles, '
            'then clip((x - (mean - 2 std)) / (4 std), 0, 1) with VV '
            f'{S1_MEAN[0]:.3f} / {S1_STD[0]:.3f} and VH {S1_MEAN[1]:.3f} / '
            f'{S1_STD[1]:.3f} dB'
        ),
        raw='Sentinel-1 GRD backscatter in dB',
        raw_check=_check_db,
        rgb_bands=('VV', 'VH'),
    ),
    Modality(
        name='s2c',
        bands=S2_L1C_BANDS,
        normalization=_s2_scale,
        augmentation=optical_augmentation,
        description=_S2_DESCRIPTION,
        raw='Sentinel-2 L1C digital numbers (reflectance x 10000)',
        rgb_bands=('B4', 'B3', 'B2'),
        raw_check=_check_digital_numbers,
    ),
    Modality(
        name='s2a',
        bands=S2_L2A_BANDS,
        normalization=_s2_scale,
        augmentation=optical_augmentation,
        description=_S2_DESCRIPTION,
        raw='Sentinel-2 L2A digital numbers (reflectance x 10000)',
        rgb_bands=('B4', 'B3', 'B2'),
        raw_check=_check_digital_numbers,
    ),
    Modality(
        name='rgb',
        bands=('R', 'G', 'B'),
        normalization=_scale_8bit,
        augmentation=rgb_augmentation,
        description='8-bit RGB divided by 255',
        raw='8-bit RGB (0 to 255), channels R, G, B',
        rgb_bands=('R', 'G', 'B'),
        raw_check=_check_8bit,
    ),
    Modality(
        name='dem',
        bands=('DEM',),
        normalization=PercentileStretch,
        augmentation=dem_augmentation,
        description=(
            'elevation; per image clipped to the 1st and 99th percentiles p1, '
            'p99, then (x - p1) / (p99 - p1 + 1e-5)'
        ),
        raw='elevation in metres',
    ),
    Modality(
        name='rgb_indoor',
        bands=('R', 'G', 'B'),
        normalization=_scale_8bit,
        augmentation=indoor_rgb_augmentation,
        standardization=_IMAGENET_AS_READ_BY_OPENCV,
        description=(
            "8-bit RGB divided by 255, then standardised with ImageNet's "
            'constants in the channel order OpenCV reads (B, G, R): '
            'R (x - 0.406) / 0.225, G (x - 0.456) / 0.224, B (x - 0.485) / 0.229'
        ),
        raw='8-bit RGB (0 to 255), channels R, G, B',
        rgb_bands=('R', 'G', 'B'),
        raw_check=_check_8bit,
    ),
    Modality(
        name='hha',
        bands=('disparity', 'height', 'angle'),
        normalization=_scale_8bit,
        augmentation=hha_augmentation,
        standardization=_IMAGENET_AS_READ_BY_OPENCV,
        description=(
            'HHA-encoded depth (Gupta et al. 2014), 8-bit divided by 255, then '
            "standardised with ImageNet's constants in the channel order OpenCV "
            'reads (angle, height, disparity): disparity (x - 0.406) / 0.225, '
            'height (x - 0.456) / 0.224, angle (x - 0.485) / 0.229'
        ),
        raw='8-bit HHA (0 to 255), channels disparity, height, angle',
        rgb_bands=('disparity', 'height', 'angle'),
        raw_check=_check_8bit,
    ),
):
    register_modality(_modality)
del _modality
