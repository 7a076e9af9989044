"""Sensor modalities known to torchgeo-decur: bands and preprocessing.

One place that says what a modality name means, so that datasets, tasks,
exported weight files and weight enums describe inputs the same way.
"""

from collections.abc import Callable
from dataclasses import dataclass, field

from torch import Tensor


@dataclass(frozen=True)
class Modality:
    """Description of one input modality.

    Attributes:
        name: Short name used in configs, weight metadata and file names.
        bands: Band names in the order the encoder expects them.
        normalisation: Human-readable description of the preprocessing the
            encoders were trained with, from the raw input to ``[0, 1]``.
        raw: What the raw input is (unit and range), as the weight entries'
            transforms expect it.
        mean: Per-band mean used by the preprocessing (empty if unused).
        std: Per-band standard deviation (empty if unused).
        raw_check: Returns a message when a tensor does not look like the raw
            input (e.g. already normalised), else None.

    .. versionadded:: 0.1
    """

    name: str
    bands: tuple[str, ...]
    normalisation: str
    raw: str = ''
    mean: tuple[float, ...] = field(default=())
    std: tuple[float, ...] = field(default=())
    raw_check: Callable[[Tensor], str | None] | None = field(
        default=None, compare=False, repr=False
    )

    @property
    def in_channels(self) -> int:
        """Number of input channels (bands)."""
        return len(self.bands)


#: Sentinel-2 L1C band order of SSL4EO-S12 (13 bands, B10 included).
S2_L1C_BANDS = (
    'B1', 'B2', 'B3', 'B4', 'B5', 'B6', 'B7', 'B8', 'B8A', 'B9', 'B10', 'B11', 'B12'
)  # fmt: skip

#: Sentinel-2 L2A band order (12 bands, no B10).
S2_L2A_BANDS = tuple(b for b in S2_L1C_BANDS if b != 'B10')

#: Sentinel-1 GRD (VV, VH) means and standard deviations in dB over SSL4EO-S12,
#: as in the DeCUR authors' pretraining code.
S1_MEAN = (-12.54847273, -20.19237134)
S1_STD = (5.25697717, 5.91150917)


def _range(x: Tensor) -> str:
    return f'[{float(x.min()):.4g}, {float(x.max()):.4g}]'


def _check_s1(x: Tensor) -> str | None:
    if x.numel() and bool((x >= 0).all()):
        return (
            f'Sentinel-1 input expected in dB (mostly -35 to 5), got values in '
            f'{_range(x)}: linear backscatter or already normalised?'
        )
    return None


def _check_s2(x: Tensor) -> str | None:
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


_S1_NORM = (
    'dB; per image and band clipped to the 1st and 99th percentiles, then '
    'clip((x - (mean - 2 std)) / (4 std), 0, 1) with VV -12.548 / 5.257 and '
    'VH -20.192 / 5.912 dB'
)
_S2_NORM = 'digital numbers: clip(x / 10000, 0, 1)'

MODALITIES: dict[str, Modality] = {
    m.name: m
    for m in (
        Modality(
            's1',
            ('VV', 'VH'),
            _S1_NORM,
            'Sentinel-1 GRD backscatter in dB',
            S1_MEAN,
            S1_STD,
            _check_s1,
        ),
        Modality(
            's2c',
            S2_L1C_BANDS,
            _S2_NORM,
            'Sentinel-2 L1C digital numbers (reflectance x 10000)',
            raw_check=_check_s2,
        ),
        Modality(
            's2a',
            S2_L2A_BANDS,
            _S2_NORM,
            'Sentinel-2 L2A digital numbers (reflectance x 10000)',
            raw_check=_check_s2,
        ),
        Modality(
            'rgb',
            ('R', 'G', 'B'),
            '8-bit RGB divided by 255',
            '8-bit RGB (0 to 255), channels R, G, B',
            raw_check=_check_8bit,
        ),
        Modality(
            'dem',
            ('DEM',),
            'elevation; per image clipped to the 1st and 99th percentiles p1, p99, '
            'then (x - p1) / (p99 - p1 + 1e-5)',
            'elevation in metres',
        ),
        Modality(
            'hha',
            ('H', 'H2', 'A'),
            'HHA-encoded depth (disparity, height, angle), 8-bit divided by 255',
            '8-bit HHA (0 to 255)',
            raw_check=_check_8bit,
        ),
    )
}


def get_modality(name: str) -> Modality:
    """Look up a modality by name.

    Args:
        name: Modality name, one of :data:`MODALITIES`.

    Returns:
        The modality description.

    Raises:
        ValueError: If *name* is not a known modality.

    .. versionadded:: 0.1
    """
    try:
        return MODALITIES[name]
    except KeyError:
        known = ', '.join(sorted(MODALITIES))
        msg = f'unknown modality {name!r}; known modalities: {known}'
        raise ValueError(msg) from None
