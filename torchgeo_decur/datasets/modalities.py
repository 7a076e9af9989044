"""Sensor modalities known to torchgeo-decur: bands and normalisation.

One place that says what a modality name means, so that datasets, tasks,
exported weight files and weight enums describe inputs the same way.
"""

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Modality:
    """Description of one input modality.

    Attributes:
        name: Short name used in configs, weight metadata and file names.
        bands: Band names in the order the encoder expects them.
        normalisation: Human-readable description of the pixel normalisation
            the encoder was trained with.
        mean: Per-band mean subtracted after any clipping (empty if unused).
        std: Per-band standard deviation (empty if unused).

    .. versionadded:: 0.1
    """

    name: str
    bands: tuple[str, ...]
    normalisation: str
    mean: tuple[float, ...] = field(default=())
    std: tuple[float, ...] = field(default=())

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

#: Sentinel-1 GRD band means and standard deviations in dB (DeCUR paper).
S1_MEAN = (-12.59, -20.26)
S1_STD = (5.26, 5.91)

MODALITIES: dict[str, Modality] = {
    m.name: m
    for m in (
        Modality(
            's1',
            ('VV', 'VH'),
            'Sentinel-1 GRD backscatter in dB; 2% tails clipped per image; '
            'then (x - mean) / std per band',
            S1_MEAN,
            S1_STD,
        ),
        Modality(
            's2c',
            S2_L1C_BANDS,
            'Sentinel-2 L1C digital numbers: x / 10000 * 255, clipped to [0, 255]',
        ),
        Modality(
            's2a',
            S2_L2A_BANDS,
            'Sentinel-2 L2A digital numbers: x / 10000 * 255, clipped to [0, 255]',
        ),
        Modality('rgb', ('R', 'G', 'B'), '8-bit RGB divided by 255'),
        Modality('dem', ('DEM',), 'elevation in metres, per-image (x - mean) / std'),
        Modality(
            'hha',
            ('H', 'H2', 'A'),
            'HHA-encoded depth (disparity, height, angle), 8-bit divided by 255',
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
